//! Checkpoint latency (issue #14): from a gateway's ack of an event to a signed checkpoint
//! that covers it, sampled one event at a time on a tenant of its own while the rest of the
//! benchmark loads the stack.

use std::time::{Duration, Instant};

use anyhow::bail;
use chaukas_proto::common::v1::{Event, EventType};
use chaukas_proto::server::v1 as server;

use crate::ingest::Target;
use crate::stats::Samples;

/// How often the checkpoint table is looked at.
const POLL: Duration = Duration::from_millis(20);
/// A checkpoint later than this counts as missing.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Samples ack → covering checkpoint until `duration` has passed.
pub async fn latency(target: &Target, duration: Duration) -> anyhow::Result<Samples> {
    let tenant = format!("{}-checkpoints", target.run);
    let mut grpc = target.grpc.clone();
    let mut samples = Samples::default();
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        let event = Event {
            event_id: format!("checkpoint-probe-{sent}"),
            tenant_id: tenant.clone(),
            r#type: EventType::System as i32,
            ..Event::default()
        };
        grpc.ingest_event(server::IngestEventRequest { event: Some(event) })
            .await?;
        let acked = Instant::now();
        sent += 1;
        loop {
            let covered: u64 = target
                .clickhouse
                .query("SELECT max(tree_size) FROM log_checkpoints WHERE tenant_id = ?")
                .bind(tenant.as_str())
                .fetch_one()
                .await?;
            if covered >= sent {
                break;
            }
            if acked.elapsed() > GIVE_UP {
                bail!(
                    "no checkpoint covered leaf {} within {GIVE_UP:?} of its ack",
                    sent - 1
                );
            }
            tokio::time::sleep(POLL).await;
        }
        samples.push(acked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(samples)
}
