//! Reads and writes the writer needs for exactly-once storage: claims, existence checks and
//! the inserts themselves.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::scratch::{Scratch, checked_stage};
use crate::{EventRow, StoreError};

/// Keys per lookup query, and bytes of key text per lookup query: together they keep the
/// query text well under ClickHouse's `max_query_size` (256 KiB by default), whatever the
/// ids' lengths.
const KEYS_PER_LOOKUP: usize = 2_000;
const KEY_BYTES_PER_LOOKUP: usize = 96 * 1024;

/// Splits `items` into runs small enough for one lookup query; `size` is an item's bytes.
fn lookup_chunks<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        let item_bytes = size(item) + 16;
        if index > start
            && (index - start == KEYS_PER_LOOKUP || bytes + item_bytes > KEY_BYTES_PER_LOOKUP)
        {
            chunks.push(&items[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

/// A (tenant id, event id) pair: what makes an event unique.
pub type EventKey = (String, String);

/// One row of `event_claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct ClaimRow {
    /// Tenant of the event.
    pub tenant_id: String,
    /// Event id.
    pub event_id: String,
    /// JetStream stream sequence of the message that carried the claimed copy.
    pub stream_seq: u64,
    /// When the claim was written, ns since the epoch.
    pub claimed_at_ns: i64,
}

/// Makes `table`, a claim lookup table among the writer's scratch tables (see [`Scratch`]):
/// a Memory table that many lookups share, each under a number of its own, so a lookup
/// costs no DDL. A scratch table rather than a session's temporary table: creating one is
/// DDL, which the writer's insert-only user may not run (docs/privacy.md).
pub async fn create_lookup(scratch: &Scratch, table: &str) -> Result<(), StoreError> {
    let table = checked_stage(table)?;
    let create = format!(
        "CREATE TABLE {table} (lookup UInt64, tenant_id String, event_id String) ENGINE = Memory"
    );
    scratch
        .client
        .query(&create)
        .execute()
        .await
        .map_err(|source| StoreError::query(&create, source))
}

/// The stream sequence that claimed each of `keys`, for those that are claimed.
///
/// The keys travel as data, not SQL: they are inserted (RowBinary) into the lookup table
/// `table` (see [`create_lookup`]) under the number `lookup`, which no other lookup in that
/// table uses, and the claims are selected with `tenant_id IN (SELECT ...) AND event_id IN
/// (SELECT ...)`, which 18.16 answers from the primary key. Measured on 5.8M claims, 20k
/// recent keys: 0.02 s, against 0.12 s for the same lookup as literal `IN` lists (0.1 s of
/// it parsing the SQL) and far more writer CPU for binding them. The cross-product superset
/// is narrowed to the exact pairs here.
pub async fn claims(
    client: &clickhouse::Client,
    scratch: &Scratch,
    table: &str,
    lookup: u64,
    keys: &[EventKey],
) -> Result<HashMap<EventKey, u64>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let table = checked_stage(table)?;
    let rows: Vec<LookupKey> = keys
        .iter()
        .map(|(tenant_id, event_id)| LookupKey {
            lookup,
            tenant_id: tenant_id.clone(),
            event_id: event_id.clone(),
        })
        .collect();
    insert_rows(&scratch.client, table, rows.iter()).await?;
    let table = scratch.qualified(table);
    let select = format!(
        "SELECT tenant_id, event_id, min(stream_seq) FROM event_claims \
         WHERE tenant_id IN (SELECT tenant_id FROM {table} WHERE lookup = {lookup}) \
         AND event_id IN (SELECT event_id FROM {table} WHERE lookup = {lookup}) \
         GROUP BY tenant_id, event_id"
    );
    let found: Vec<(String, String, u64)> = client
        .query(&select)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(&select, source))?;
    let wanted: HashSet<&EventKey> = keys.iter().collect();
    Ok(found
        .into_iter()
        .map(|(tenant_id, event_id, stream_seq)| ((tenant_id, event_id), stream_seq))
        .filter(|(key, _)| wanted.contains(key))
        .collect())
}

/// A key as a row of the lookup table.
#[derive(Serialize, Deserialize, clickhouse::Row)]
struct LookupKey {
    lookup: u64,
    tenant_id: String,
    event_id: String,
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Which of `rows` are already in `events`, matched on the full sort key (tenant, project,
/// event time, event id): exact for a redelivered message, whose rows are identical. Literal
/// lists and a time range on the key columns keep the read to the granules concerned.
pub async fn stored(
    client: &clickhouse::Client,
    rows: &[&EventRow],
) -> Result<HashSet<EventKey>, StoreError> {
    let mut found = HashSet::new();
    for chunk in lookup_chunks(rows, |row| {
        row.tenant_id.len() + row.project_id.len() + row.event_id.len()
    }) {
        let wanted: HashSet<(&str, &str, i64, &str)> = chunk
            .iter()
            .map(|row| {
                (
                    row.tenant_id.as_str(),
                    row.project_id.as_str(),
                    row.event_time_ns,
                    row.event_id.as_str(),
                )
            })
            .collect();
        let (tenants, ids) = distinct_parts(
            chunk
                .iter()
                .map(|row| (row.tenant_id.as_str(), row.event_id.as_str())),
        );
        let projects: Vec<&str> = chunk
            .iter()
            .map(|row| row.project_id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let earliest = chunk.iter().map(|row| row.event_time_ns).min().unwrap_or(0);
        let latest = chunk.iter().map(|row| row.event_time_ns).max().unwrap_or(0);
        let sql = format!(
            "SELECT tenant_id, project_id, event_time_ns, event_id FROM events \
             WHERE tenant_id IN ({}) AND project_id IN ({}) \
             AND event_time_ns >= ? AND event_time_ns <= ? AND event_id IN ({})",
            placeholders(tenants.len()),
            placeholders(projects.len()),
            placeholders(ids.len())
        );
        let mut query = client.query(&sql);
        for value in tenants.iter().chain(&projects) {
            query = query.bind(*value);
        }
        query = query.bind(earliest).bind(latest);
        for value in &ids {
            query = query.bind(*value);
        }
        let rows: Vec<(String, String, i64, String)> = query
            .fetch_all()
            .await
            .map_err(|source| StoreError::query(&sql, source))?;
        for (tenant_id, project_id, event_time_ns, event_id) in rows {
            let candidate = (
                tenant_id.as_str(),
                project_id.as_str(),
                event_time_ns,
                event_id.as_str(),
            );
            if wanted.contains(&candidate) {
                found.insert((tenant_id, event_id));
            }
        }
    }
    Ok(found)
}

/// Inserts claims; each INSERT is one request, atomic per partition on the server.
pub async fn insert_claims(
    client: &clickhouse::Client,
    claims: &[ClaimRow],
) -> Result<(), StoreError> {
    insert_rows(client, "event_claims", claims.iter()).await
}

/// Inserts event rows.
pub async fn insert_events(
    client: &clickhouse::Client,
    rows: &[&EventRow],
) -> Result<(), StoreError> {
    insert_rows(client, "events", rows.iter().copied()).await
}

pub(crate) async fn insert_rows<'r, T>(
    client: &clickhouse::Client,
    table: &str,
    rows: impl ExactSizeIterator<Item = &'r T>,
) -> Result<(), StoreError>
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    if rows.len() == 0 {
        return Ok(());
    }
    let statement = format!("INSERT INTO {table}");
    let failed = |source| StoreError::query(&statement, source);
    let mut insert = client.insert::<T>(table).await.map_err(failed)?;
    for row in rows {
        insert.write(row).await.map_err(failed)?;
    }
    insert.end().await.map_err(failed)
}

fn distinct_parts<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut tenants = HashSet::new();
    let mut ids = HashSet::new();
    for (tenant, id) in keys {
        tenants.insert(tenant);
        ids.insert(id);
    }
    (tenants.into_iter().collect(), ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_split_by_count_and_by_bytes() {
        let short: Vec<usize> = vec![10; 4_500];
        let sizes: Vec<usize> = lookup_chunks(&short, |n| *n)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [2_000, 2_000, 500]);

        let long: Vec<usize> = vec![500; 1_000];
        let chunks = lookup_chunks(&long, |n| *n);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chunk.iter().map(|n| n + 16).sum::<usize>() <= KEY_BYTES_PER_LOOKUP);
        }
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1_000);
        assert!(lookup_chunks(&Vec::<usize>::new(), |n| *n).is_empty());
    }
}
