//! The benchmark run: phases in order, the printed table, the JSON line in bench/results/.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chaukas_bus::NatsConfig;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_store::ClickHouseConfig;
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use crate::args::{Args, Phase, Profile};
use crate::checkpoint;
use crate::ingest::{self, Target, Transport};
use crate::procs::{self, CpuMark};
use crate::stats::Samples;
use crate::workload::Client;
use crate::{baselines, keys, logcost, otlp, privacy, query};

struct Plan {
    baseline_events: usize,
    grpc_events: u64,
    http_events: u64,
    unary_seconds: u64,
    auth_events: u64,
    open_seconds: u64,
    open_batch: usize,
    load_target: u64,
    query_runs: usize,
}

impl Plan {
    fn of(profile: Profile) -> Self {
        match profile {
            Profile::Quick => Self {
                baseline_events: 200_000,
                grpc_events: 500_000,
                http_events: 300_000,
                unary_seconds: 5,
                auth_events: 100_000,
                open_seconds: 15,
                open_batch: 100,
                load_target: 1_000_000,
                query_runs: 100,
            },
            Profile::Full => Self {
                baseline_events: 500_000,
                grpc_events: 2_000_000,
                http_events: 1_000_000,
                unary_seconds: 15,
                auth_events: 500_000,
                open_seconds: 60,
                open_batch: 100,
                load_target: 10_000_000,
                query_runs: 200,
            },
        }
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn line(name: &str, value: String, target: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    };
    println!("  {name:<44} {value:>22}  {target:<22} {verdict}");
}

/// A line of p50 / p99, judged against a p99 budget in ms when there is one.
fn p50_p99_line(name: &str, samples: &Samples, p99_budget: Option<f64>) {
    let p99 = samples.quantile_ms(0.99);
    line(
        name,
        format!("{} / {}", opt_ms(samples.quantile_ms(0.5)), opt_ms(p99)),
        &p99_budget.map_or(String::new(), |budget| format!("p99 <= {budget:.0} ms")),
        p99_budget.and_then(|budget| p99.map(|p99| p99 <= budget)),
    );
}

fn opt_ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |ms| format!("{ms:.2} ms"))
}

fn log_plan<'a>(args: &'a Args, plan: &Plan, restart_writer: &'a str) -> logcost::Plan<'a> {
    logcost::Plan {
        restart_writer,
        pids: &args.pids,
        // Runs of ~15 s: a ClickHouse merge comes and goes within one (runs of half this
        // swung from x0.76 to x1.01 between rounds with the same settings).
        events_per_run: plan.grpc_events,
        batch: args.batch,
        concurrency: args.concurrency,
        settle: Duration::from_secs(120),
    }
}

fn privacy_plan(args: &Args, plan: &Plan) -> privacy::Plan {
    privacy::Plan {
        events_per_run: plan.auth_events,
        batch: args.batch,
        concurrency: args.concurrency,
        settle: Duration::from_secs(30),
    }
}

/// `--only`: one phase on the fresh stack, its figures printed and nothing appended (a
/// partial record would read as a whole run's in the results' history).
async fn run_alone(
    phase: Phase,
    args: &Args,
    plan: &Plan,
    target: &Target,
    nats: &async_nats::Client,
) -> anyhow::Result<()> {
    let figures = match phase {
        Phase::LogCost => {
            anyhow::ensure!(
                !args.restart_writer.is_empty(),
                "--only log-cost needs --restart-writer"
            );
            logcost::compare(target, &log_plan(args, plan, &args.restart_writer)).await?
        }
        Phase::Privacy => {
            let watched = procs::watched(&args.pids);
            privacy::compare(target, &watched, nats, &privacy_plan(args, plan)).await?
        }
    };
    println!("\n  {phase:?} alone (not appended to the results):\n{figures:#}");
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::of(args.profile);
    let run = format!(
        "r{}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() % 100_000_000
    );
    let channel = Endpoint::from_shared(args.grpc.clone())?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("no gateway at {} (run `make up`)", args.grpc))?;
    let clickhouse_config = ClickHouseConfig {
        url: args.clickhouse.clone(),
        database: args.database.clone(),
        user: args.clickhouse_user.clone(),
        password: args.clickhouse_password.clone(),
    };
    let target = Target {
        grpc: ChaukasServerServiceClient::new(channel.clone())
            .max_decoding_message_size(256 * 1024 * 1024),
        http: args.http.parse().context("--http is host:port")?,
        clickhouse: clickhouse_config.client()?,
        run: run.clone(),
        tenants: args.tenants,
    };
    let clickhouse_version: String = target
        .clickhouse
        .query("SELECT version()")
        .fetch_one()
        .await
        .context("ClickHouse")?;
    let nats_config = NatsConfig {
        url: args.nats.clone(),
        user: args.nats_user.clone(),
        password: args.nats_password.clone(),
        ..NatsConfig::default()
    };
    let nats = nats_config.connect().await?;
    println!(
        "chaukas-bench {run} ({:?} profile), commit {}",
        args.profile, args.commit
    );
    if let Some(phase) = args.only {
        return run_alone(phase, &args, &plan, &target, &nats).await;
    }

    // Baselines: the same event bytes, no Chaukas service in between.
    let baseline_events: Vec<_> = (0..64)
        .flat_map(|client| {
            Client::new(&format!("{run}-raw"), client, args.tenants)
                .batch(plan.baseline_events / 64)
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let mean_bytes = baseline_events
        .iter()
        .map(prost::Message::encoded_len)
        .sum::<usize>() as f64
        / baseline_events.len() as f64;
    println!(
        "  baselines over {} events of {mean_bytes:.0} bytes on average",
        baseline_events.len()
    );
    let raw_jetstream =
        baselines::jetstream_per_event(&nats, &nats_config, &run, &baseline_events).await?;
    let raw_jetstream_packed =
        baselines::jetstream_packed(&nats, &nats_config, &run, &baseline_events, args.batch)
            .await?;
    let raw_clickhouse =
        baselines::clickhouse_insert(&clickhouse_config, &run, &baseline_events).await?;
    drop(baseline_events);

    // The audit log on and off first, while the stack is fresh: later phases leave
    // gigabytes of parts whose background merges would land on one side or the other. It
    // restarts the writer, so the processes' list is read again after it.
    let log_cost = match args.restart_writer.as_str() {
        "" => {
            println!("  audit log on/off: skipped (no --restart-writer)");
            Value::Null
        }
        command => logcost::compare(&target, &log_plan(&args, &plan, command)).await?,
    };
    let watched = procs::watched(&args.pids);
    // End to end, closed loop: the maximum rate. Every phase starts with merges settled.
    let settle = Duration::from_secs(30);
    target.settle(settle).await?;
    let mark = CpuMark::take(&watched);
    let grpc = ingest::closed_loop(
        &target,
        Transport::Grpc,
        plan.grpc_events,
        args.batch,
        args.concurrency,
        0,
        None,
    )
    .await?;
    let cpu = mark.per_thousand(grpc.events);

    // The same closed loop with and without API keys checked on every request.
    let keys = keys::compare(&target, &nats, &args, &run, plan.auth_events, settle).await?;
    let privacy = privacy::compare(&target, &watched, &nats, &privacy_plan(&args, &plan)).await?;
    let otlp_plan = otlp::Plan {
        events_per_run: plan.auth_events,
        batch: args.batch,
        concurrency: args.concurrency,
        settle,
    };
    let otlp = otlp::compare(&target, channel, &watched, &otlp_plan).await?;
    target.settle(settle).await?;
    let http = ingest::closed_loop(
        &target,
        Transport::Http,
        plan.http_events,
        args.batch,
        args.concurrency,
        1_000,
        None,
    )
    .await?;
    target.settle(settle).await?;
    let (unary_rate, unary_latency) =
        ingest::unary(&target, 64, Duration::from_secs(plan.unary_seconds), 2_000).await?;

    // Open loop at half the maximum: ack latency and ingest -> queryable.
    let half = grpc.stored_per_second / 2.0;
    target.settle(settle).await?;
    // Checkpoint latency is sampled under that same load.
    let (open, checkpoints) = checkpoint::under_open_loop(
        &target,
        half,
        plan.open_batch,
        Duration::from_secs(plan.open_seconds),
        3_000,
        args.concurrency * 4,
        "half",
    )
    .await?;
    // And at a tenth of the maximum: a deployment's everyday load, far from saturation.
    let tenth = grpc.stored_per_second / 10.0;
    target.settle(settle).await?;
    let (light, light_checkpoints) = checkpoint::under_open_loop(
        &target,
        tenth,
        plan.open_batch,
        Duration::from_secs(plan.open_seconds),
        9_000,
        args.concurrency,
        "tenth",
    )
    .await?;

    // Query figures once `load_target` events are stored.
    let stored = target.stored_rows().await?;
    if stored < plan.load_target {
        println!(
            "  loading {} more events for the query figures",
            plan.load_target - stored
        );
        // Clients of their own: the generator is deterministic per client, so reusing the
        // first phase's clients would resend its event ids (and the pipeline would rightly
        // store them once).
        ingest::closed_loop(
            &target,
            Transport::Grpc,
            plan.load_target - stored,
            args.batch,
            args.concurrency,
            10_000,
            None,
        )
        .await?;
    }
    let stored = target.stored_rows().await?;
    target.settle(settle).await?;
    let mut grpc_client = target.grpc.clone();
    let cases = query::cases(
        &mut grpc_client,
        &run,
        args.tenants,
        plan.grpc_events / args.concurrency,
    )
    .await?;
    let mut query_idle = Vec::new();
    for case in &cases {
        query_idle
            .push(query::measure(&mut grpc_client, target.http, case, plan.query_runs).await?);
    }
    let background = {
        let target = target.clone();
        // Runs until aborted once the last query case is measured.
        let seconds = 3_600;
        tokio::spawn(async move {
            ingest::open_loop(
                &target,
                half,
                plan.open_batch,
                Duration::from_secs(seconds),
                4_000,
                32,
            )
            .await
        })
    };
    let mut query_busy = Vec::new();
    for case in &cases {
        query_busy
            .push(query::measure(&mut grpc_client, target.http, case, plan.query_runs).await?);
    }
    background.abort();

    let rss: Vec<(String, Option<f64>)> = watched
        .iter()
        .map(|w| (w.name.clone(), procs::peak_rss_mib(w.pid)))
        .collect();
    let limit = raw_jetstream.min(raw_clickhouse);

    println!();
    println!("  {:<44} {:>22}  {:<22}", "figure", "measured", "target");
    line(
        "raw JetStream publish, 1 msg/event (a)",
        format!("{raw_jetstream:.0} ev/s"),
        "",
        None,
    );
    line(
        "raw JetStream publish, gateway packing (a')",
        format!("{raw_jetstream_packed:.0} ev/s"),
        "",
        None,
    );
    line(
        "raw ClickHouse insert, same rows (b)",
        format!("{raw_clickhouse:.0} rows/s"),
        "",
        None,
    );
    line(
        "end to end gRPC batched (acked+stored)",
        format!("{:.0} ev/s", grpc.stored_per_second),
        ">= 100000 ev/s",
        Some(grpc.stored_per_second >= 100_000.0),
    );
    line(
        "  gateway acked rate",
        format!("{:.0} ev/s", grpc.acked_per_second),
        "",
        None,
    );
    line(
        "end to end / min(a, b)",
        format!("{:.2}", grpc.stored_per_second / limit),
        ">= 0.5",
        Some(grpc.stored_per_second / limit >= 0.5),
    );
    line(
        "end to end / raw JetStream (a)",
        format!("{:.2}", grpc.stored_per_second / raw_jetstream),
        ">= 0.5",
        Some(grpc.stored_per_second / raw_jetstream >= 0.5),
    );
    line(
        "end to end / raw JetStream packed (a')",
        format!("{:.2}", grpc.stored_per_second / raw_jetstream_packed),
        "",
        None,
    );
    line(
        "end to end HTTP protobuf batched",
        format!("{:.0} ev/s", http.stored_per_second),
        "",
        None,
    );
    line(
        "without / with API keys (2 runs each): acked",
        format!("{:.0} / {:.0} ev/s", keys.unkeyed_acked, keys.keyed_acked),
        "",
        None,
    );
    line(
        "  stored (end to end)",
        format!("{:.0} / {:.0} ev/s", keys.unkeyed_stored, keys.keyed_stored),
        "",
        None,
    );
    line(
        "  one key check + tenant check of 500 events",
        format!("{:.2} us", keys.check_ns / 1000.0),
        "",
        None,
    );
    line(
        "unary IngestEvent (64 in flight)",
        format!("{unary_rate:.0} ev/s"),
        ">= 25000 ev/s",
        Some(unary_rate >= 25_000.0),
    );
    line(
        &format!("open loop at {half:.0} ev/s: achieved"),
        format!("{:.0} ev/s", open.achieved_rate),
        "",
        None,
    );
    let ack_p99 = open.ack.quantile_ms(0.99);
    line(
        "  ack p50 / p99 / p999",
        format!(
            "{} / {} / {}",
            opt_ms(open.ack.quantile_ms(0.5)),
            opt_ms(ack_p99),
            opt_ms(open.ack.quantile_ms(0.999))
        ),
        "p99 <= 5 ms",
        ack_p99.map(|p99| p99 <= 5.0),
    );
    p50_p99_line(
        "  ingest -> queryable p50 / p99",
        &open.queryable,
        Some(1000.0),
    );
    p50_p99_line(
        "  ack -> signed checkpoint p50 / p99",
        &checkpoints,
        Some(2000.0),
    );
    p50_p99_line(
        &format!("  at {tenth:.0} ev/s: ack -> signed checkpoint p50 / p99"),
        &light_checkpoints,
        Some(2000.0),
    );
    p50_p99_line("    ingest -> queryable p50 / p99", &light.queryable, None);
    println!("  query figures with {stored} events stored (idle | ingesting at {half:.0} ev/s):");
    let mut query_json = Vec::new();
    for ((case, idle), busy) in cases.iter().zip(&query_idle).zip(&query_busy) {
        // The targets the query issue set; the sessions routes have none of their own.
        let budget = if case.name.starts_with("GetEventStats") {
            Some(20.0)
        } else if case.name.starts_with("QueryEvents") {
            Some(25.0)
        } else {
            None
        };
        let p99 = idle.quantile_ms(0.99);
        line(
            &format!("  {}", case.name),
            format!(
                "{}/{} | {}/{}",
                opt_ms(idle.quantile_ms(0.5)).trim_end_matches(" ms"),
                opt_ms(p99),
                opt_ms(busy.quantile_ms(0.5)).trim_end_matches(" ms"),
                opt_ms(busy.quantile_ms(0.99)),
            ),
            &budget.map_or(String::new(), |budget| format!("p99 <= {budget} ms")),
            p99.zip(budget).map(|(p99, budget)| p99 <= budget),
        );
        query_json.push(json!({
            "name": case.name, "idle": idle.summary(), "ingesting": busy.summary(),
        }));
    }
    println!("  CPU seconds per 1k events (gRPC closed loop) and peak RSS:");
    for (name, seconds) in &cpu {
        let peak = rss
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, mib)| *mib);
        let (target, met) = if name == "gateway" {
            ("RSS <= 50 MiB", peak.map(|mib| mib <= 50.0))
        } else {
            ("", None)
        };
        line(
            &format!("  {name}"),
            format!(
                "{seconds:.4} s, {}",
                peak.map_or("-".into(), |mib| format!("{mib:.0} MiB"))
            ),
            target,
            met,
        );
    }

    let record = json!({
        "run": run,
        "time_unix": SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        "commit": args.commit,
        "profile": format!("{:?}", args.profile).to_lowercase(),
        "machine": procs::machine(),
        "clickhouse_version": clickhouse_version,
        "settings": {"batch": args.batch, "concurrency": args.concurrency, "tenants": args.tenants,
                     "mean_event_bytes": round(mean_bytes)},
        "baselines": {"jetstream_per_event_eps": round(raw_jetstream),
                      "jetstream_packed_eps": round(raw_jetstream_packed),
                      "clickhouse_insert_rps": round(raw_clickhouse)},
        "end_to_end": {
            "grpc": {"events": grpc.events, "acked_eps": round(grpc.acked_per_second),
                     "stored_eps": round(grpc.stored_per_second), "ack": grpc.ack.summary()},
            "http": {"events": http.events, "acked_eps": round(http.acked_per_second),
                     "stored_eps": round(http.stored_per_second)},
            "ratio_to_min_baseline": round(grpc.stored_per_second / limit),
            "ratio_to_jetstream": round(grpc.stored_per_second / raw_jetstream),
            "ratio_to_jetstream_packed": round(grpc.stored_per_second / raw_jetstream_packed),
        },
        "api_keys": {"events_per_run": plan.auth_events, "runs_each": 2,
                     "without": {"acked_eps": round(keys.unkeyed_acked), "stored_eps": round(keys.unkeyed_stored)},
                     "with": {"acked_eps": round(keys.keyed_acked), "stored_eps": round(keys.keyed_stored)},
                     "check_ns_per_request": round(keys.check_ns)},
        "privacy": privacy,
        "otlp": otlp,
        "audit_log_cost": log_cost,
        "unary": {"eps": round(unary_rate), "latency": unary_latency.summary()},
        "open_loop": {"target_eps": round(open.target_rate), "achieved_eps": round(open.achieved_rate),
                      "errors": open.errors, "ack": open.ack.summary(),
                      "queryable": open.queryable.summary(),
                      "checkpoint": checkpoints.summary()},
        "open_loop_tenth": {"target_eps": round(light.target_rate), "achieved_eps": round(light.achieved_rate),
                            "errors": light.errors, "ack": light.ack.summary(),
                            "queryable": light.queryable.summary(),
                            "checkpoint": light_checkpoints.summary()},
        "query": {"stored_events": stored, "cases": query_json},
        "cpu_seconds_per_1k_events": cpu.iter().map(|(n, s)| (n.clone(), json!(round(s * 10_000.0) / 10_000.0))).collect::<serde_json::Map<_, _>>(),
        "peak_rss_mib": rss.iter().map(|(n, m)| (n.clone(), json!(m.map(round)))).collect::<serde_json::Map<_, _>>(),
    });
    std::fs::create_dir_all(&args.results)?;
    let path = args.results.join("results.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    writeln!(file, "{record}")?;
    println!("\n  appended to {}", path.display());
    Ok(())
}
