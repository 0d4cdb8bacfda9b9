//! A fault-injection checker in the spirit of Jepsen: a workload records every send and
//! acknowledgement while faults drawn from a seed strike the writers (SIGKILL, SIGSTOP past
//! the lease), the gateway, NATS and the link to ClickHouse (a [`FaultProxy`]); then the
//! faults heal, the backlog drains, and [`check`] compares the history with ClickHouse.
//!
//! Every run prints its seed and schedule; `CHAUKAS_CHAOS_SEED=<n>` replays a schedule
//! (timing still varies, so a replay is likely, not certain, to fail the same way).

pub mod check;
pub mod schedule;
pub mod services;
pub mod workload;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chaukas_testkit::PrivateNats;
use chaukas_testkit::fault_proxy::{FaultProxy, FaultRate};

use schedule::{Fault, Schedule};
use services::{STATEMENT_TIMEOUT_MS, Services};

/// How long and how hard a run is.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// How long the workload sends (faults strike inside it).
    pub workload: Duration,
    /// Concurrent senders.
    pub senders: u64,
    /// Longest wait, after the faults healed, for every accepted message to be stored.
    pub drain: Duration,
}

/// The profile `make test` runs and `make chaos` repeats.
pub const PROFILE: Profile = Profile {
    workload: Duration::from_secs(14),
    senders: 3,
    drain: Duration::from_secs(90),
};

/// Poison messages (undecodable) published straight into the stream: each must end up in
/// the dead-letter stream exactly once.
const POISON: usize = 3;

/// What one seed did and found.
#[derive(Debug)]
pub struct Report {
    /// The schedule, seed first.
    pub schedule: String,
    /// Faults the schedule injected, plus the proxy's cuts, stalls and blackholes.
    pub faults: usize,
    /// Proxy faults injected: (cuts, stalls, blackholes).
    pub proxy_faults: (u64, u64, u64),
    /// Requests sent / acknowledged, events acknowledged, resends.
    pub tally: workload::Tally,
    /// What the checker found.
    pub verdict: check::Verdict,
    /// How long the run took.
    pub elapsed: Duration,
    /// Where the services' logs are.
    pub logs: std::path::PathBuf,
    /// Messages left in the work queue although their consumer acknowledged them (NATS 2.9
    /// after a SIGKILL); their events are stored.
    pub zombies: u64,
}

impl Report {
    /// Whether the history and the store agree.
    pub fn passed(&self) -> bool {
        self.verdict.violations.is_empty()
    }
}

/// One step of a run's timeline.
#[derive(Debug, Clone, Copy)]
enum Action {
    KillWriter(usize),
    StartWriter(usize),
    Pause(usize),
    Resume(usize),
    KillGateway,
    StartGateway,
    StopNats,
    StartNats,
    ProxyFaults(u32),
}

fn timeline(schedule: &Schedule) -> Vec<(Duration, Action)> {
    let mut steps = Vec::new();
    for planned in &schedule.faults {
        let (start, end, lasting) = match planned.fault {
            Fault::KillWriter { writer, down } => (
                Action::KillWriter(writer),
                Action::StartWriter(writer),
                down,
            ),
            Fault::PauseWriter { writer, paused } => {
                (Action::Pause(writer), Action::Resume(writer), paused)
            }
            Fault::RestartGateway { down } => (Action::KillGateway, Action::StartGateway, down),
            Fault::RestartNats { down } => (Action::StopNats, Action::StartNats, down),
            Fault::ClickHouseFaults {
                per_million,
                lasting,
            } => (
                Action::ProxyFaults(per_million),
                Action::ProxyFaults(0),
                lasting,
            ),
        };
        steps.push((planned.at, start));
        steps.push((planned.at + lasting, end));
    }
    steps.sort_by_key(|(at, _)| *at);
    steps
}

/// Runs seed `seed` against the services in `binary` (the `chaukas` executable).
pub async fn run_seed(binary: &str, seed: u64, profile: Profile) -> Report {
    let started = Instant::now();
    let schedule = Schedule::draw(seed, profile.workload);
    let logs = std::env::temp_dir().join(chaukas_testkit::unique_name(&format!("chaos-{seed}")));
    std::fs::create_dir_all(&logs).expect("log dir");
    let mut nats_server = PrivateNats::start();
    let nats = chaukas_bus::NatsConfig {
        url: nats_server.url(),
        duplicate_window_secs: 2,
        ..chaukas_testkit::nats_config()
    };
    let (db, clickhouse) = crate::migrated_database(None).await;
    crate::apply_bus(&nats, services::LEASE_TTL_SECS).await;
    let proxy = FaultProxy::start(chaukas_testkit::clickhouse_addr(), seed).await;
    let mut services = Services::new(
        binary,
        nats.clone(),
        format!("http://{}", proxy.addr),
        db.name.clone(),
        &logs,
    );
    services.start_gateway();
    for writer in 0..schedule.writers {
        services.start_writer(writer);
    }
    publish_poison(&nats).await;

    let until = Instant::now() + profile.workload;
    let senders: Vec<_> = (0..profile.senders)
        .map(|sender| tokio::spawn(workload::send(services.gateway_grpc, sender, seed, until)))
        .collect();
    let begun = Instant::now();
    for (at, action) in timeline(&schedule) {
        tokio::time::sleep_until((begun + at).into()).await;
        apply(action, &mut services, &mut nats_server, &proxy);
    }
    let mut parts = Vec::new();
    for sender in senders {
        parts.push(sender.await.expect("sender task"));
    }
    proxy.set_rate(FaultRate::default());
    services.heal();
    let (history, tally) = workload::merge(parts);
    let drained = drain(&nats, profile.drain).await;
    let zombies = *drained.as_ref().unwrap_or(&0);
    let mut verdict = check::check(&clickhouse.client().expect("client"), &history).await;
    if let Err(problem) = drained {
        verdict.violations.push(problem);
    }
    if let Err(problem) = dead_letters_accounted(&nats).await {
        verdict.violations.push(problem);
    }
    let logs_checked =
        check::logs_intact(&clickhouse.client().expect("client"), &services.log).await;
    verdict.violations.extend(logs_checked);
    let counts = proxy.counts();
    let proxy_faults = (
        counts.cuts.load(Ordering::Relaxed),
        counts.stalls.load(Ordering::Relaxed),
        counts.blackholes.load(Ordering::Relaxed),
    );
    drop(services);
    let report = Report {
        schedule: schedule.to_string(),
        faults: schedule.faults.len(),
        proxy_faults,
        tally,
        verdict,
        elapsed: started.elapsed(),
        logs,
        zombies,
    };
    if report.passed() {
        db.drop_database().await;
        let _ = std::fs::remove_dir_all(&report.logs);
    }
    report
}

fn apply(action: Action, services: &mut Services, nats: &mut PrivateNats, proxy: &FaultProxy) {
    match action {
        Action::KillWriter(writer) => services.kill_writer(writer),
        Action::StartWriter(writer) => services.start_writer(writer),
        Action::Pause(writer) => services.pause_writer(writer, true),
        Action::Resume(writer) => services.pause_writer(writer, false),
        Action::KillGateway => services.kill_gateway(),
        Action::StartGateway => services.start_gateway(),
        // SIGKILL (a crash) by default; `CHAUKAS_CHAOS_NATS_GRACEFUL=1` shuts it down instead.
        Action::StopNats if std::env::var_os("CHAUKAS_CHAOS_NATS_GRACEFUL").is_some() => {
            nats.shut_down();
        }
        Action::StopNats => nats.stop(),
        Action::StartNats => nats.restart(),
        Action::ProxyFaults(per_million) => proxy.set_rate(FaultRate {
            per_million,
            // Past the statement timeout: the server may finish what the writer gave up on.
            stall: Duration::from_millis(STATEMENT_TIMEOUT_MS * 3 / 2),
            only_containing: &[],
        }),
    }
}

/// Publishes [`POISON`] undecodable messages, each of its own size, straight into shards.
async fn publish_poison(nats: &chaukas_bus::NatsConfig) {
    let js = jetstream(nats).await;
    for index in 0..POISON {
        let subject = nats.shard_subject(u16::try_from(index).expect("small") % nats.shards);
        let payload = vec![0xFFu8; 100 + index];
        js.publish(subject, payload.into())
            .await
            .expect("publish poison")
            .await
            .expect("poison stored");
    }
}

async fn jetstream(nats: &chaukas_bus::NatsConfig) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(nats.connect().await.expect("connect to NATS"))
}

/// Waits until nothing is left to store: every shard consumer has nothing left to deliver
/// and nothing delivered unacknowledged, twice in a row a second apart. (Not "the stream is
/// empty": after a SIGKILL, NATS 2.9 can keep work-queue messages its consumer had already
/// acknowledged; they are counted in the report.)
async fn drain(nats: &chaukas_bus::NatsConfig, timeout: Duration) -> Result<u64, String> {
    let js = jetstream(nats).await;
    let deadline = Instant::now() + timeout;
    let mut settled_once = false;
    while Instant::now() < deadline {
        match outstanding(&js, nats).await {
            Some(0) if settled_once => return Ok(left_in_stream(&js, nats).await),
            Some(0) => settled_once = true,
            _ => settled_once = false,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "messages still unstored {timeout:?} after the faults healed; {}",
        consumer_states(&js, nats).await
    ))
}

/// Messages the shard consumers still have to deliver or to see acknowledged; `None` when a
/// consumer cannot be read (missing while being re-created, or NATS away).
async fn outstanding(
    js: &async_nats::jetstream::Context,
    nats: &chaukas_bus::NatsConfig,
) -> Option<u64> {
    let stream = js.get_stream(&nats.stream).await.ok()?;
    let mut total = 0;
    for shard in 0..nats.shards {
        let name = chaukas_writer::consumer::consumer_name(shard);
        let info = stream.consumer_info(&name).await.ok()?;
        total += info.num_pending + info.num_ack_pending as u64;
    }
    Some(total)
}

async fn left_in_stream(
    js: &async_nats::jetstream::Context,
    nats: &chaukas_bus::NatsConfig,
) -> u64 {
    match js.get_stream(&nats.stream).await {
        Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
        Err(_) => 0,
    }
}

/// Each shard consumer's state, for a report on a backlog that did not drain.
async fn consumer_states(
    js: &async_nats::jetstream::Context,
    nats: &chaukas_bus::NatsConfig,
) -> String {
    let Ok(mut stream) = js.get_stream(&nats.stream).await else {
        return "stream unreadable".into();
    };
    let mut states = Vec::new();
    if let Ok(info) = stream.info().await.cloned() {
        let first = info.state.first_sequence;
        let subject = match stream.get_raw_message(first).await {
            Ok(message) => message.subject.to_string(),
            Err(error) => error.to_string(),
        };
        states.push(format!(
            "stream first {first} ({subject}) last {} messages {}",
            info.state.last_sequence, info.state.messages
        ));
    }
    for shard in 0..nats.shards {
        let name = chaukas_writer::consumer::consumer_name(shard);
        states.push(match stream.consumer_info(&name).await {
            Ok(info) => format!(
                "{shard}: pending {} ack-pending {} redelivered {} delivered {}/{} ack-floor {}",
                info.num_pending,
                info.num_ack_pending,
                info.num_redelivered,
                info.delivered.stream_sequence,
                info.delivered.consumer_sequence,
                info.ack_floor.stream_sequence
            ),
            Err(error) => format!("{shard}: {error}"),
        });
    }
    states.join("; ")
}

/// Every poison message is in the dead-letter stream exactly once.
async fn dead_letters_accounted(nats: &chaukas_bus::NatsConfig) -> Result<(), String> {
    let js = jetstream(nats).await;
    let letters = chaukas_bus::dead_letters::list(&js, nats, 100)
        .await
        .map_err(|error| error.to_string())?;
    let mut sizes: Vec<usize> = letters.iter().map(|letter| letter.bytes).collect();
    sizes.sort_unstable();
    let expected: Vec<usize> = (0..POISON).map(|index| 100 + index).collect();
    if sizes == expected {
        Ok(())
    } else {
        Err(format!(
            "dead letters (payload sizes) {sizes:?}, expected each poison message once: {expected:?}"
        ))
    }
}
