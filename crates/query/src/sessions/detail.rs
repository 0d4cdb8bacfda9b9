//! `GET /v1/sessions/{id}`: one session's summary, its span tree (START/END pairs joined,
//! with durations and parent links), each action's outcome and, for STATE_UPDATE events,
//! the state before and after with a diff. `{id}` may be a unique prefix.
//!
//! Bounded whatever the session holds: at most [`MAX_EVENTS`] events are read (the answer
//! says when it stopped), payloads over [`MAX_DECODED_PAYLOAD`] are not decoded (their
//! spans go unnamed; the console loads such payloads on demand), and decoding stops after
//! [`PAYLOAD_BUDGET`] bytes in all.

use chaukas_proto::common::v1::Event;
use serde::Serialize;

use super::list::{self, SessionFilter, SessionRow};
use super::outcome::ActionState;
use super::state::StateChange;
use crate::QueryError;
use crate::sql::Sql;

/// Events read for one session at most.
pub const MAX_EVENTS: u64 = 50_000;
/// A payload larger than this is not decoded for the span tree.
pub const MAX_DECODED_PAYLOAD: i64 = 1024 * 1024;
/// Payload bytes decoded per request at most.
pub const PAYLOAD_BUDGET: usize = 32 * 1024 * 1024;
/// Candidates listed when a prefix is ambiguous.
const CANDIDATES: u64 = 10;

/// One session, as the detail page shows it.
#[derive(Debug, Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionRow,
    pub spans: Vec<Span>,
    pub events: Vec<EventLine>,
    pub state_updates: Vec<StateChange>,
    pub handoffs: Vec<Handoff>,
    /// Events beyond [`MAX_EVENTS`] were not read.
    pub truncated: bool,
}

/// A START/END pair (or either alone), with its place in the tree.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Span {
    pub span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parent_span_id: String,
    /// agent, model, tool, mcp or session.
    pub kind: &'static str,
    pub name: String,
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The `EventStatus` name of its latest end.
    pub status: String,
    /// Why it counts as failed; absent when it did not fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub start_event_id: String,
    pub end_event_id: String,
    #[serde(skip)]
    pub(super) start_ns: Option<i64>,
    #[serde(skip)]
    pub(super) end_ns: Option<i64>,
    #[serde(skip)]
    pub(super) action: ActionState,
}

/// An AGENT_HANDOFF: work delegated from one agent to another.
#[derive(Debug, Clone, Serialize)]
pub struct Handoff {
    pub event_id: String,
    pub time: String,
    pub from_agent: String,
    pub to_agent: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Span {
    /// When the action is first seen: its start, or its end when no start arrived (the
    /// order of actions in the session).
    pub fn first_ns(&self) -> Option<i64> {
        self.start_ns.or(self.end_ns)
    }
}

/// One event of the session, without its payload.
#[derive(Debug, Clone, Serialize)]
pub struct EventLine {
    pub event_id: String,
    pub r#type: String,
    pub time: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub agent: String,
    /// Its audit-log leaf, when sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
}

/// Resolves `id` (a session id or a unique prefix of one) within `tenant` (and `project`).
pub async fn resolve(
    client: &clickhouse::Client,
    tenant: &str,
    project: &str,
    id: &str,
) -> Result<String, QueryError> {
    let mut sql = Sql::new("SELECT DISTINCT session_id FROM session_summaries WHERE tenant_id = ");
    sql.text(tenant);
    if !project.is_empty() {
        sql.push(" AND project_id = ").text(project);
    }
    let mut exact = sql.clone();
    exact.push(" AND session_id = ").text(id).push(" LIMIT 1");
    let found: Vec<String> = exact.fetch_all(client).await?;
    if let Some(session) = found.into_iter().next() {
        return Ok(session);
    }
    sql.push(" AND session_id LIKE ")
        .text(&format!("{}%", escape_like(id)))
        .push(" ORDER BY session_id LIMIT ")
        .int(i64::try_from(CANDIDATES + 1).expect("small"));
    let mut candidates: Vec<String> = sql.fetch_all(client).await?;
    match candidates.len() {
        0 => Err(QueryError::NotFound(format!("no session {id:?}"))),
        1 => Ok(candidates.remove(0)),
        n => {
            let more = if n as u64 > CANDIDATES { ", ..." } else { "" };
            candidates.truncate(CANDIDATES as usize);
            Err(QueryError::Ambiguous(format!(
                "{id:?} is the prefix of several sessions: {}{more}; give more of the id",
                candidates.join(", ")
            )))
        }
    }
}

/// `LIKE` pattern characters taken literally.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Event `event_id` of `session` (already resolved), its log fields filled: what the
/// console loads on demand when a span is opened.
pub async fn one_event(
    client: &clickhouse::Client,
    tenant: &str,
    project: &str,
    session: &str,
    event_id: &str,
) -> Result<Event, QueryError> {
    let filter = SessionFilter {
        project_id: project.to_owned(),
        session_id: session.to_owned(),
        ..SessionFilter::default()
    };
    let mut sql =
        Sql::new("SELECT leaf_index, sealed, content_hash, payload FROM events WHERE tenant_id = ");
    sql.text(tenant).push(" AND session_id = ").text(session);
    if !project.is_empty() {
        sql.push(" AND project_id = ").text(project);
    }
    within_session_span(&mut sql, tenant, &filter);
    sql.push(" AND event_id = ").text(event_id).push(" LIMIT 1");
    let rows: Vec<super::tail::StoredRow> = sql.fetch_all(client).await?;
    let row = rows.into_iter().next().ok_or_else(|| {
        QueryError::NotFound(format!("no event {event_id:?} in session {session:?}"))
    })?;
    let entries = if row.sealed == 0 {
        Default::default()
    } else {
        chaukas_store::log::entries_around(client, tenant, [row.leaf_index]).await?
    };
    chaukas_audit::content::with_log_fields(
        &row.payload,
        row.leaf_index,
        &chaukas_store::log::sealed_hash(
            row.sealed != 0,
            &row.content_hash,
            row.leaf_index,
            &row.payload,
            &entries,
        ),
        &entries,
    )
    .map_err(|error| QueryError::Corrupt(format!("event {event_id:?}: {error}")))
}

/// A row of the session's events, its payload only when small enough to decode.
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
pub(super) struct EventRow {
    pub(super) event_id: String,
    pub(super) event_type: i32,
    pub(super) status: i32,
    pub(super) span_id: String,
    pub(super) parent_span_id: String,
    pub(super) agent_name: String,
    pub(super) event_time_ns: i64,
    pub(super) leaf_index: u64,
    pub(super) sealed: u8,
    #[serde(with = "serde_bytes")]
    pub(super) payload: Vec<u8>,
}

/// The whole detail of `session` (already resolved).
pub async fn read(
    client: &clickhouse::Client,
    tenant: &str,
    filter: &SessionFilter,
    now_ns: i64,
    idle_ns: i64,
) -> Result<SessionDetail, QueryError> {
    let summary = list::read(client, tenant, filter, now_ns, idle_ns)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| QueryError::NotFound(format!("no session {:?}", filter.session_id)))?;
    let sql = events_statement(tenant, filter);
    let mut cursor = sql
        .query(client)
        .fetch::<EventRow>()
        .map_err(|source| QueryError::store(sql.as_str(), source))?;
    let mut builder = super::tree::TreeBuilder::default();
    let mut read = 0u64;
    let mut truncated = false;
    while let Some(row) = cursor
        .next()
        .await
        .map_err(|source| QueryError::store(sql.as_str(), source))?
    {
        if read == MAX_EVENTS {
            truncated = true;
            break;
        }
        read += 1;
        builder.add(row);
    }
    Ok(builder.finish(summary, truncated))
}

/// The session's events in time order, within the session's time span (from
/// `session_spans`, so the read is bounded by the session, not the tenant's history), the
/// large payloads left out.
fn events_statement(tenant: &str, filter: &SessionFilter) -> Sql {
    let mut sql = Sql::new(
        "SELECT event_id, event_type, status, span_id, parent_span_id, agent_name, \
         event_time_ns, leaf_index, sealed, if(length(payload) <= ",
    );
    sql.int(MAX_DECODED_PAYLOAD)
        .push(", payload, '') AS payload FROM events WHERE tenant_id = ")
        .text(tenant)
        .push(" AND session_id = ")
        .text(&filter.session_id);
    if !filter.project_id.is_empty() {
        sql.push(" AND project_id = ").text(&filter.project_id);
    }
    within_session_span(&mut sql, tenant, filter);
    sql.push(" ORDER BY event_time_ns, event_id LIMIT ")
        .int(i64::try_from(MAX_EVENTS + 1).expect("small"));
    sql
}

/// `AND event_time_ns` within the session's first and last event time (from
/// `session_spans`), so reads are bounded by the session, not the tenant's history.
fn within_session_span(sql: &mut Sql, tenant: &str, filter: &SessionFilter) {
    for (bound, merge) in [(">=", "minMerge(first_ns)"), ("<=", "maxMerge(last_ns)")] {
        sql.push(&format!(
            " AND event_time_ns {bound} (SELECT {merge} FROM session_spans WHERE tenant_id = "
        ))
        .text(tenant)
        .push(" AND session_id = ")
        .text(&filter.session_id)
        .push(")");
    }
}
