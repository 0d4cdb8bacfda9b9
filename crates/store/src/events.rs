//! Reads and writes the writer needs for exactly-once storage: claims, existence checks and
//! the inserts themselves.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{EventRow, StoreError};

/// Keys per lookup query: keeps query text well under ClickHouse's `max_query_size`
/// (256 KiB by default) even with long ids.
const KEYS_PER_LOOKUP: usize = 2_000;

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

/// The stream sequence that claimed each of `keys`, for those that are claimed.
///
/// The keys go in as a literal tuple list, `(tenant_id, event_id) IN ((?, ?), ...)`, with
/// every value bound (escaped by the client, never spliced): on every ClickHouse version
/// this lets the primary key `(tenant_id, event_id)` pick the few granules holding them,
/// so a lookup costs the same however large the table grows.
pub async fn claims(
    client: &clickhouse::Client,
    keys: &[EventKey],
) -> Result<HashMap<EventKey, u64>, StoreError> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let placeholders = vec!["(?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT tenant_id, event_id, min(stream_seq) FROM event_claims \
             WHERE (tenant_id, event_id) IN ({placeholders}) GROUP BY tenant_id, event_id"
        );
        let mut query = client.query(&sql);
        for (tenant_id, event_id) in chunk {
            query = query.bind(tenant_id.as_str()).bind(event_id.as_str());
        }
        let rows: Vec<(String, String, u64)> = query
            .fetch_all()
            .await
            .map_err(|source| StoreError::query(&sql, source))?;
        for (tenant_id, event_id, stream_seq) in rows {
            found.insert((tenant_id, event_id), stream_seq);
        }
    }
    Ok(found)
}

/// Which of `rows` are already in `events`, matched on the full sort key (tenant, project,
/// event time, event id): exact for a redelivered message, whose rows are identical.
pub async fn stored(
    client: &clickhouse::Client,
    rows: &[&EventRow],
) -> Result<HashSet<EventKey>, StoreError> {
    const SQL: &str = "SELECT tenant_id, project_id, event_time_ns, event_id FROM events \
         WHERE tenant_id IN (SELECT arrayJoin(?)) AND project_id IN (SELECT arrayJoin(?)) \
         AND event_time_ns >= ? AND event_time_ns <= ? AND event_id IN (SELECT arrayJoin(?))";
    let mut found = HashSet::new();
    for chunk in rows.chunks(KEYS_PER_LOOKUP) {
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
        let rows: Vec<(String, String, i64, String)> = client
            .query(SQL)
            .bind(tenants)
            .bind(projects)
            .bind(earliest)
            .bind(latest)
            .bind(ids)
            .fetch_all()
            .await
            .map_err(|source| StoreError::query(SQL, source))?;
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

async fn insert_rows<'r, T>(
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
