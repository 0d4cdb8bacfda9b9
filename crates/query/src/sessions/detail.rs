//! `GET /v1/sessions/{id}`: one session's summary, its span tree (START/END pairs joined,
//! with durations and parent links), each action's outcome and, for STATE_UPDATE events,
//! the state before and after with a diff. `{id}` may be a unique prefix.
//!
//! Bounded whatever the session holds: at most [`MAX_EVENTS`] events are read (the answer
//! says when it stopped), payloads over [`MAX_DECODED_PAYLOAD`] are not decoded (their
//! spans go unnamed; the console loads such payloads on demand), and decoding stops after
//! [`PAYLOAD_BUDGET`] bytes in all.

use std::collections::HashMap;

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{Event, EventType};
use prost::Message;
use serde::Serialize;
use serde_json::Value;

use super::list::{self, SessionFilter, SessionRow, rfc3339};
use super::outcome::ActionState;
use super::state::{StateChange, state_changes};
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
    start_ns: Option<i64>,
    #[serde(skip)]
    end_ns: Option<i64>,
    #[serde(skip)]
    action: ActionState,
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
    let found: Vec<String> = fetch(client, &exact).await?;
    if let Some(session) = found.into_iter().next() {
        return Ok(session);
    }
    sql.push(" AND session_id LIKE ")
        .text(&format!("{}%", escape_like(id)))
        .push(" ORDER BY session_id LIMIT ")
        .int(i64::try_from(CANDIDATES + 1).expect("small"));
    let mut candidates: Vec<String> = fetch(client, &sql).await?;
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

async fn fetch(client: &clickhouse::Client, sql: &Sql) -> Result<Vec<String>, QueryError> {
    sql.query(client)
        .fetch_all()
        .await
        .map_err(|source| QueryError::store(sql.as_str(), source))
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

/// A row of the session's events, its payload only when small enough to decode.
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct EventRow {
    event_id: String,
    event_type: i32,
    status: i32,
    span_id: String,
    parent_span_id: String,
    agent_name: String,
    event_time_ns: i64,
    leaf_index: u64,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
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
    let mut builder = TreeBuilder::default();
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
         event_time_ns, leaf_index, content_hash, if(length(payload) <= ",
    );
    sql.int(MAX_DECODED_PAYLOAD)
        .push(", payload, '') AS payload FROM events WHERE tenant_id = ")
        .text(tenant)
        .push(" AND session_id = ")
        .text(&filter.session_id);
    if !filter.project_id.is_empty() {
        sql.push(" AND project_id = ").text(&filter.project_id);
    }
    for (bound, merge) in [(">=", "minMerge(first_ns)"), ("<=", "maxMerge(last_ns)")] {
        sql.push(&format!(
            " AND event_time_ns {bound} (SELECT {merge} FROM session_spans WHERE tenant_id = "
        ))
        .text(tenant)
        .push(" AND session_id = ")
        .text(&filter.session_id)
        .push(")");
    }
    sql.push(" ORDER BY event_time_ns, event_id LIMIT ")
        .int(i64::try_from(MAX_EVENTS + 1).expect("small"));
    sql
}

/// Builds spans, event lines and state changes from the session's events in time order.
#[derive(Default)]
struct TreeBuilder {
    spans: Vec<Span>,
    by_span: HashMap<String, usize>,
    events: Vec<EventLine>,
    states: Vec<(String, String, i64, Value)>,
    handoffs: Vec<Handoff>,
    decoded_bytes: usize,
}

impl TreeBuilder {
    fn add(&mut self, row: EventRow) {
        let kind = EventType::try_from(row.event_type).unwrap_or(EventType::Unspecified);
        let event = self.decode(&row.payload);
        self.events.push(EventLine {
            event_id: row.event_id.clone(),
            r#type: short_name(kind.as_str_name(), "EVENT_TYPE_"),
            time: rfc3339(row.event_time_ns),
            status: status_name(row.status),
            span_id: row.span_id.clone(),
            agent: row.agent_name.clone(),
            leaf_index: (!row.content_hash.is_empty()).then_some(row.leaf_index),
        });
        if kind == EventType::StateUpdate
            && let Some(Content::StateUpdate(state)) =
                event.as_ref().and_then(|e| e.content.clone())
        {
            self.states.push((
                row.event_id.clone(),
                row.agent_name.clone(),
                row.event_time_ns,
                super::state::struct_to_json(&state),
            ));
        }
        if let Some(Content::AgentHandoff(handoff)) =
            event.as_ref().and_then(|e| e.content.as_ref())
        {
            let name = |name: &str, id: &str| {
                if name.is_empty() {
                    id.to_owned()
                } else {
                    name.to_owned()
                }
            };
            self.handoffs.push(Handoff {
                event_id: row.event_id.clone(),
                time: rfc3339(row.event_time_ns),
                from_agent: name(&handoff.from_agent_name, &handoff.from_agent_id),
                to_agent: name(&handoff.to_agent_name, &handoff.to_agent_id),
                reason: handoff.reason.clone(),
            });
        }
        let Some((span_kind, role)) = span_role(kind) else {
            return;
        };
        let key = if row.span_id.is_empty() {
            row.event_id.clone()
        } else {
            row.span_id.clone()
        };
        let index = *self.by_span.entry(key.clone()).or_insert_with(|| {
            self.spans.push(Span {
                span_id: key,
                kind: span_kind,
                ..Span::default()
            });
            self.spans.len() - 1
        });
        let span = &mut self.spans[index];
        if span.kind == "error" {
            // An error reported before its span's start or end: the span is what it reports on.
            span.kind = span_kind;
        }
        if span.parent_span_id.is_empty() {
            span.parent_span_id = row.parent_span_id.clone();
        }
        if span.agent.is_empty() {
            span.agent = row.agent_name.clone();
        }
        if span.name.is_empty()
            && (role != Role::Error || span.kind == "error")
            && let Some(event) = &event
        {
            span.name = span_name(event);
        }
        match role {
            Role::Start => {
                span.start_ns.get_or_insert(row.event_time_ns);
                if span.start_event_id.is_empty() {
                    span.start_event_id = row.event_id;
                }
            }
            Role::End => {
                span.action
                    .record(row.status, row.event_time_ns, true, false);
                span.end_ns = Some(row.event_time_ns);
                span.end_event_id = row.event_id;
                span.status = status_name(row.status);
            }
            Role::Error => {
                let unrecovered = !matches!(
                    event.as_ref().and_then(|e| e.content.as_ref()),
                    Some(Content::Error(error)) if error.recoverable
                );
                span.action
                    .record(row.status, row.event_time_ns, false, unrecovered);
            }
        }
    }

    /// Decodes a payload within the request's budget; `None` when empty, over budget or
    /// not decodable (the span then goes unnamed).
    fn decode(&mut self, payload: &[u8]) -> Option<Event> {
        if payload.is_empty() || self.decoded_bytes + payload.len() > PAYLOAD_BUDGET {
            return None;
        }
        self.decoded_bytes += payload.len();
        Event::decode(payload).ok()
    }

    fn finish(mut self, summary: SessionRow, truncated: bool) -> SessionDetail {
        for span in &mut self.spans {
            span.start = span.start_ns.map(rfc3339);
            span.end = span.end_ns.map(rfc3339);
            span.duration_ms = match (span.start_ns, span.end_ns) {
                (Some(start), Some(end)) => Some((end - start).max(0) as f64 / 1e6),
                _ => None,
            };
            span.failure = span.action.failure();
        }
        SessionDetail {
            summary,
            spans: self.spans,
            events: self.events,
            state_updates: state_changes(self.states),
            handoffs: self.handoffs,
            truncated,
        }
    }
}

/// Where an event type sits in a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Start,
    End,
    Error,
}

fn span_role(kind: EventType) -> Option<(&'static str, Role)> {
    use EventType as T;
    Some(match kind {
        T::SessionStart => ("session", Role::Start),
        T::SessionEnd => ("session", Role::End),
        T::AgentStart => ("agent", Role::Start),
        T::AgentEnd => ("agent", Role::End),
        T::ModelInvocationStart => ("model", Role::Start),
        T::ModelInvocationEnd => ("model", Role::End),
        T::ToolCallStart => ("tool", Role::Start),
        T::ToolCallEnd => ("tool", Role::End),
        T::McpCallStart => ("mcp", Role::Start),
        T::McpCallEnd => ("mcp", Role::End),
        T::Error => ("error", Role::Error),
        _ => return None,
    })
}

/// What a span is called: the tool, the model, the MCP server and method, or the agent.
fn span_name(event: &Event) -> String {
    match &event.content {
        Some(Content::ToolCall(call)) if !call.name.is_empty() => call.name.clone(),
        Some(Content::LlmInvocation(llm)) if !llm.model.is_empty() => {
            [llm.provider.as_str(), llm.model.as_str()]
                .iter()
                .filter(|part| !part.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        }
        Some(Content::McpCall(call)) => format!("{} {}", call.server_name, call.method)
            .trim()
            .to_owned(),
        Some(Content::Error(error)) => error.error_code.clone(),
        _ => event.agent_name.clone(),
    }
}

fn status_name(status: i32) -> String {
    let name = chaukas_proto::common::v1::EventStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("EVENT_STATUS_UNSPECIFIED");
    short_name(name, "EVENT_STATUS_")
}

fn short_name(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}
