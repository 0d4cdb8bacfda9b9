//! The checker: compares what the workload recorded with what ClickHouse holds.
//!
//! * every key whose original was acknowledged is stored exactly once, with the original
//!   content (the copy JetStream accepted first: changed copies were sent after its ack);
//! * every other key sent is stored at most once, with content that was sent;
//! * no key is stored that was never sent;
//! * the pre-aggregated statistics equal counts over the raw rows;
//! * every poison message is in the dead-letter stream exactly once.

use std::collections::{BTreeMap, BTreeSet};

use super::workload::History;

/// The stored copies of one key.
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct StoredKey {
    tenant_id: String,
    event_id: String,
    versions: Vec<String>,
}

/// Per tenant: (rows in `events`, events counted by `stats_type_minute`).
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct TenantCounts {
    tenant_id: String,
    raw: u64,
    aggregated: u64,
}

/// What the checker found wrong (empty when the run is correct), with counts.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Violations, one line each (the first few of each kind).
    pub violations: Vec<String>,
    /// Keys stored.
    pub stored_keys: usize,
    /// Keys whose stored copy was checked to be the original.
    pub originals_checked: usize,
}

fn version_of(agent_name: &str) -> Option<u32> {
    agent_name.strip_prefix('v')?.parse().ok()
}

/// Checks the database behind `client` against `history`.
pub async fn check(client: &clickhouse::Client, history: &History) -> Verdict {
    let stored: Vec<StoredKey> = client
        .query(
            "SELECT tenant_id, event_id, groupArray(agent_name) AS versions \
             FROM events GROUP BY tenant_id, event_id",
        )
        .fetch_all()
        .await
        .expect("read the stored keys");
    let mut verdict = Verdict {
        stored_keys: stored.len(),
        ..Verdict::default()
    };
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for key in stored {
        found.insert((key.tenant_id, key.event_id), key.versions);
    }
    let mut problems: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (key, versions) in &found {
        let Some(record) = history.get(key) else {
            problems
                .entry("stored but never sent")
                .or_default()
                .push(format!("{key:?}"));
            continue;
        };
        if versions.len() > 1 {
            problems
                .entry("stored more than once")
                .or_default()
                .push(format!("{key:?}: {versions:?}"));
        }
        let sent: BTreeSet<u32> = record.versions.clone();
        for version in versions {
            if !version_of(version).is_some_and(|v| sent.contains(&v)) {
                problems
                    .entry("content never sent")
                    .or_default()
                    .push(format!("{key:?}: {version}"));
            }
        }
        if record.original_acked {
            verdict.originals_checked += 1;
            if versions.iter().any(|version| version != "v0") {
                problems
                    .entry("a later copy stored instead of the acknowledged original")
                    .or_default()
                    .push(format!("{key:?}: stored {versions:?}, sent {sent:?}"));
            }
        }
    }
    for (key, record) in history {
        if record.original_acked && !found.contains_key(key) {
            problems
                .entry("acknowledged but not stored")
                .or_default()
                .push(format!("{key:?}"));
        }
    }
    check_aggregates(client, &mut problems).await;
    for (kind, cases) in problems {
        let shown: Vec<&String> = cases.iter().take(5).collect();
        verdict
            .violations
            .push(format!("{kind}: {} keys, e.g. {shown:?}", cases.len()));
    }
    verdict
}

async fn check_aggregates(
    client: &clickhouse::Client,
    problems: &mut BTreeMap<&'static str, Vec<String>>,
) {
    let counts: Vec<TenantCounts> = client
        .query(
            "SELECT tenant_id, raw, aggregated FROM \
             (SELECT tenant_id, count() AS raw FROM events GROUP BY tenant_id) \
             ANY FULL OUTER JOIN \
             (SELECT tenant_id, sum(events) AS aggregated FROM stats_type_minute \
              GROUP BY tenant_id) USING tenant_id",
        )
        .fetch_all()
        .await
        .expect("read the counts");
    for tenant in counts {
        if tenant.raw != tenant.aggregated {
            problems
                .entry("statistics differ from the raw rows")
                .or_default()
                .push(format!(
                    "{}: {} rows, statistics say {}",
                    tenant.tenant_id, tenant.raw, tenant.aggregated
                ));
        }
    }
}

/// Every tenant's log verifies: once the writers have signed a checkpoint covering all its
/// stored events, each event recomputes to its leaf, the leaves run from 0 without gaps or
/// repeats, and they hash to the signed root.
pub async fn logs_intact(
    client: &clickhouse::Client,
    log: &chaukas_audit::LogConfig,
) -> Vec<String> {
    let trusted = log.verifiers().expect("the run's key");
    let tenants: Vec<String> = client
        .query("SELECT DISTINCT tenant_id FROM events ORDER BY tenant_id")
        .fetch_all()
        .await
        .expect("read the tenants");
    let mut violations = Vec::new();
    for tenant in tenants {
        let events = chaukas_store::log::sealed_events(client, &tenant)
            .await
            .expect("read the tenant's events");
        let size = events.len() as u64;
        let origin = chaukas_audit::origin(&log.name, &tenant);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        // The newest checkpoint once it covers every stored event (or the deadline passed).
        let checkpoint = loop {
            let latest = chaukas_store::log::latest_checkpoint(client, &tenant)
                .await
                .expect("read the checkpoint")
                .and_then(|row| chaukas_audit::Checkpoint::open(&row.note, &trusted, &origin).ok());
            let covered = latest.as_ref().is_some_and(|c| c.size >= size);
            if covered || std::time::Instant::now() > deadline {
                break latest;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let Some(checkpoint) = checkpoint else {
            violations.push(format!(
                "tenant {tenant}: no signed checkpoint for its {size} events"
            ));
            continue;
        };
        // Against the log's own record of its leaves too, as `chaukas verify` checks.
        let record = chaukas_store::retention::log_record(client, &tenant)
            .await
            .expect("read the log's record");
        let audit = chaukas_audit::verify::audit_with_record(events, &checkpoint, &record);
        for finding in audit.findings.iter().take(5) {
            violations.push(format!("tenant {tenant} log: {finding}"));
        }
        if checkpoint.size != size {
            violations.push(format!(
                "tenant {tenant}: checkpoint covers {} leaves, {size} events stored",
                checkpoint.size
            ));
        }
    }
    violations
}
