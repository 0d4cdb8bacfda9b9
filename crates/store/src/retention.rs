//! Retention's statements (migration 0005): where a tenant's log may be pruned up to, the
//! record of each prune, and the deletion itself. Only `chaukas retention apply` calls
//! these, as the admin user: the writer and query users cannot delete (docs/privacy.md).

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// One prune of a tenant's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct PruneRow {
    /// Whose log.
    pub tenant_id: String,
    /// Leaves below this may have lost their event.
    pub pruned_below: u64,
    /// Events stored before this (ns) were past the maximum retention.
    pub cutoff_ns: i64,
    /// Events removed.
    pub events: u64,
    /// When (ns).
    pub run_at_ns: i64,
    /// Who ran it.
    pub run_by: String,
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct Boundary {
    newer: u64,
    first_newer: u64,
}

/// The highest `pruned_below` recorded for `tenant` (0: never pruned).
pub async fn pruned_below(client: &clickhouse::Client, tenant: &str) -> Result<u64, StoreError> {
    let sql = "SELECT max(pruned_below) FROM log_prunes WHERE tenant_id = ?";
    client
        .query(sql)
        .bind(tenant)
        .fetch_one()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

/// The longest prefix of `tenant`'s log whose events were all stored before `cutoff_ns`:
/// the first leaf of an event stored at or after the cutoff, or the log's size when every
/// stored event is older. Leaves are in storage order, so everything below is older.
pub async fn prunable_below(
    client: &clickhouse::Client,
    tenant: &str,
    cutoff_ns: i64,
) -> Result<u64, StoreError> {
    let sql = "SELECT count() AS newer, min(leaf_index) AS first_newer FROM events \
               WHERE tenant_id = ? AND sealed = 1 AND ingest_time_ns >= ?";
    let boundary: Boundary = client
        .query(sql)
        .bind(tenant)
        .bind(cutoff_ns)
        .fetch_one()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    if boundary.newer > 0 {
        return Ok(boundary.first_newer);
    }
    Ok(crate::log::stored_size(client, tenant).await?.size)
}

/// Events of `tenant` still stored below leaf `below` (what a prune would remove).
pub async fn events_below(
    client: &clickhouse::Client,
    tenant: &str,
    below: u64,
) -> Result<u64, StoreError> {
    let sql = "SELECT count() FROM events \
               WHERE tenant_id = ? AND sealed = 1 AND leaf_index < ?";
    client
        .query(sql)
        .bind(tenant)
        .bind(below)
        .fetch_one()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

/// Records a prune; done before [`delete_below`], so no event is ever missing unexplained.
pub async fn record(client: &clickhouse::Client, row: &PruneRow) -> Result<(), StoreError> {
    crate::events::insert_rows(client, "log_prunes", std::iter::once(row)).await
}

/// Removes the events of `tenant` below leaf `below` (a mutation: ClickHouse applies it in
/// the background; the leaves stay).
pub async fn delete_below(
    client: &clickhouse::Client,
    tenant: &str,
    below: u64,
) -> Result<(), StoreError> {
    let sql = "ALTER TABLE events DELETE \
               WHERE tenant_id = ? AND sealed = 1 AND leaf_index < ?";
    client
        .query(sql)
        .bind(tenant)
        .bind(below)
        .execute()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

/// What `chaukas verify` checks `tenant`'s events against besides the checkpoint: the
/// log's record of every leaf and the highest `pruned_below` (read as they are: a damaged
/// or missing entry is for the verifier to report, not for this read to refuse).
pub async fn log_record(
    client: &clickhouse::Client,
    tenant: &str,
) -> Result<chaukas_audit::verify::LogRecord, StoreError> {
    Ok(chaukas_audit::verify::LogRecord {
        pruned_below: pruned_below(client, tenant).await?,
        entries: crate::log::recorded_entries(client, tenant, None).await?,
    })
}
