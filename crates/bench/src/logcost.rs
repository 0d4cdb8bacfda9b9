//! What the audit log costs (issue #14): the gRPC closed loop with the writer's log on and
//! off (`log.enabled`), in one run, alternated ABBA BAAB so drift and table growth weigh on
//! both alike. The writer is restarted before every run with the setting of that run's side,
//! through the command `--restart-writer` names (`bench/run.sh`: `stack.sh restart-writer`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::ingest::{self, ClosedLoop, Target, Transport};
use crate::privacy::{abba, median};
use crate::procs::{self, CpuMark};
use crate::stats::{round3, round5};

/// Runs of each side.
const ROUNDS: u64 = 6;

/// The services whose CPU the log can change (the generator and the idle query service are
/// left out).
const SERVICES: [&str; 4] = ["gateway", "writer", "nats", "clickhouse"];

/// What one side measured, run by run.
#[derive(Default)]
struct Side {
    stored: Vec<f64>,
    acked: Vec<f64>,
    writer_cpu: Vec<f64>,
    clickhouse_cpu: Vec<f64>,
    services_cpu: Vec<f64>,
}

impl Side {
    fn add(&mut self, run: &ClosedLoop, cpu: &[(String, f64)]) {
        self.stored.push(run.stored_per_second);
        self.acked.push(run.acked_per_second);
        let of = |name: &str| cpu.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
        self.writer_cpu.extend(of("writer"));
        self.clickhouse_cpu.extend(of("clickhouse"));
        self.services_cpu
            .push(SERVICES.iter().filter_map(|name| of(name)).sum());
    }

    fn json(&self) -> Value {
        let cpu = |runs: &[f64]| round5(median(runs));
        let runs = |values: &[f64]| values.iter().copied().map(round5).collect::<Vec<_>>();
        json!({"stored_eps": median(&self.stored).round(), "acked_eps": median(&self.acked).round(),
               "stored_eps_runs": self.stored.iter().map(|r| r.round()).collect::<Vec<_>>(),
               "writer_cpu_s_per_1k": cpu(&self.writer_cpu),
               "writer_cpu_s_per_1k_runs": runs(&self.writer_cpu),
               "clickhouse_cpu_s_per_1k": cpu(&self.clickhouse_cpu),
               "clickhouse_cpu_s_per_1k_runs": runs(&self.clickhouse_cpu),
               "services_cpu_s_per_1k": cpu(&self.services_cpu),
               "services_cpu_s_per_1k_runs": runs(&self.services_cpu)})
    }
}

/// The comparison's settings.
pub struct Plan<'a> {
    /// The shell command that restarts the writer with this process's environment.
    pub restart_writer: &'a str,
    /// Where the stack's pid files are (the writer's changes with every restart).
    pub pids: &'a Path,
    pub events_per_run: u64,
    pub batch: usize,
    pub concurrency: u64,
    pub settle: Duration,
}

/// Restarts the writer with the audit log `on` or off.
async fn restart_writer(command: &str, on: bool) -> anyhow::Result<()> {
    let command = command.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-c", &command])
            .env("CHAUKAS_LOG__ENABLED", on.to_string())
            .status()
    })
    .await?
    .with_context(|| "cannot run --restart-writer")?;
    if !status.success() {
        bail!("restarting the writer failed ({status})");
    }
    Ok(())
}

/// Runs the comparison, leaves the writer running with the log on; prints its lines and
/// returns its JSON.
pub async fn compare(target: &Target, plan: &Plan<'_>) -> anyhow::Result<Value> {
    let mut side_target = target.clone();
    side_target.run = format!("{}-log", target.run);
    let (mut off, mut on) = (Side::default(), Side::default());
    // One untimed run first, as much as a timed one: the first run into empty tables stored
    // ~25% faster than any later one (41k vs 33k ev/s with the log off), a step ABBA does not
    // cancel (it cancels linear drift) and that fell on the log-off side every time.
    ingest::closed_loop(
        &side_target,
        Transport::Grpc,
        plan.events_per_run,
        plan.batch,
        plan.concurrency,
        19_000,
        None,
    )
    .await?;
    for round in 0..ROUNDS {
        for log_on in abba(round) {
            restart_writer(plan.restart_writer, log_on).await?;
            let first_client = 20_000 + plan.concurrency * (2 * round + u64::from(log_on));
            // Clients `tenants` apart write the same tenant: the run's tenants get their log
            // heads loaded (one read each after a restart) before anything is timed.
            ingest::closed_loop(
                &side_target,
                Transport::Grpc,
                plan.concurrency * plan.batch as u64,
                plan.batch,
                plan.concurrency,
                first_client + 100 * target.tenants,
                None,
            )
            .await?;
            target.settle(plan.settle).await?;
            let watched = procs::watched(plan.pids);
            let mark = CpuMark::take(&watched);
            let started = unix_secs();
            let run = ingest::closed_loop(
                &side_target,
                Transport::Grpc,
                plan.events_per_run,
                plan.batch,
                plan.concurrency,
                first_client,
                None,
            )
            .await?;
            let cpu = mark.per_thousand(run.events);
            // Parts piling up (merges falling behind) would slow every later run down.
            let parts = target.active_parts().await?;
            // The run's span in unix seconds, to line it up with ClickHouse's own logs
            // (`system.part_log`, `system.query_log`) when those are switched on.
            println!(
                "    log {} ({started}..{}): stored {:.0} ev/s, CPU/1k {:?}; active parts {parts:?}",
                if log_on { "on" } else { "off" },
                unix_secs(),
                run.stored_per_second,
                cpu.iter()
                    .map(|(name, s)| format!("{name} {s:.4}"))
                    .collect::<Vec<_>>(),
            );
            if log_on { &mut on } else { &mut off }.add(&run, &cpu);
        }
    }
    // The last round ends with the log off; the phases after this one need it on.
    restart_writer(plan.restart_writer, true).await?;
    let ratio = |a: &[f64], b: &[f64]| round3(median(a) / median(b));
    let bytes = stored_bytes(target).await?;
    println!("    compressed bytes: {bytes}");
    let result = json!({
        "events_per_run": plan.events_per_run, "runs_each": ROUNDS, "compressed_bytes": bytes,
        "log_off": off.json(), "log_on": on.json(),
        "stored_ratio": ratio(&on.stored, &off.stored),
        "services_cpu_ratio": ratio(&on.services_cpu, &off.services_cpu),
    });
    println!(
        "  audit log on/off: stored {:.0} vs {:.0} ev/s (x{}), services' CPU/1k {:.5} vs {:.5} s (x{}; writer {:.5} vs {:.5}, ClickHouse {:.5} vs {:.5})",
        median(&on.stored),
        median(&off.stored),
        result["stored_ratio"],
        median(&on.services_cpu),
        median(&off.services_cpu),
        result["services_cpu_ratio"],
        median(&on.writer_cpu),
        median(&off.writer_cpu),
        median(&on.clickhouse_cpu),
        median(&off.clickhouse_cpu),
    );
    Ok(result)
}

/// What the log adds to what ClickHouse stores, compressed: bytes per event of `events` and
/// of the log's two columns in it, bytes per leaf of `log_leaves`, column by column. Every
/// byte is written once per insert and again per merge, so this is most of its cost.
async fn stored_bytes(target: &Target) -> anyhow::Result<Value> {
    let columns: Vec<(String, String, u64)> = target
        .clickhouse
        .query(
            "SELECT table, name, data_compressed_bytes FROM system.columns \
             WHERE database = currentDatabase() AND table IN ('events', 'log_leaves')",
        )
        .fetch_all()
        .await?;
    let rows: Vec<(String, u64)> = target
        .clickhouse
        .query(
            "SELECT table, sum(rows) FROM system.parts WHERE active \
             AND database = currentDatabase() AND table IN ('events', 'log_leaves') GROUP BY table",
        )
        .fetch_all()
        .await?;
    let per_row = |table: &str, bytes: u64| {
        let rows = rows.iter().find(|(t, _)| t == table).map_or(0, |(_, r)| *r);
        #[allow(clippy::cast_precision_loss)]
        let value = if rows == 0 {
            0.0
        } else {
            bytes as f64 / rows as f64
        };
        (value * 10.0).round() / 10.0
    };
    let mut out = serde_json::Map::new();
    for table in ["events", "log_leaves"] {
        let of_table = columns.iter().filter(|(t, _, _)| t == table);
        let total = of_table.clone().map(|(_, _, b)| b).sum();
        let mut by_column = serde_json::Map::new();
        for (_, name, bytes) in of_table {
            by_column.insert(name.clone(), json!(per_row(table, *bytes)));
        }
        out.insert(
            table.to_owned(),
            json!({"per_row": per_row(table, total), "by_column": by_column}),
        );
    }
    Ok(Value::Object(out))
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
