//! One session's events folded into what the detail page shows: spans (START/END pairs
//! joined by span id), event lines, state changes and handoffs.

use std::collections::HashMap;

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{Event, EventType};
use prost::Message;
use serde_json::Value;

use super::detail::{EventLine, EventRow, Handoff, PAYLOAD_BUDGET, SessionDetail, Span};
use super::list::{SessionRow, rfc3339};
use super::state::state_changes;

/// Builds spans, event lines and state changes from the session's events in time order.
#[derive(Default)]
pub(super) struct TreeBuilder {
    spans: Vec<Span>,
    by_span: HashMap<String, usize>,
    events: Vec<EventLine>,
    states: Vec<(String, String, i64, Value)>,
    handoffs: Vec<Handoff>,
    decoded_bytes: usize,
}

impl TreeBuilder {
    pub(super) fn add(&mut self, row: EventRow) {
        let kind = EventType::try_from(row.event_type).unwrap_or(EventType::Unspecified);
        let event = self.decode(&row.payload);
        self.events.push(EventLine {
            event_id: row.event_id.clone(),
            r#type: short_name(kind.as_str_name(), "EVENT_TYPE_"),
            time: rfc3339(row.event_time_ns),
            status: status_name(row.status),
            span_id: row.span_id.clone(),
            agent: row.agent_name.clone(),
            leaf_index: (row.sealed != 0).then_some(row.leaf_index),
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

    pub(super) fn finish(mut self, summary: SessionRow, truncated: bool) -> SessionDetail {
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
