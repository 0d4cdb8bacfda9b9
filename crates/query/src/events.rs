//! QueryEvents: validation, the plan, and keyset paging.
//!
//! Semantics (also in the README): fields combine with AND; a repeated field matches any of
//! its values; `tags` matches events carrying any listed tag; `text_query` is a
//! case-insensitive substring of the event's human text; the time range includes its start
//! and excludes its end; results are ordered by (event time, event id), newest first unless
//! `order_by_time` is ASC. Events without a client timestamp sort by their ingest time.

use std::collections::BTreeSet;

use chaukas_audit::content::with_log_fields;
use chaukas_proto::common::v1::{QueryFilter, QueryRequest, QueryResponse, SortOrder};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::page_token::{Cursor, PageTokens};
use crate::sql::Sql;
use crate::{QueryError, guardrails};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: usize = 1000;

/// A validated QueryEvents request.
#[derive(Debug, Clone)]
pub struct EventQuery {
    filter: QueryFilter,
    page_size: usize,
    descending: bool,
    cursor: Option<Cursor>,
    digest: [u8; 32],
    start_ns: Option<i64>,
    end_ns: Option<i64>,
}

/// Checks a request and resolves its page token.
pub fn validate(request: QueryRequest, tokens: &PageTokens) -> Result<EventQuery, QueryError> {
    let filter = request.filter.unwrap_or_default();
    if filter.tenant_id.is_empty() {
        return Err(QueryError::invalid("query.filter.tenant_id is required"));
    }
    guardrails::check_filter(&filter, "query.filter")?;
    if request.page_token.len() > guardrails::MAX_PAGE_TOKEN_BYTES {
        return Err(QueryError::invalid(
            "query.page_token is not a token this service issued",
        ));
    }
    let page_size = match request.page_size {
        size if size < 0 => {
            return Err(QueryError::invalid(format!(
                "query.page_size must not be negative (got {size}); use 0 for the default of {DEFAULT_PAGE_SIZE}"
            )));
        }
        0 => DEFAULT_PAGE_SIZE,
        size => usize::try_from(size)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE),
    };
    let descending = match SortOrder::try_from(request.order_by_time) {
        Ok(SortOrder::Asc) => false,
        Ok(SortOrder::Desc | SortOrder::Unspecified) => true,
        Err(_) => {
            return Err(QueryError::invalid(format!(
                "query.order_by_time {} is not a SortOrder",
                request.order_by_time
            )));
        }
    };
    let (start_ns, end_ns) = guardrails::time_range(filter.time.as_ref(), "query.filter.time")?;
    let mut digest_input = filter.encode_to_vec();
    digest_input.push(u8::from(descending));
    let digest: [u8; 32] = Sha256::digest(&digest_input).into();
    let cursor = if request.page_token.is_empty() {
        None
    } else {
        Some(
            tokens
                .open(&request.page_token, &digest)
                .map_err(|error| QueryError::invalid(error.to_string()))?,
        )
    };
    Ok(EventQuery {
        filter,
        page_size,
        descending,
        cursor,
        digest,
        start_ns,
        end_ns,
    })
}

impl EventQuery {
    /// The tenant whose events are read.
    pub fn tenant(&self) -> &str {
        &self.filter.tenant_id
    }
}

/// Project and time window an entity (a session or a trace) occupies.
type Window = (String, i64, i64);

/// Runs a validated query. The page stops early once its payloads reach `max_page_bytes`
/// (never before its first event), and its token then continues after the last event sent.
pub async fn run(
    client: &clickhouse::Client,
    query: &EventQuery,
    tokens: &PageTokens,
    max_page_bytes: usize,
) -> Result<QueryResponse, QueryError> {
    let windows = narrowing_windows(client, &query.filter).await?;
    if windows.as_ref().is_some_and(Vec::is_empty) {
        return Ok(QueryResponse::default());
    }
    // Two steps: find the page's keys reading only small columns, then read the payloads of
    // just those rows. Sorting whole payloads to keep a hundred of them was the cost that
    // grew with a tenant's size.
    let sql = events_sql(query, windows.as_deref());
    let mut page: Vec<PageKey> = sql.fetch_all(client).await?;
    let more = page.len() > query.page_size;
    page.truncate(query.page_size);
    let payloads = payloads(client, query, &page, max_page_bytes).await?;
    let cut = payloads.len() < page.len();
    page.truncate(payloads.len());
    let next_page_token = match (more || cut, page.last()) {
        (true, Some(last)) => tokens.issue(
            &Cursor {
                event_time_ns: last.event_time_ns,
                event_id: last.event_id.clone(),
            },
            &query.digest,
        ),
        _ => String::new(),
    };
    // Rows store the canonical payload; the log fields come from the leaf column and the
    // log's entries for the rows' leaves and the ones before them (one read for the page).
    let sealed = payloads.iter().filter(|row| row.sealed != 0);
    let entries = chaukas_store::log::entries_around(
        client,
        &query.filter.tenant_id,
        sealed.map(|row| row.leaf_index),
    )
    .await?;
    let events = payloads
        .iter()
        .zip(&page)
        .map(|(row, key)| {
            let hash = chaukas_store::log::sealed_hash(
                row.sealed != 0,
                &row.content_hash,
                row.leaf_index,
                &row.payload,
                &entries,
            );
            with_log_fields(&row.payload, row.leaf_index, &hash, &entries)
                .map_err(|error| QueryError::Corrupt(format!("event {:?}: {error}", key.event_id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(QueryResponse {
        events,
        next_page_token,
    })
}

/// A page row's payload and the columns its log fields are filled from.
#[derive(serde::Deserialize, clickhouse::Row)]
struct StoredPayload {
    project_id: String,
    event_time_ns: i64,
    event_id: String,
    leaf_index: u64,
    sealed: u8,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

/// A row of a page, before its payload is read.
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct PageKey {
    project_id: String,
    event_time_ns: i64,
    event_id: String,
}

/// `SELECT {columns} FROM events` of `tenant`'s rows with these (project, event time, event
/// id) keys: bounded by the primary key (the tenant, the projects, the time span), then
/// narrowed to the ids. `keys` must not be empty.
pub(crate) fn keyed_read<'a>(
    columns: &str,
    tenant: &str,
    keys: impl Iterator<Item = (&'a String, i64, &'a String)>,
) -> Sql {
    let mut projects: BTreeSet<&String> = BTreeSet::new();
    let mut ids: BTreeSet<&String> = BTreeSet::new();
    let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
    for (project, time_ns, id) in keys {
        projects.insert(project);
        ids.insert(id);
        earliest = earliest.min(time_ns);
        latest = latest.max(time_ns);
    }
    let mut sql = Sql::new(&format!("SELECT {columns} FROM events WHERE tenant_id = "));
    sql.text(tenant)
        .push(" AND project_id IN (")
        .texts(projects)
        .push(") AND event_time_ns >= ")
        .int(earliest)
        .push(" AND event_time_ns <= ")
        .int(latest)
        .push(" AND event_id IN (")
        .texts(ids)
        .push(")");
    sql
}

/// The payloads of a page's first rows, in page order, until they reach `max_bytes` (at
/// least one): one read bounded by the primary key (tenant, the page's projects, its time
/// span), streamed in the page's order so reading stops as soon as the budget is spent.
async fn payloads(
    client: &clickhouse::Client,
    query: &EventQuery,
    page: &[PageKey],
    max_bytes: usize,
) -> Result<Vec<StoredPayload>, QueryError> {
    if page.is_empty() {
        return Ok(Vec::new());
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    let mut sql = keyed_read(
        "project_id, event_time_ns, event_id, leaf_index, sealed, content_hash, payload",
        &query.filter.tenant_id,
        page.iter()
            .map(|key| (&key.project_id, key.event_time_ns, &key.event_id)),
    );
    sql.push(&format!(
        " ORDER BY event_time_ns {direction}, event_id {direction}"
    ));
    let store_error = |source| QueryError::store(sql.as_str(), source);
    let mut rows = sql
        .query(client)
        .fetch::<StoredPayload>()
        .map_err(store_error)?;
    let mut found = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await.map_err(store_error)? {
        let Some(key) = page.get(found.len()) else {
            break;
        };
        // Another copy of a key already read, or a row outside the page: not this page's.
        if (&row.project_id, row.event_time_ns, &row.event_id)
            != (&key.project_id, key.event_time_ns, &key.event_id)
        {
            continue;
        }
        if !found.is_empty() && bytes + row.payload.len() > max_bytes {
            return Ok(found);
        }
        bytes += row.payload.len();
        found.push(row);
    }
    if let Some(missing) = page.get(found.len()) {
        return Err(QueryError::Corrupt(format!(
            "event {:?} vanished between reads",
            missing.event_id
        )));
    }
    Ok(found)
}

/// For a session or trace filter, the projects and time windows that entity occupies (from
/// the `session_spans` / `trace_spans` aggregates), so the events read is bounded by the
/// entity instead of the tenant's history. `Some(empty)`: no such session or trace.
async fn narrowing_windows(
    client: &clickhouse::Client,
    filter: &QueryFilter,
) -> Result<Option<Vec<Window>>, QueryError> {
    let (table, column, value) = if !filter.session_id.is_empty() {
        ("session_spans", "session_id", &filter.session_id)
    } else if !filter.trace_id.is_empty() {
        ("trace_spans", "trace_id", &filter.trace_id)
    } else {
        return Ok(None);
    };
    let mut sql = Sql::new(&format!(
        "SELECT project_id, minMerge(first_ns), maxMerge(last_ns) FROM {table} WHERE tenant_id = "
    ));
    sql.text(&filter.tenant_id)
        .push(&format!(" AND {column} = "))
        .text(value);
    if !filter.project_id.is_empty() {
        sql.push(" AND project_id = ").text(&filter.project_id);
    }
    sql.push(" GROUP BY project_id");
    let windows: Vec<Window> = sql.fetch_all(client).await?;
    Ok(Some(windows))
}

fn events_sql(query: &EventQuery, windows: Option<&[Window]>) -> Sql {
    let filter = &query.filter;
    let mut sql =
        Sql::new("SELECT project_id, event_time_ns, event_id FROM events WHERE tenant_id = ");
    sql.text(&filter.tenant_id);
    for (column, value) in [
        ("project_id", &filter.project_id),
        ("session_id", &filter.session_id),
        ("agent_id", &filter.agent_id),
        ("span_id", &filter.span_id),
        ("trace_id", &filter.trace_id),
    ] {
        if !value.is_empty() {
            sql.push(&format!(" AND {column} = ")).text(value);
        }
    }
    if let Some(windows) = windows {
        sql.push(" AND (");
        for (index, (project, first, last)) in windows.iter().enumerate() {
            if index > 0 {
                sql.push(" OR ");
            }
            sql.push("(project_id = ")
                .text(project)
                .push(" AND event_time_ns >= ")
                .int(*first)
                .push(" AND event_time_ns <= ")
                .int(*last)
                .push(")");
        }
        sql.push(")");
    }
    for (column, values) in [
        ("event_type", &filter.types),
        ("status", &filter.statuses),
        ("severity", &filter.severities),
    ] {
        if !values.is_empty() {
            sql.push(&format!(" AND {column} IN ("))
                .ints(values.iter().map(|value| i64::from(*value)))
                .push(")");
        }
    }
    if !filter.tags.is_empty() {
        sql.push(" AND hasAny(tags, [")
            .texts(&filter.tags)
            .push("])");
    }
    if !filter.text_query.is_empty() {
        sql.push(" AND positionUTF8(search_text, ")
            .text(&filter.text_query.to_lowercase())
            .push(") > 0");
    }
    if let Some(start) = query.start_ns {
        sql.push(" AND event_time_ns >= ").int(start);
    }
    if let Some(end) = query.end_ns {
        sql.push(" AND event_time_ns < ").int(end);
    }
    if let Some(cursor) = &query.cursor {
        // The plain bound lets the primary key skip what lies before the cursor; the tuple
        // comparison breaks ties on the event id.
        let (bound, after) = if query.descending {
            ("<=", "<")
        } else {
            (">=", ">")
        };
        sql.push(&format!(" AND event_time_ns {bound} "))
            .int(cursor.event_time_ns)
            .push(&format!(" AND (event_time_ns, event_id) {after} ("))
            .int(cursor.event_time_ns)
            .push(", ")
            .text(&cursor.event_id)
            .push(")");
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    sql.push(&format!(
        " ORDER BY event_time_ns {direction}, event_id {direction} LIMIT "
    ))
    .int(i64::try_from(query.page_size + 1).unwrap_or(i64::MAX));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaukas_proto::common::v1::TimeRange;

    fn tokens() -> PageTokens {
        PageTokens::new("test")
    }

    fn request(filter: QueryFilter) -> QueryRequest {
        QueryRequest {
            filter: Some(filter),
            ..QueryRequest::default()
        }
    }

    fn tenant() -> QueryFilter {
        QueryFilter {
            tenant_id: "t".into(),
            ..QueryFilter::default()
        }
    }

    #[test]
    fn tenant_is_required_and_page_sizes_are_checked() {
        let error = validate(request(QueryFilter::default()), &tokens()).unwrap_err();
        assert_eq!(error.to_string(), "query.filter.tenant_id is required");

        let mut negative = request(tenant());
        negative.page_size = -1;
        assert!(
            validate(negative, &tokens())
                .unwrap_err()
                .to_string()
                .contains("negative")
        );

        let mut huge = request(tenant());
        huge.page_size = 50_000;
        assert_eq!(validate(huge, &tokens()).unwrap().page_size, MAX_PAGE_SIZE);
        assert_eq!(
            validate(request(tenant()), &tokens()).unwrap().page_size,
            DEFAULT_PAGE_SIZE
        );
        assert!(validate(request(tenant()), &tokens()).unwrap().descending);
    }

    #[test]
    fn an_inverted_time_range_is_refused() {
        let mut filter = tenant();
        filter.time = Some(TimeRange {
            start: Some(prost_types::Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            end: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 0,
            }),
        });
        assert!(validate(request(filter), &tokens()).is_err());
    }

    #[test]
    fn a_token_only_works_for_its_own_query() {
        let query = validate(request(tenant()), &tokens()).unwrap();
        let token = tokens().issue(
            &Cursor {
                event_time_ns: 5,
                event_id: "e".into(),
            },
            &query.digest,
        );
        let mut same = request(tenant());
        same.page_token = token.clone();
        assert_eq!(
            validate(same, &tokens()).unwrap().cursor.unwrap().event_id,
            "e"
        );

        let mut other = tenant();
        other.project_id = "p".into();
        let mut different = request(other);
        different.page_token = token;
        assert!(
            validate(different, &tokens())
                .unwrap_err()
                .to_string()
                .contains("different filter")
        );
    }

    #[test]
    fn the_sql_binds_every_filter_value() {
        let filter = QueryFilter {
            tenant_id: "t".into(),
            project_id: "p".into(),
            types: vec![1, 22],
            tags: vec!["a".into()],
            text_query: "Hello".into(),
            ..QueryFilter::default()
        };
        let query = validate(request(filter), &tokens()).unwrap();
        let sql = events_sql(&query, None);
        assert_eq!(
            sql.as_str(),
            "SELECT project_id, event_time_ns, event_id FROM events WHERE tenant_id = ? AND project_id = ? \
             AND event_type IN (?, ?) AND hasAny(tags, [?]) AND positionUTF8(search_text, ?) > 0 \
             ORDER BY event_time_ns DESC, event_id DESC LIMIT ?"
        );
    }
}
