//! The fault-injection checker (`chaukas_tests::chaos`) over real processes: writers killed
//! and paused past their leases, the gateway and NATS restarted, the link to ClickHouse cut,
//! stalled and blackholed; then every acknowledged event must be stored exactly once, as
//! first accepted.
//!
//! `make test` runs a few seeds; `make chaos` runs hundreds (`CHAUKAS_CHAOS_SEEDS`, in
//! parallel `CHAUKAS_CHAOS_PARALLEL`); `CHAUKAS_CHAOS_SEED=<n>` replays one seed;
//! `CHAUKAS_CHAOS_BINARY` runs another `chaukas` executable than this build's.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chaukas_tests::chaos::{self, PROFILE, Report};
use tokio::sync::Semaphore;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_number("CHAUKAS_CHAOS_SEED") {
        return vec![seed];
    }
    let count = env_number("CHAUKAS_CHAOS_SEEDS").unwrap_or(2);
    let base = env_number("CHAUKAS_CHAOS_BASE_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_secs() % 1_000_000 * 1_000)
    });
    (base..base + count).collect()
}

fn line(report: &Report) -> String {
    let (cuts, stalls, blackholes) = report.proxy_faults;
    format!(
        "{} {:.0}s: {} faults + proxy {cuts} cuts/{stalls} stalls/{blackholes} blackholes; \
         {} requests, {} acked ({} events), {} identical + {} changed resends; {} keys \
         stored, {} originals checked; {} acknowledged messages left in the stream by NATS",
        if report.passed() { "PASS" } else { "FAIL" },
        report.elapsed.as_secs_f64(),
        report.faults,
        report.tally.requests,
        report.tally.acked_requests,
        report.tally.acked_events,
        report.tally.identical_resends,
        report.tally.changed_resends,
        report.verdict.stored_keys,
        report.verdict.originals_checked,
        report.zombies,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_is_stored_once_as_first_accepted_under_seeded_faults() {
    chaukas_tests::init_logs();
    let seeds = seeds();
    let parallel = usize::try_from(env_number("CHAUKAS_CHAOS_PARALLEL").unwrap_or(2)).unwrap();
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let started = Instant::now();
    let runs: Vec<_> = seeds
        .iter()
        .map(|&seed| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _slot = gate.acquire_owned().await.unwrap();
                let binary = std::env::var("CHAUKAS_CHAOS_BINARY")
                    .unwrap_or_else(|_| env!("CARGO_BIN_EXE_chaukas").to_owned());
                let report = chaos::run_seed(&binary, seed, PROFILE).await;
                eprintln!("chaos {}\n      {}", report.schedule, line(&report));
                for violation in &report.verdict.violations {
                    eprintln!(
                        "      VIOLATION {violation}\n      logs: {}",
                        report.logs.display()
                    );
                }
                report
            })
        })
        .collect();
    let mut failed = Vec::new();
    let (mut faults, mut proxy, mut events) = (0, 0, 0);
    for run in runs {
        let report = run.await.expect("a chaos run panicked");
        faults += report.faults;
        proxy += report.proxy_faults.0 + report.proxy_faults.1 + report.proxy_faults.2;
        events += report.tally.acked_events;
        if !report.passed() {
            failed.push(report.schedule.clone());
        }
    }
    eprintln!(
        "chaos summary: {} seeds, {} failed, {faults} scheduled faults + {proxy} proxy faults, \
         {events} acknowledged events, {:.0} s",
        seeds.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "failing seeds (replay with CHAUKAS_CHAOS_SEED): {failed:#?}"
    );
}
