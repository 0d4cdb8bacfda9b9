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

use std::net::SocketAddr;
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
            Fault::KillWriter { writer, down } => {
                (Action::KillWriter(writer), Action::StartWriter(writer), down)
            }
            Fault::PauseWriter { writer, paused } => {
                (Action::Pause(writer), Action::Resume(writer), paused)
            }
            Fault::RestartGateway { down } => (Action::KillGateway, Action::StartGateway, down),
            Fault::RestartNats { down } => (Action::StopNats, Action::StartNats, down),
            Fault::ClickHouseFaults {
                per_million,
                lasting,
            } => (Action::ProxyFaults(per_million), Action::ProxyFaults(0), lasting),
        };
        steps.push((planned.at, start));
        steps.push((planned.at + lasting, end));
    }
    steps.sort_by_key(|(at, _)| *at);
    steps
}

fn upstream(url: &str) -> SocketAddr {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    host.parse().expect("the ClickHouse URL is http://<ip>:<port>")
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
    let proxy = FaultProxy::start(upstream(&clickhouse.url), seed).await;
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
    let mut verdict = check::check(&clickhouse.client().expect("client"), &history).await;
    if let Err(problem) = drained {
        verdict.violations.push(problem);
    }
    if let Err(problem) = dead_letters_accounted(&nats).await {
        verdict.violations.push(problem);
    }
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
        Action::StopNats => nats.stop(),
        Action::StartNats => nats.restart(),
        Action::ProxyFaults(per_million) => proxy.set_rate(FaultRate {
            per_million,
            // Past the statement timeout: the server may finish what the writer gave up on.
            stall: Duration::from_millis(STATEMENT_TIMEOUT_MS * 3 / 2),
        }),
    }
}

/// Publishes [`POISON`] undecodable messages, each of its own size, straight into shards.
async fn publish_poison(nats: &chaukas_bus::NatsConfig) {
    let js = jetstream(nats).await;
    nats.ensure_streams(&js).await.expect("streams");
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

/// Waits until the event stream is empty: every accepted message stored (or dead-lettered)
/// and acknowledged.
async fn drain(nats: &chaukas_bus::NatsConfig, timeout: Duration) -> Result<(), String> {
    let js = jetstream(nats).await;
    let deadline = Instant::now() + timeout;
    let mut left = u64::MAX;
    while Instant::now() < deadline {
        if let Ok(mut stream) = js.get_stream(&nats.stream).await
            && let Ok(info) = stream.info().await
        {
            left = info.state.messages;
            if left == 0 {
                // Let any insert still running on the server land before the check.
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("{left} messages still unstored {timeout:?} after the faults healed"))
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
