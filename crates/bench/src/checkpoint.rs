//! Checkpoint latency (issue #14): from a gateway's ack of an event to a signed checkpoint
//! that covers it, on a tenant of its own while the rest of the benchmark loads the stack.
//!
//! Probes go out at a steady pace, each acked before the next is sent, without waiting for
//! the previous one to be covered: one sample per probe, about a hundred per quick run, so
//! the p99 is a quantile rather than the slowest of a dozen. A probe is covered once the
//! newest checkpoint's tree size is past the probe's own leaf index (read from `log_leaves`),
//! which stays exact if the writer stores the tenant's events out of send order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use chaukas_proto::common::v1::{Event, EventType};
use chaukas_proto::server::v1 as server;
use tokio::sync::Mutex;

use crate::ingest::{self, OpenLoop, Target};
use crate::stats::Samples;

/// How often the checkpoint table is looked at.
const POLL: Duration = Duration::from_millis(20);
/// Time between probes.
const PACE: Duration = Duration::from_millis(100);
/// A checkpoint later than this counts as missing.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Probes acked and not yet covered, by event id, and whether the last has been sent.
#[derive(Default)]
struct Pending {
    acked: Mutex<HashMap<String, Instant>>,
    all_sent: AtomicBool,
}

/// An open loop at `rate` events/s (see [`ingest::open_loop`]) with checkpoint probes of
/// their own (`label`) alongside.
pub async fn under_open_loop(
    target: &Target,
    rate: f64,
    batch: usize,
    duration: Duration,
    first_client: u64,
    clients: u64,
    label: &str,
) -> anyhow::Result<(OpenLoop, Samples)> {
    let (open, checkpoints) = tokio::join!(
        ingest::open_loop(target, rate, batch, duration, first_client, clients),
        latency(target, label, duration),
    );
    println!("  active parts after: {:?}", target.active_parts().await?);
    Ok((open?, checkpoints?))
}

/// Samples ack → covering checkpoint for probes sent during `duration`, on a tenant named
/// after `label`.
async fn latency(target: &Target, label: &str, duration: Duration) -> anyhow::Result<Samples> {
    let tenant = format!("{}-checkpoints-{label}", target.run);
    let pending = Pending::default();
    let (sent, samples) = tokio::join!(
        async {
            let sent = send_probes(target, &tenant, duration, &pending).await;
            pending.all_sent.store(true, Ordering::Release);
            sent
        },
        collect_covered(target, &tenant, &pending),
    );
    let (sent, samples) = (sent?, samples?);
    println!(
        "  checkpoint probes: {sent} sent, {} covered",
        samples.len()
    );
    Ok(samples)
}

/// Sends one probe every [`PACE`] until `duration` has passed; returns how many.
async fn send_probes(
    target: &Target,
    tenant: &str,
    duration: Duration,
    pending: &Pending,
) -> anyhow::Result<u64> {
    let mut grpc = target.grpc.clone();
    let mut pace = tokio::time::interval(PACE);
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        pace.tick().await;
        let event_id = format!("checkpoint-probe-{sent}");
        let event = Event {
            event_id: event_id.clone(),
            tenant_id: tenant.to_owned(),
            r#type: EventType::System as i32,
            ..Event::default()
        };
        grpc.ingest_event(server::IngestEventRequest { event: Some(event) })
            .await?;
        pending.acked.lock().await.insert(event_id, Instant::now());
        sent += 1;
    }
    Ok(sent)
}

/// Watches the tenant's checkpoints and takes a sample for each probe as it is covered;
/// ends once probes have stopped and none is pending.
async fn collect_covered(
    target: &Target,
    tenant: &str,
    pending: &Pending,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let mut covered_size = 0u64;
    loop {
        tokio::time::sleep(POLL).await;
        let size: u64 = target
            .clickhouse
            .query("SELECT max(tree_size) FROM log_checkpoints WHERE tenant_id = ?")
            .bind(tenant)
            .fetch_one()
            .await?;
        let now = Instant::now();
        if size > covered_size {
            let newly: Vec<String> = target
                .clickhouse
                .query(
                    "SELECT event_id FROM log_leaves \
                     WHERE tenant_id = ? AND leaf_index >= ? AND leaf_index < ?",
                )
                .bind(tenant)
                .bind(covered_size)
                .bind(size)
                .fetch_all()
                .await?;
            let mut acked_probes = pending.acked.lock().await;
            for event_id in newly {
                if let Some(acked) = acked_probes.remove(&event_id) {
                    samples.push(now.saturating_duration_since(acked));
                }
            }
            covered_size = size;
        }
        // Read before looking at the map: a probe acked after this is still seen next time.
        let all_sent = pending.all_sent.load(Ordering::Acquire);
        let acked_probes = pending.acked.lock().await;
        if let Some(oldest) = acked_probes.values().min()
            && oldest.elapsed() > GIVE_UP
        {
            bail!("a probe had no covering checkpoint within {GIVE_UP:?} of its ack");
        }
        if all_sent && acked_probes.is_empty() {
            return Ok(samples);
        }
    }
}
