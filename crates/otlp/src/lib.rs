//! OpenTelemetry traces as Chaukas events (issue #16; the mapping table is docs/otlp.md).
//!
//! A span becomes a start and an end event at its start and end times, of the types its
//! conventions say ([`kind`]), with the typed content they describe ([`content`]); a failed
//! span also yields an `ERROR` event. Event ids derive from (trace id, span id, phase), so an
//! exporter's retry stores nothing twice. Nothing is lost: the end event's `metadata.otlp`
//! holds the whole span (every attribute, span event and link, status, flags) with its
//! resource and scope, from which the span can be rebuilt.
//!
//! Pure: no I/O, no clock. A span that cannot be mapped is refused alone, with a reason
//! (OTLP's `partial_success`); the rest of its request is kept.

pub mod content;
pub mod cost;
mod cost_json;
mod decode;
pub mod kind;
mod metadata;
pub mod values;

use chaukas_proto::common::v1::{ErrorInfo, Event, EventStatus, EventType, Severity};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost_types::Timestamp;

use crate::kind::classify;
use crate::values::Attributes;

pub use cost_json::of_json as cost_of_json;
pub use decode::Encoding;
/// The export request and response types, for the servers that take them.
pub use opentelemetry_proto::tonic::collector::trace::v1 as collector;

/// Resource attribute naming the project, for keys not bound to one.
pub const PROJECT_ATTRIBUTE: &str = "chaukas.project.id";
/// Resource attribute naming the tenant when no API key is sent (development mode only: a
/// key's tenant always wins).
pub const TENANT_ATTRIBUTE: &str = "chaukas.tenant.id";
/// The tenant of spans sent without a key and without [`TENANT_ATTRIBUTE`].
pub const DEFAULT_TENANT: &str = "default";
/// Refusal reasons kept word for word; past these only the count grows, so a request of a
/// million bad spans cannot make the answer (or the memory behind it) grow with it.
pub const MAX_REASONS: usize = 20;

/// Where the spans of a request belong, from the API key that sent them.
pub struct Origin<'a> {
    /// The key's tenant; `None` without a key (development mode), when the resource names it.
    pub tenant: Option<&'a str>,
    /// The key's project, if it is bound to one.
    pub project: Option<&'a str>,
}

/// The events of a request, and the spans refused.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Events of the mapped spans, in request order.
    pub events: Vec<Event>,
    /// How many consecutive events of `events` each mapped span has, in order: a span is
    /// stored whole or refused whole.
    pub span_sizes: Vec<usize>,
    /// The spans that could not be mapped.
    pub refused: Refusals,
}

/// Refused spans: how many, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    /// How many spans were refused.
    pub count: u64,
    /// Why, one line per refused span (span id and reason), the first [`MAX_REASONS`].
    pub reasons: Vec<String>,
}

impl Refusals {
    /// Counts a refused span, keeping its reason if there is room.
    pub fn refuse(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

/// Maps every span of `request`, sent under `origin`.
pub fn map_export(request: &ExportTraceServiceRequest, origin: &Origin<'_>) -> Mapped {
    let mut mapped = Mapped::default();
    let default_resource = Resource::default();
    let default_scope = InstrumentationScope::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .unwrap_or(&default_resource);
        let resource_attributes = Attributes(&resource.attributes);
        let named = resource_attributes.text(&[PROJECT_ATTRIBUTE]);
        let tenant = match origin.tenant {
            Some(tenant) => tenant.to_owned(),
            None => resource_attributes
                .text(&[TENANT_ATTRIBUTE])
                .filter(|tenant| !tenant.is_empty())
                .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
        };
        let project = match (origin.project, named.as_deref()) {
            (Some(bound), Some(named)) if bound != named => Err(format!(
                "resource attribute {PROJECT_ATTRIBUTE} is {named:?}, but the API key is bound \
                 to project {bound:?}"
            )),
            (Some(bound), _) => Ok(bound.to_owned()),
            (None, named) => Ok(named.unwrap_or_default().to_owned()),
        };
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref().unwrap_or(&default_scope);
            for span in &scope_spans.spans {
                let place = Place {
                    tenant: &tenant,
                    project: project.as_deref().unwrap_or_default(),
                    resource,
                    resource_schema: &resource_spans.schema_url,
                    scope,
                    scope_schema: &scope_spans.schema_url,
                };
                let events = match &project {
                    Ok(_) => map_span(span, &place),
                    Err(reason) => Err(reason.clone()),
                };
                match events {
                    Ok(events) => {
                        mapped.span_sizes.push(events.len());
                        mapped.events.extend(events);
                    }
                    Err(reason) => {
                        mapped
                            .refused
                            .refuse(|| format!("span {}: {reason}", hex(&span.span_id)));
                    }
                }
            }
        }
    }
    mapped
}

/// Where a span sits: its tenant and project, resource and scope.
pub struct Place<'a> {
    pub tenant: &'a str,
    pub project: &'a str,
    pub resource: &'a Resource,
    pub resource_schema: &'a str,
    pub scope: &'a InstrumentationScope,
    pub scope_schema: &'a str,
}

fn timestamp(nanos: u64) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: i32::try_from(nanos % 1_000_000_000).unwrap_or(0),
    }
}

fn check_ids(span: &Span) -> Result<(), String> {
    let valid = |id: &[u8], len| id.len() == len && id.iter().any(|&b| b != 0);
    if !valid(&span.trace_id, 16) {
        return Err("trace_id must be 16 bytes, not all zero".into());
    }
    if !valid(&span.span_id, 8) {
        return Err("span_id must be 8 bytes, not all zero".into());
    }
    if !(span.parent_span_id.is_empty() || span.parent_span_id.len() == 8) {
        return Err("parent_span_id must be empty or 8 bytes".into());
    }
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano == 0 {
        return Err("start_time_unix_nano and end_time_unix_nano are required".into());
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("end_time_unix_nano is before start_time_unix_nano".into());
    }
    Ok(())
}

/// The events of one span, or why it cannot be mapped.
pub fn map_span(span: &Span, place: &Place<'_>) -> Result<Vec<Event>, String> {
    check_ids(span)?;
    let attributes = Attributes(&span.attributes);
    let resource = Attributes(&place.resource.attributes);
    let kind = classify(attributes);
    let (start_type, end_type) = kind.event_types();
    let (trace, span_id) = (hex(&span.trace_id), hex(&span.span_id));
    let session_keys = ["gen_ai.conversation.id", "session.id"];
    let base = Event {
        tenant_id: place.tenant.to_owned(),
        project_id: place.project.to_owned(),
        session_id: attributes
            .text(&session_keys)
            .or_else(|| resource.text(&session_keys))
            .unwrap_or_default(),
        trace_id: trace.clone(),
        span_id: span_id.clone(),
        parent_span_id: hex(&span.parent_span_id),
        agent_id: attributes
            .text(&["gen_ai.agent.id", "agent.id"])
            .unwrap_or_default(),
        agent_name: attributes
            .text(&["gen_ai.agent.name", "agent.name"])
            .unwrap_or_default(),
        severity: Severity::Info as i32,
        ..Event::default()
    };
    let contents = content::contents(kind, attributes, &span.events);
    let failed = span
        .status
        .as_ref()
        .is_some_and(|status| status.code == StatusCode::Error as i32);
    let start = Event {
        event_id: format!("otlp-{trace}-{span_id}-start"),
        r#type: start_type as i32,
        status: EventStatus::Started as i32,
        timestamp: Some(timestamp(span.start_time_unix_nano)),
        content: contents.start,
        metadata: Some(metadata::start(span, kind)),
        ..base.clone()
    };
    let end = Event {
        event_id: format!("otlp-{trace}-{span_id}-end"),
        r#type: end_type as i32,
        status: if failed {
            EventStatus::Failed
        } else {
            EventStatus::Completed
        } as i32,
        severity: if failed {
            Severity::Error
        } else {
            Severity::Info
        } as i32,
        timestamp: Some(timestamp(span.end_time_unix_nano)),
        content: contents.end,
        cost: contents.cost,
        metadata: Some(metadata::full(span, kind, place)),
        ..base.clone()
    };
    let mut events = vec![start, end];
    if let Some(error) = error_of(span, failed) {
        let (at, info) = error;
        events.push(Event {
            event_id: format!("otlp-{trace}-{span_id}-error"),
            r#type: EventType::Error as i32,
            status: EventStatus::Failed as i32,
            severity: Severity::Error as i32,
            timestamp: Some(timestamp(at)),
            content: Some(chaukas_proto::common::v1::event::Content::Error(info)),
            ..base
        });
    }
    Ok(events)
}

/// The span's error, if it failed or recorded an exception: its time and what it says.
fn error_of(span: &Span, failed: bool) -> Option<(u64, ErrorInfo)> {
    let exception = span
        .events
        .iter()
        .rev()
        .find(|event| event.name == "exception");
    if !failed && exception.is_none() {
        return None;
    }
    let status_message = span
        .status
        .as_ref()
        .map(|status| status.message.clone())
        .unwrap_or_default();
    let Some(exception) = exception else {
        return Some((
            span.end_time_unix_nano,
            ErrorInfo {
                error_message: status_message,
                ..ErrorInfo::default()
            },
        ));
    };
    let fields = Attributes(&exception.attributes);
    let message = fields
        .text(&["exception.message"])
        .filter(|message| !message.is_empty())
        .unwrap_or(status_message);
    let at = if exception.time_unix_nano == 0 {
        span.end_time_unix_nano
    } else {
        exception.time_unix_nano
    };
    Some((
        at,
        ErrorInfo {
            error_message: message,
            error_code: fields.text(&["exception.type"]).unwrap_or_default(),
            stack_trace: fields.text(&["exception.stacktrace"]).unwrap_or_default(),
            recoverable: !failed,
            ..ErrorInfo::default()
        },
    ))
}

#[cfg(test)]
mod tests;
