//! The cost of a realistic privacy policy (issue #15): closed-loop ingest of tenants under a
//! policy of 10 rules and every detector, against tenants without one, alternated (ABBA) so
//! drift and table growth weigh on both alike; gateway CPU per 1k events for each.

use std::time::Duration;

use async_nats::jetstream;
use chaukas_bus::NatsConfig;
use chaukas_policies::PolicyStore;
use chaukas_privacy::Policy;
use serde_json::{Value, json};

use crate::ingest::{self, ClosedLoop, Target, Transport};
use crate::procs::{CpuMark, Watched};
use crate::stats::{round3, round5};

/// Ten rules over fields the workload fills (and some it does not, as real policies have),
/// plus all seven detectors.
const POLICY: &str = r#"{
  "retention": {"min_days": 2190, "max_days": 2555},
  "redaction": {
    "rules": [
      {"path": "/llm_invocation/request/messages/*/content", "method": "mask", "category": "prompt"},
      {"path": "/llm_invocation/response/choices/*/message/content", "method": "mask", "category": "completion"},
      {"path": "/tool_call/arguments/password", "method": "drop"},
      {"path": "/tool_call/arguments/api_key", "method": "drop"},
      {"path": "/mcp_call/request/token", "method": "drop"},
      {"path": "/metadata/user_email", "method": "hash", "category": "email"},
      {"path": "/metadata/customer_id", "method": "hash", "category": "customer"},
      {"path": "/data_access/document_ids/*", "method": "hash", "category": "document"},
      {"path": "/agent_handoff/handoff_data", "method": "drop"},
      {"path": "/state_update/credentials", "method": "drop"}
    ],
    "detectors": {"email": "hash", "phone": "mask", "payment_card": "mask", "iban": "mask",
                  "ip_address": "mask", "us_ssn": "mask", "secret": "mask"}
  }
}"#;

/// What one side of the comparison measured, run by run.
#[derive(Default)]
struct Side {
    acked: Vec<f64>,
    stored: Vec<f64>,
    gateway_cpu: Vec<f64>,
}

impl Side {
    fn add(&mut self, run: &ClosedLoop, gateway_cpu: Option<f64>) {
        self.acked.push(run.acked_per_second);
        self.stored.push(run.stored_per_second);
        self.gateway_cpu.extend(gateway_cpu);
    }

    fn json(&self) -> Value {
        json!({"acked_eps": median(&self.acked).round(), "stored_eps": median(&self.stored).round(),
               "gateway_cpu_s_per_1k": round5(median(&self.gateway_cpu)),
               "gateway_cpu_s_per_1k_runs": self.gateway_cpu})
    }
}

/// Runs of each side, alternated ABBA BAAB: drift and table growth weigh on both alike, and
/// the median of four shrugs off one run a merge or a takeover slowed down.
const ROUNDS: u64 = 4;

/// Which side runs first in round `round` (false: the baseline): ABBA, BAAB, ... so drift
/// and table growth weigh on both sides alike.
pub(crate) fn abba(round: u64) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The comparison's settings.
pub struct Plan {
    pub events_per_run: u64,
    pub batch: usize,
    pub concurrency: u64,
    pub settle: Duration,
}

/// Runs the comparison; prints its lines and returns its JSON.
pub async fn compare(
    target: &Target,
    watched: &[Watched],
    nats: &async_nats::Client,
    plan: &Plan,
) -> anyhow::Result<Value> {
    // Each side has tenants of its own: the policy's tenants under a run name of their own.
    let mut private = target.clone();
    private.run = format!("{}-pii", target.run);
    let store = PolicyStore::open(&jetstream::new(nats.clone()), &NatsConfig::default()).await?;
    let policy = Policy::parse(POLICY.as_bytes())?;
    // Clients map onto tenants by `client % tenants`: this covers every client's tenant.
    for client in 0..target.tenants {
        let tenant = crate::workload::tenant_of(&private.run, client, target.tenants);
        store
            .set(&tenant, None, policy.clone(), "chaukas-bench")
            .await?;
    }
    // Gateways learn new policies through their watch; give it a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut without, mut with) = (Side::default(), Side::default());
    for round in 0..ROUNDS {
        for with_policy in abba(round) {
            target.settle(plan.settle).await?;
            let side = if with_policy { &private } else { target };
            let first_client = 7_000 + plan.concurrency * (2 * round + u64::from(with_policy));
            let mark = CpuMark::take(watched);
            let run = ingest::closed_loop(
                side,
                Transport::Grpc,
                plan.events_per_run,
                plan.batch,
                plan.concurrency,
                first_client,
                None,
            )
            .await?;
            let gateway = mark
                .per_thousand(run.events)
                .into_iter()
                .find(|(name, _)| name == "gateway")
                .map(|(_, seconds)| seconds);
            if with_policy { &mut with } else { &mut without }.add(&run, gateway);
        }
    }
    let rate = median(&without.stored) / 2.0;
    let fixed = at_fixed_rate(target, &private, watched, plan, rate).await?;
    let ratio = |a: &[f64], b: &[f64]| round3(median(a) / median(b));
    let result = json!({
        "events_per_run": plan.events_per_run, "runs_each": ROUNDS,
        "rules": policy.redaction.rules.len(), "detectors": policy.redaction.detectors.len(),
        "without": without.json(), "with": with.json(),
        "stored_ratio": ratio(&with.stored, &without.stored),
        "gateway_cpu_ratio": ratio(&with.gateway_cpu, &without.gateway_cpu),
        "fixed_rate": {"eps": rate.round(), "seconds_per_run": FIXED_RUN.as_secs(),
                       "without_gateway_cpu_s_per_1k_runs": fixed[0],
                       "with_gateway_cpu_s_per_1k_runs": fixed[1],
                       "gateway_cpu_ratio": ratio(&fixed[1], &fixed[0])},
    });
    println!(
        "  privacy policy at a fixed {rate:.0} ev/s: gateway CPU/1k {:.5} vs {:.5} s (x{})",
        median(&fixed[1]),
        median(&fixed[0]),
        result["fixed_rate"]["gateway_cpu_ratio"]
    );
    println!(
        "  privacy policy (10 rules + 7 detectors): stored {:.0} vs {:.0} ev/s (x{}), gateway CPU/1k {:.5} vs {:.5} s (x{})",
        median(&with.stored),
        median(&without.stored),
        result["stored_ratio"],
        median(&with.gateway_cpu),
        median(&without.gateway_cpu),
        result["gateway_cpu_ratio"]
    );
    Ok(result)
}

/// Length of one fixed-rate run.
const FIXED_RUN: Duration = Duration::from_secs(12);

/// Gateway CPU per 1k events, run by run, without (`[0]`) and with (`[1]`) the policy, both
/// sides sending the same `rate` on schedule: the gateway then does the same work per
/// second either way, so its CPU per event is not blurred by how a saturated machine shares
/// its two cores between the gateway, the writer, NATS and ClickHouse.
async fn at_fixed_rate(
    target: &Target,
    private: &Target,
    watched: &[Watched],
    plan: &Plan,
    rate: f64,
) -> anyhow::Result<[Vec<f64>; 2]> {
    let mut runs: [Vec<f64>; 2] = Default::default();
    for round in 0..ROUNDS {
        for with_policy in abba(round) {
            target.settle(plan.settle).await?;
            let side = if with_policy { private } else { target };
            let first_client = 8_000 + plan.concurrency * (2 * round + u64::from(with_policy));
            let mark = CpuMark::take(watched);
            let run = ingest::open_loop(
                side,
                rate,
                plan.batch,
                FIXED_RUN,
                first_client,
                plan.concurrency,
            )
            .await?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let events = (run.achieved_rate * FIXED_RUN.as_secs_f64()) as u64;
            let gateway = mark
                .per_thousand(events)
                .into_iter()
                .find(|(name, _)| name == "gateway")
                .map(|(_, seconds)| round5(seconds));
            runs[usize::from(with_policy)].extend(gateway);
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy's cost per event on the benchmark's own events, outside any service
    /// (`cargo test --release -p chaukas-bench -- --ignored --nocapture`).
    #[test]
    #[ignore = "a timing, not a check: run by hand"]
    fn redaction_cost_on_the_workload() {
        let text = std::env::var("CHAUKAS_REDACTION_POLICY").unwrap_or(POLICY.to_owned());
        let policy = Policy::parse(text.as_bytes()).unwrap();
        let salt = chaukas_privacy::Salt {
            id: "bench".into(),
            key: chaukas_privacy::Keyed::new(b"bench secret"),
        };
        let redactor = chaukas_privacy::Redactor::new([&policy], Some(salt));
        let mut client = crate::workload::Client::new("r1", 1, 50);
        let events = client.batch(20_000);
        // More passes for a profiler: CHAUKAS_REDACTION_PASSES=200.
        let passes: u32 = std::env::var("CHAUKAS_REDACTION_PASSES")
            .ok()
            .and_then(|passes| passes.parse().ok())
            .unwrap_or(1);
        let mut with = std::time::Duration::ZERO;
        let mut changed = 0;
        // Batches of 100 fresh copies, as a gateway redacts a request's events right after
        // decoding them: what is timed is the walk over events still in cache.
        for _ in 0..passes {
            changed = 0;
            for chunk in events.chunks(100) {
                let mut copies = chunk.to_vec();
                let started = std::time::Instant::now();
                changed += copies
                    .iter_mut()
                    .map(|copy| usize::from(!redactor.apply(copy).unwrap().is_empty()))
                    .sum::<usize>();
                with += started.elapsed();
            }
        }
        let with = with / passes;
        let started = std::time::Instant::now();
        for event in &events {
            std::hint::black_box(event.clone());
        }
        let clone_only = started.elapsed();
        #[allow(clippy::cast_precision_loss)]
        let per = |d: std::time::Duration| d.as_nanos() as f64 / events.len() as f64;
        println!(
            "{:.0} ns per event for the policy (a clone costs {:.0} ns more); {changed} of {} changed",
            per(with),
            per(clone_only),
            events.len()
        );
    }
}
