//! What running services report about themselves for gateways to read: whether each
//! writer's ClickHouse user is confined to inserting (the write-once half of
//! `Capabilities.worm_retention`, docs/privacy.md) and whether it seals events into the audit
//! log (`Capabilities.audit_proofs`, docs/audit.md).
//!
//! Each writer puts its report under a key of its own and renews it; the bucket forgets
//! entries after [`REPORT_LIFETIME`], so a writer that stopped stops counting, and a writer
//! started with a user that may delete makes every gateway say false within that time.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use crate::NatsConfig;
use crate::kv::BucketSpec;

/// How long a report lives unless renewed.
pub const REPORT_LIFETIME: Duration = Duration::from_secs(60);
/// How often a service renews its report: several times per lifetime.
pub const REPORT_EVERY: Duration = Duration::from_secs(15);

const WRITER_PREFIX: &str = "writers.";

/// The status bucket of an event stream, as `chaukas migrate` creates it.
pub fn bucket_spec(nats: &NatsConfig) -> BucketSpec {
    BucketSpec {
        name: format!("{}_STATUS", nats.stream),
        description: "chaukas services' reports about themselves".into(),
        max_age: REPORT_LIFETIME,
        replicas: nats.replicas,
    }
}

/// One writer's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterReport {
    /// Whether its ClickHouse user can insert and read only, as the server says.
    pub insert_only: bool,
    /// What confines it, or what it may do beyond inserting.
    pub reason: String,
    /// Whether it seals the events it stores into their tenants' audit logs (`log.enabled`);
    /// writers from before the switch existed always did.
    #[serde(default = "sealing_by_default")]
    pub sealing: bool,
}

fn sealing_by_default() -> bool {
    true
}

/// Puts `report` under the writer `instance` (letters, digits, `-`, `_`).
pub async fn report_writer(
    bucket: &kv::Store,
    instance: &str,
    report: &WriterReport,
) -> Result<(), String> {
    let value = serde_json::to_vec(report).map_err(|error| error.to_string())?;
    bucket
        .put(format!("{WRITER_PREFIX}{instance}"), value.into())
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Removes the report of the writer `instance`, which is stopping.
pub async fn withdraw_writer(bucket: &kv::Store, instance: &str) -> Result<(), String> {
    bucket
        .delete(format!("{WRITER_PREFIX}{instance}"))
        .await
        .map_err(|error| error.to_string())
}

/// The reports of the writers running now (an unreadable report counts as unconfined).
pub async fn writers(bucket: &kv::Store) -> Result<Vec<WriterReport>, String> {
    use futures_util::StreamExt;
    let mut keys = bucket.keys().await.map_err(|error| error.to_string())?;
    let mut reports = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|error| error.to_string())?;
        if !key.starts_with(WRITER_PREFIX) {
            continue;
        }
        // Gone between listing and reading: expired, so not running.
        let Some(value) = bucket.get(&key).await.map_err(|error| error.to_string())? else {
            continue;
        };
        reports.push(
            serde_json::from_slice(&value).unwrap_or_else(|error| WriterReport {
                insert_only: false,
                reason: format!("unreadable report {key}: {error}"),
                sealing: false,
            }),
        );
    }
    Ok(reports)
}
