//! The live tail's read side (`GET /v1/tail`, docs/sessions.md): the events stored after a
//! leaf of the tenant's log, in leaf order, filtered.
//!
//! The cursor is the tenant's leaf index. Leaves are gapless and assigned in storage order
//! (the writer is each tenant's only sequencer), and become visible as a prefix, so a read
//! that stops at the first leaf not yet visible and resumes from it loses and repeats
//! nothing. Each leaf in `log_leaves` records where its event is stored (migration 0008), so
//! a leaf range turns into keyed reads of `events`.

use std::collections::BTreeMap;

use chaukas_audit::content::with_log_fields;
use chaukas_proto::internal::v1::{TailEvent, TailRequest, TailResponse};
use prost::Message;

use crate::QueryError;
use crate::sql::Sql;

/// Leaves examined per request at most.
pub const MAX_LIMIT: u32 = 500;
/// Payload bytes returned per request at most (the rest follows in the next request).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A leaf and where its event is stored (the primary key of `events`).
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct IndexRow {
    leaf_index: u64,
    project_id: String,
    event_time_ns: i64,
    event_id: String,
}

impl IndexRow {
    /// Whether the leaf was recorded with its event's location (leaves recorded before
    /// migration 0008 were not). A located row can look unlocated only if its event has
    /// time 0 and no project; then it is merely looked up the slow way.
    fn is_located(&self) -> bool {
        self.event_time_ns != 0 || !self.project_id.is_empty()
    }
}

/// A stored event's payload and the columns its log fields are filled from (also what the
/// detail page reads of one event).
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
pub(super) struct StoredRow {
    pub(super) leaf_index: u64,
    pub(super) sealed: u8,
    #[serde(with = "serde_bytes")]
    pub(super) content_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub(super) payload: Vec<u8>,
}

/// One page of the tail.
pub async fn read(
    client: &clickhouse::Client,
    request: &TailRequest,
) -> Result<TailResponse, QueryError> {
    let tenant = request.tenant_id.as_str();
    let from = match u64::try_from(request.from_leaf) {
        Ok(leaf) => leaf,
        Err(_) => chaukas_store::log::stored_size(client, tenant).await?.size,
    };
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let index = visible_prefix(client, tenant, from, limit).await?;
    let Some(last) = index.last() else {
        return Ok(TailResponse {
            events: Vec::new(),
            next_leaf: from,
        });
    };
    let mut stored = stored_rows(client, tenant, &index).await?;
    let mut entries = chaukas_store::log::entries_around(
        client,
        tenant,
        stored
            .values()
            .filter(|row| row.sealed != 0)
            .map(|row| row.leaf_index),
    )
    .await?;
    let mut events = Vec::new();
    let mut bytes = 0usize;
    let mut next_leaf = last.leaf_index + 1;
    for key in &index {
        let Some(row) = stored.remove(&key.leaf_index) else {
            // Indexed but its event is gone (retention pruned it): nothing to show.
            continue;
        };
        let hash = chaukas_store::log::sealed_hash(
            row.sealed != 0,
            &row.content_hash,
            key.leaf_index,
            &row.payload,
            &entries,
        );
        let event = with_log_fields(&row.payload, key.leaf_index, &hash, &entries)
            .map_err(|error| QueryError::Corrupt(format!("event {:?}: {error}", key.event_id)))?;
        if let Ok(hash) = chaukas_audit::Hash::try_from(hash.as_slice()) {
            // The next leaf's `hash_prev`, should the log have lost this leaf's row.
            entries.entry(key.leaf_index).or_insert(hash);
        }
        if !matches(&event, request) {
            continue;
        }
        if !events.is_empty() && bytes + row.payload.len() > MAX_RESPONSE_BYTES {
            next_leaf = key.leaf_index;
            break;
        }
        bytes += row.payload.len();
        events.push(TailEvent {
            leaf_index: key.leaf_index,
            event: event.encode_to_vec(),
        });
    }
    Ok(TailResponse { events, next_leaf })
}

/// Whether `event` passes the request's filters (and its project, for a project key).
fn matches(event: &chaukas_proto::common::v1::Event, request: &TailRequest) -> bool {
    (request.project_id.is_empty() || event.project_id == request.project_id)
        && (request.session_id.is_empty() || event.session_id == request.session_id)
        && (request.agent.is_empty()
            || event.agent_name == request.agent
            || event.agent_id == request.agent)
        && (request.types.is_empty() || request.types.contains(&event.r#type))
}

/// The leaves `from..` that are visible as a contiguous run from `from`, each once (a
/// replayed insert can record a leaf twice), each with where its event is stored.
async fn visible_prefix(
    client: &clickhouse::Client,
    tenant: &str,
    from: u64,
    limit: u32,
) -> Result<Vec<IndexRow>, QueryError> {
    let mut sql = Sql::new(
        "SELECT leaf_index, project_id, event_time_ns, event_id FROM log_leaves WHERE tenant_id = ",
    );
    sql.text(tenant)
        .push(" AND leaf_index >= ")
        .int(i64::try_from(from).unwrap_or(i64::MAX))
        .push(" ORDER BY leaf_index LIMIT ")
        .int(i64::from(limit) * 2);
    let rows: Vec<IndexRow> = sql.fetch_all(client).await?;
    let mut prefix: Vec<IndexRow> = Vec::new();
    for row in rows {
        let expected = from + prefix.len() as u64;
        if let Some(last) = prefix.last_mut()
            && last.leaf_index == row.leaf_index
        {
            if !last.is_located() {
                *last = row;
            }
            continue;
        }
        if prefix.len() as u32 == limit {
            break;
        }
        if row.leaf_index != expected {
            // A later leaf is recorded but this one is not. Normally it is not stored yet
            // (leaves appear as a prefix): wait for it. But if it is stored — a server that
            // failed between writing `events` and its views — read its keys from `events`,
            // so the tail does not stall on it forever.
            let found = locate(client, tenant, &[expected]).await?.remove(&expected);
            match found {
                Some(found) if expected + 1 == row.leaf_index => {
                    tracing::warn!(
                        tenant,
                        leaf = expected,
                        "a stored event is missing from log_leaves; read from events"
                    );
                    prefix.push(found);
                    if prefix.len() as u32 == limit {
                        break;
                    }
                }
                Some(found) => {
                    prefix.push(found);
                    break;
                }
                None => break,
            }
        }
        prefix.push(row);
    }
    locate_unlocated(client, tenant, &mut prefix).await?;
    Ok(prefix)
}

/// Fills in where the events of leaves recorded without a location (before migration 0008)
/// are stored, from `events` (one scan of the tenant's rows for the whole page). A leaf whose
/// event is gone (pruned) stays unlocated and is skipped by the read.
async fn locate_unlocated(
    client: &clickhouse::Client,
    tenant: &str,
    prefix: &mut [IndexRow],
) -> Result<(), QueryError> {
    let unlocated: Vec<u64> = prefix
        .iter()
        .filter(|row| !row.is_located())
        .map(|row| row.leaf_index)
        .collect();
    if unlocated.is_empty() {
        return Ok(());
    }
    let mut found = locate(client, tenant, &unlocated).await?;
    for row in prefix.iter_mut() {
        if let Some(location) = found.remove(&row.leaf_index) {
            *row = location;
        }
    }
    Ok(())
}

/// Where the events of `leaves` are stored, read from `events` itself: a scan of the
/// tenant's rows, only for leaves `log_leaves` has no location for.
async fn locate(
    client: &clickhouse::Client,
    tenant: &str,
    leaves: &[u64],
) -> Result<BTreeMap<u64, IndexRow>, QueryError> {
    let mut sql = Sql::new(
        "SELECT leaf_index, project_id, event_time_ns, event_id FROM events WHERE tenant_id = ",
    );
    sql.text(tenant)
        .push(" AND sealed = 1 AND leaf_index IN (")
        .ints(
            leaves
                .iter()
                .map(|leaf| i64::try_from(*leaf).unwrap_or(i64::MAX)),
        )
        .push(")");
    let rows: Vec<IndexRow> = sql.fetch_all(client).await?;
    Ok(rows.into_iter().map(|row| (row.leaf_index, row)).collect())
}

/// The stored rows of `index`, by leaf: one read bounded by the primary key of `events`
/// (tenant, the projects, the time span, the ids).
async fn stored_rows(
    client: &clickhouse::Client,
    tenant: &str,
    index: &[IndexRow],
) -> Result<BTreeMap<u64, StoredRow>, QueryError> {
    let sql = crate::events::keyed_read(
        "leaf_index, sealed, content_hash, payload",
        tenant,
        index
            .iter()
            .map(|row| (&row.project_id, row.event_time_ns, &row.event_id)),
    );
    let rows: Vec<StoredRow> = sql.fetch_all(client).await?;
    Ok(rows.into_iter().map(|row| (row.leaf_index, row)).collect())
}
