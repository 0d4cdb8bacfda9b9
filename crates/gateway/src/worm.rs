//! `Capabilities.worm_retention`, as this gateway can vouch for it: true only while every
//! running writer reports an insert-only ClickHouse user (`chaukas_bus::status`) and the
//! query service reports a read-only one; then the only way to delete is the admin's
//! `chaukas retention apply` (docs/privacy.md). Anything unknown — no writer reporting, the
//! query service unreachable, the status bucket missing — counts as not enforced.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream;
use chaukas_bus::status;
use tokio_util::sync::CancellationToken;

use crate::service::QueryForwarder;

/// The current answers, renewed in the background.
#[derive(Default)]
pub struct WormStatus {
    enforced: AtomicBool,
    /// Some running writer stores events unsealed (`log.enabled = false`).
    unsealed: AtomicBool,
}

impl WormStatus {
    /// Whether write-once retention is enforced, as last checked.
    pub fn enforced(&self) -> bool {
        self.enforced.load(Ordering::Relaxed)
    }

    /// Whether stored events are sealed into the audit log (`Capabilities.audit_proofs`):
    /// true unless a running writer reported that its log is off.
    pub fn sealing(&self) -> bool {
        !self.unsealed.load(Ordering::Relaxed)
    }
}

/// Renews `worm` every [`status::REPORT_EVERY`] until `stop`.
pub async fn watch(
    worm: Arc<WormStatus>,
    jetstream: jetstream::Context,
    nats: chaukas_bus::NatsConfig,
    query: QueryForwarder,
    stop: CancellationToken,
) {
    let spec = status::bucket_spec(&nats);
    let mut bucket = None;
    let mut tick = tokio::time::interval(status::REPORT_EVERY / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Shutdown does not wait for NATS or the query service to answer.
        let checked = async {
            if bucket.is_none() {
                bucket = chaukas_bus::kv::open_bucket(&jetstream, &spec).await.ok();
            }
            let writers = match &bucket {
                Some(bucket) => status::writers(bucket).await?,
                None => {
                    return Err("the status bucket does not exist (run `chaukas migrate`)".into());
                }
            };
            let unsealed = writers.iter().any(|writer| !writer.sealing);
            match (worm.unsealed.swap(unsealed, Ordering::Relaxed), unsealed) {
                (false, true) => {
                    tracing::warn!("a running writer has the audit log off: audit_proofs is false");
                }
                (true, false) => tracing::info!("every running writer seals: audit_proofs is true"),
                _ => {}
            }
            assess(&writers, &query).await
        };
        let enforced = tokio::select! {
            () = stop.cancelled() => return,
            enforced = checked => enforced,
        };
        let was = worm.enforced.swap(enforced.is_ok(), Ordering::Relaxed);
        match enforced {
            Err(reason) if was => tracing::warn!(reason, "worm_retention is no longer enforced"),
            Err(reason) => tracing::debug!(reason, "worm_retention not enforced"),
            Ok(()) if !was => tracing::info!("worm_retention enforced"),
            Ok(()) => {}
        }
    }
}

/// Ok when the writers and the query service all report confined users; else why not.
async fn assess(writers: &[status::WriterReport], query: &QueryForwarder) -> Result<(), String> {
    if writers.is_empty() {
        return Err("no writer has reported".into());
    }
    if let Some(writer) = writers.iter().find(|writer| !writer.insert_only) {
        return Err(format!("a writer is not insert-only: {}", writer.reason));
    }
    let capabilities = query
        .capabilities()
        .await
        .map_err(|status| format!("the query service did not answer: {}", status.message()))?;
    if !capabilities.worm_retention {
        return Err("the query service's user is not read-only".into());
    }
    Ok(())
}
