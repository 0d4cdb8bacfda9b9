//! What the events keep of the span itself. The end event's `metadata.otlp` is the span in
//! OTLP/JSON form: lowerCamelCase keys, ids in hex, 64-bit integers as decimal strings,
//! attribute values typed as OTLP/JSON types them (`{"intValue": "3"}`, `{"doubleValue": 3}`,
//! `{"bytesValue": "<base64>"}`, arrays and key-value lists as OTLP/JSON lists), with one
//! difference: each attribute list is an object keyed by attribute name (see [`attributes`]).
//! Turning those objects back into `[{"key", "value"}]` lists, any OTLP/JSON reader rebuilds
//! the span the exporter sent; beside it, `resource`, `scope` and their schema URLs, and
//! `mappedAs`, the kind the mapping chose. The start event's names the span.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::cost::MAX_NESTING;
use crate::kind::SpanKind;
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

fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
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

/// An attribute value as OTLP/JSON writes it. Nesting past [`MAX_NESTING`] (which the
/// gateway refuses before decoding) is kept as its debug text rather than followed.
fn any_value(value: &AnyValue, depth: usize) -> Value {
    let field = match &value.value {
        None => return object(vec![]),
        Some(_) if depth > MAX_NESTING => ("stringValue", text(format!("{value:?}"))),
        Some(any_value::Value::StringValue(value)) => ("stringValue", text(value.clone())),
        Some(any_value::Value::BoolValue(flag)) => (
            "boolValue",
            Value {
                kind: Some(Kind::BoolValue(*flag)),
            },
        ),
        Some(any_value::Value::IntValue(value)) => ("intValue", text(value.to_string())),
        Some(any_value::Value::DoubleValue(value)) => ("doubleValue", number(*value)),
        Some(any_value::Value::BytesValue(bytes)) => (
            "bytesValue",
            text(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
        Some(any_value::Value::StringValueStrindex(index)) => {
            ("stringValueStrindex", number(*index))
        }
        Some(any_value::Value::ArrayValue(array)) => (
            "arrayValue",
            object(vec![(
                "values",
                list(
                    array
                        .values
                        .iter()
                        .map(|value| any_value(value, depth + 1))
                        .collect(),
                ),
            )]),
        ),
        Some(any_value::Value::KvlistValue(kvlist)) => (
            "kvlistValue",
            object(vec![("values", key_values(&kvlist.values, depth + 1))]),
        ),
    };
    object(vec![field])
}

fn key_values(pairs: &[KeyValue], depth: usize) -> Value {
    list(
        pairs
            .iter()
            .map(|pair| {
                let mut fields = vec![("key", text(pair.key.clone()))];
                if let Some(value) = &pair.value {
                    fields.push(("value", any_value(value, depth)));
                }
                object(fields)
            })
            .collect(),
    )
}

/// Attributes keyed by name, as OTLP's data model has them (a map: order carries nothing,
/// a repeated key keeps its last value, as the SDKs do), so a privacy rule can name one
/// (`/metadata/otlp/attributes/gen_ai.input.messages`); each value typed as OTLP/JSON types it.
fn attributes(pairs: &[KeyValue]) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: pairs
                .iter()
                .map(|pair| {
                    let value = pair
                        .value
                        .as_ref()
                        .map_or_else(|| object(vec![]), |value| any_value(value, 0));
                    (pair.key.clone(), value)
                })
                .collect(),
        })),
    }
}

fn strings(values: &[String]) -> Value {
    list(values.iter().map(|value| text(value.clone())).collect())
}

fn entity_refs(refs: &[EntityRef]) -> Value {
    list(
        refs.iter()
            .map(|entity| {
                object(vec![
                    ("schemaUrl", text(entity.schema_url.clone())),
                    ("type", text(entity.r#type.clone())),
                    ("idKeys", strings(&entity.id_keys)),
                    ("descriptionKeys", strings(&entity.description_keys)),
                ])
            })
            .collect(),
    )
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
        ("kind", number(span.kind)),
        ("mappedAs", text(kind.name())),
    ]))
}

/// The end event's: the whole span, its resource and scope.
pub fn full(span: &Span, kind: SpanKind, place: &Place<'_>) -> Struct {
    let events = span
        .events
        .iter()
        .map(|event| {
            object(vec![
                ("timeUnixNano", text(event.time_unix_nano.to_string())),
                ("name", text(event.name.clone())),
                ("attributes", attributes(&event.attributes)),
                (
                    "droppedAttributesCount",
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
                ("traceId", text(hex(&link.trace_id))),
                ("spanId", text(hex(&link.span_id))),
                ("traceState", text(link.trace_state.clone())),
                ("attributes", attributes(&link.attributes)),
                (
                    "droppedAttributesCount",
                    number(link.dropped_attributes_count),
                ),
                ("flags", number(link.flags)),
            ])
        })
        .collect();
    let mut fields = vec![
        ("traceId", text(hex(&span.trace_id))),
        ("spanId", text(hex(&span.span_id))),
        ("traceState", text(span.trace_state.clone())),
        ("parentSpanId", text(hex(&span.parent_span_id))),
        ("flags", number(span.flags)),
        ("name", text(span.name.clone())),
        ("kind", number(span.kind)),
        (
            "startTimeUnixNano",
            text(span.start_time_unix_nano.to_string()),
        ),
        ("endTimeUnixNano", text(span.end_time_unix_nano.to_string())),
        ("attributes", attributes(&span.attributes)),
        (
            "droppedAttributesCount",
            number(span.dropped_attributes_count),
        ),
        ("events", list(events)),
        ("droppedEventsCount", number(span.dropped_events_count)),
        ("links", list(links)),
        ("droppedLinksCount", number(span.dropped_links_count)),
        ("mappedAs", text(kind.name())),
        (
            "resource",
            object(vec![
                ("attributes", attributes(&place.resource.attributes)),
                (
                    "droppedAttributesCount",
                    number(place.resource.dropped_attributes_count),
                ),
                ("entityRefs", entity_refs(&place.resource.entity_refs)),
            ]),
        ),
        ("resourceSchemaUrl", text(place.resource_schema)),
        (
            "scope",
            object(vec![
                ("name", text(place.scope.name.clone())),
                ("version", text(place.scope.version.clone())),
                ("attributes", attributes(&place.scope.attributes)),
                (
                    "droppedAttributesCount",
                    number(place.scope.dropped_attributes_count),
                ),
            ]),
        ),
        ("scopeSchemaUrl", text(place.scope_schema)),
    ];
    // Only a span that has a status says so: an absent one and an UNSET one differ.
    if let Some(status) = &span.status {
        fields.push((
            "status",
            object(vec![
                ("message", text(status.message.clone())),
                ("code", number(status.code)),
            ]),
        ));
    }
    under_otlp(object(fields))
}
