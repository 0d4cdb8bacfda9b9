//! What the events keep of the span itself: the end event's `metadata.otlp` is the whole
//! span with its resource and scope (times as decimal strings, ids as hex, as OTLP/JSON
//! writes them), so that nothing an exporter sent is lost; the start event's names it.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::kind::SpanKind;
use crate::values::to_struct;
use crate::{Place, hex};

fn text(value: impl Into<String>) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.into())),
    }
}

fn number(value: impl Into<f64>) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value.into())),
    }
}

fn object(fields: Vec<(&str, Value)>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        })),
    }
}

fn attributes(list: &[KeyValue]) -> Value {
    Value {
        kind: Some(Kind::StructValue(to_struct(list))),
    }
}

fn under_otlp(value: Value) -> Struct {
    Struct {
        fields: [("otlp".to_owned(), value)].into(),
    }
}

/// The start event's: the span's name and kinds.
pub fn start(span: &Span, kind: SpanKind) -> Struct {
    under_otlp(object(vec![
        ("name", text(span.name.clone())),
        ("span_kind", number(span.kind)),
        ("mapped_as", text(kind.name())),
    ]))
}

/// The end event's: everything.
pub fn full(span: &Span, kind: SpanKind, place: &Place<'_>) -> Struct {
    let events = span
        .events
        .iter()
        .map(|event| {
            object(vec![
                ("name", text(event.name.clone())),
                ("time_unix_nano", text(event.time_unix_nano.to_string())),
                ("attributes", attributes(&event.attributes)),
                (
                    "dropped_attributes_count",
                    number(event.dropped_attributes_count),
                ),
            ])
        })
        .collect();
    let links = span
        .links
        .iter()
        .map(|link| {
            object(vec![
                ("trace_id", text(hex(&link.trace_id))),
                ("span_id", text(hex(&link.span_id))),
                ("trace_state", text(link.trace_state.clone())),
                ("flags", number(link.flags)),
                ("attributes", attributes(&link.attributes)),
                (
                    "dropped_attributes_count",
                    number(link.dropped_attributes_count),
                ),
            ])
        })
        .collect();
    let status = span.status.clone().unwrap_or_default();
    under_otlp(object(vec![
        ("name", text(span.name.clone())),
        ("span_kind", number(span.kind)),
        ("mapped_as", text(kind.name())),
        ("trace_state", text(span.trace_state.clone())),
        ("flags", number(span.flags)),
        (
            "start_time_unix_nano",
            text(span.start_time_unix_nano.to_string()),
        ),
        (
            "end_time_unix_nano",
            text(span.end_time_unix_nano.to_string()),
        ),
        ("attributes", attributes(&span.attributes)),
        (
            "dropped_attributes_count",
            number(span.dropped_attributes_count),
        ),
        (
            "events",
            Value {
                kind: Some(Kind::ListValue(ListValue { values: events })),
            },
        ),
        ("dropped_events_count", number(span.dropped_events_count)),
        (
            "links",
            Value {
                kind: Some(Kind::ListValue(ListValue { values: links })),
            },
        ),
        ("dropped_links_count", number(span.dropped_links_count)),
        (
            "status",
            object(vec![
                ("code", number(status.code)),
                ("message", text(status.message)),
            ]),
        ),
        (
            "resource",
            object(vec![
                ("attributes", attributes(&place.resource.attributes)),
                (
                    "dropped_attributes_count",
                    number(place.resource.dropped_attributes_count),
                ),
                ("schema_url", text(place.resource_schema)),
            ]),
        ),
        (
            "scope",
            object(vec![
                ("name", text(place.scope.name.clone())),
                ("version", text(place.scope.version.clone())),
                ("attributes", attributes(&place.scope.attributes)),
                (
                    "dropped_attributes_count",
                    number(place.scope.dropped_attributes_count),
                ),
                ("schema_url", text(place.scope_schema)),
            ]),
        ),
    ]))
}
