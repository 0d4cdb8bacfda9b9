use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{Event, EventStatus, EventType};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status::StatusCode,
};
use prost_types::value::Kind;

use super::*;

pub(crate) fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

pub(crate) fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

pub(crate) fn span_with(id: u8, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        parent_span_id: vec![0x01; 8],
        name: format!("span {id}"),
        kind: 3,
        start_time_unix_nano: 1_764_000_000_000_000_000,
        end_time_unix_nano: 1_764_000_001_500_000_000,
        attributes,
        ..Span::default()
    }
}

pub(crate) fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

const ORIGIN: Origin<'static> = Origin {
    tenant: Some("acme"),
    project: None,
};

fn otlp_field<'a>(event: &'a Event, key: &str) -> &'a prost_types::Value {
    let Some(Kind::StructValue(otlp)) = &event.metadata.as_ref().unwrap().fields["otlp"].kind
    else {
        panic!("metadata.otlp is an object");
    };
    &otlp.fields[key]
}

#[test]
fn a_chat_span_becomes_a_model_invocation_start_and_end() {
    let span = span_with(
        7,
        vec![
            string("gen_ai.operation.name", "chat"),
            string("gen_ai.provider.name", "openai"),
            string("gen_ai.request.model", "gpt-4o"),
            string("gen_ai.response.model", "gpt-4o-2024-08-06"),
            string("gen_ai.conversation.id", "conv-1"),
            int("gen_ai.usage.input_tokens", 12),
            int("gen_ai.usage.output_tokens", 30),
            string(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#,
            ),
            string("gen_ai.response.finish_reasons", r#"["stop"]"#),
        ],
    );
    let mapped = map_export(&request(vec![], vec![span]), &ORIGIN);
    assert_eq!(mapped.refused.count, 0, "{:?}", mapped.refused.reasons);
    let [start, end] = &mapped.events[..] else {
        panic!("two events: {:?}", mapped.events);
    };
    assert_eq!(start.r#type, EventType::ModelInvocationStart as i32);
    assert_eq!(end.r#type, EventType::ModelInvocationEnd as i32);
    assert_eq!(end.status, EventStatus::Completed as i32);
    assert_eq!(
        start.event_id,
        format!("otlp-{}-{}-start", "ab".repeat(16), "07".repeat(8))
    );
    assert_eq!(end.session_id, "conv-1");
    assert_eq!(end.parent_span_id, "01".repeat(8));
    assert_eq!(start.timestamp.unwrap().seconds, 1_764_000_000);
    assert_eq!(end.timestamp.unwrap().nanos, 500_000_000);
    let Some(Content::LlmInvocation(asked)) = &start.content else {
        panic!("llm_invocation")
    };
    assert_eq!(
        (asked.provider.as_str(), asked.model.as_str()),
        ("openai", "gpt-4o")
    );
    let messages = &asked.request.as_ref().unwrap().fields["messages"];
    assert!(matches!(&messages.kind, Some(Kind::ListValue(list)) if list.values.len() == 1));
    let Some(Content::LlmInvocation(answered)) = &end.content else {
        panic!("llm_invocation")
    };
    assert_eq!(answered.model, "gpt-4o-2024-08-06");
    assert_eq!(
        (
            answered.prompt_tokens,
            answered.completion_tokens,
            answered.total_tokens
        ),
        (12, 30, 42)
    );
    assert_eq!(answered.finish_reason, "stop");
    assert_eq!(end.cost.as_ref().unwrap().input_tokens, 12);
}

#[test]
fn conventions_are_read_in_order_and_the_rest_stays_in_the_trace() {
    let cases = [
        (
            vec![
                string("gen_ai.operation.name", "execute_tool"),
                string("gen_ai.tool.name", "search"),
            ],
            EventType::ToolCallStart,
        ),
        (
            vec![string("mcp.method.name", "tools/call")],
            EventType::McpCallStart,
        ),
        (
            vec![string("gen_ai.operation.name", "invoke_agent")],
            EventType::AgentStart,
        ),
        (
            vec![string("gen_ai.operation.name", "retrieval")],
            EventType::DataAccess,
        ),
        (
            vec![string("openinference.span.kind", "LLM")],
            EventType::ModelInvocationStart,
        ),
        (
            vec![string("openinference.span.kind", "GUARDRAIL")],
            EventType::PolicyDecision,
        ),
        (
            vec![string("openinference.span.kind", "CHAIN")],
            EventType::System,
        ),
        (vec![string("http.route", "/x")], EventType::System),
        // GenAI first, even when OpenInference says otherwise.
        (
            vec![
                string("openinference.span.kind", "TOOL"),
                string("gen_ai.operation.name", "chat"),
            ],
            EventType::ModelInvocationStart,
        ),
    ];
    for (attributes, expected) in cases {
        let mapped = map_export(
            &request(vec![], vec![span_with(2, attributes.clone())]),
            &ORIGIN,
        );
        assert_eq!(mapped.events[0].r#type, expected as i32, "{attributes:?}");
    }
}

#[test]
fn older_and_openinference_message_attributes_are_read() {
    let span = span_with(
        3,
        vec![
            string("openinference.span.kind", "LLM"),
            string("llm.input_messages.0.message.role", "user"),
            string("llm.input_messages.0.message.content", "what is 2+2"),
            string("llm.input_messages.1.message.role", "assistant"),
            int("llm.token_count.prompt", 5),
            int("llm.token_count.completion", 1),
            string("gen_ai.system", "anthropic"),
        ],
    );
    let mapped = map_export(&request(vec![], vec![span]), &ORIGIN);
    let Some(Content::LlmInvocation(asked)) = &mapped.events[0].content else {
        panic!("llm_invocation")
    };
    assert_eq!(asked.provider, "anthropic");
    let Some(Kind::ListValue(list)) = &asked.request.as_ref().unwrap().fields["messages"].kind
    else {
        panic!("a list")
    };
    assert_eq!(list.values.len(), 2);
    let Some(Content::LlmInvocation(answered)) = &mapped.events[1].content else {
        panic!("llm_invocation")
    };
    assert_eq!((answered.prompt_tokens, answered.completion_tokens), (5, 1));
}

#[test]
fn a_failed_span_ends_failed_and_adds_an_error_event() {
    let mut span = span_with(4, vec![string("gen_ai.operation.name", "execute_tool")]);
    span.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "boom".into(),
    });
    span.events.push(span::Event {
        name: "exception".into(),
        time_unix_nano: 1_764_000_001_000_000_000,
        attributes: vec![
            string("exception.type", "ValueError"),
            string("exception.message", "bad input"),
            string("exception.stacktrace", "Traceback ..."),
        ],
        ..span::Event::default()
    });
    let mapped = map_export(&request(vec![], vec![span]), &ORIGIN);
    let [_, end, error] = &mapped.events[..] else {
        panic!("three events")
    };
    assert_eq!(end.status, EventStatus::Failed as i32);
    assert_eq!(error.r#type, EventType::Error as i32);
    let Some(Content::Error(info)) = &error.content else {
        panic!("error")
    };
    assert_eq!(
        (info.error_message.as_str(), info.error_code.as_str()),
        ("bad input", "ValueError")
    );
    assert_eq!(info.stack_trace, "Traceback ...");
    assert_eq!(error.timestamp.unwrap().seconds, 1_764_000_001);
}

#[test]
fn one_bad_span_is_refused_alone_with_its_reason() {
    let good = span_with(5, vec![]);
    let mut no_trace = span_with(6, vec![]);
    no_trace.trace_id = vec![0; 16];
    let mut backwards = span_with(8, vec![]);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mapped = map_export(&request(vec![], vec![no_trace, good, backwards]), &ORIGIN);
    assert_eq!(mapped.refused.count, 2);
    assert_eq!(mapped.events.len(), 2);
    assert!(
        mapped.refused.reasons[0].contains("trace_id"),
        "{:?}",
        mapped.refused.reasons
    );
    assert!(
        mapped.refused.reasons[1].contains("before start"),
        "{:?}",
        mapped.refused.reasons
    );
}

#[test]
fn the_project_comes_from_the_key_or_the_resource_and_they_must_agree() {
    let resource = vec![string(PROJECT_ATTRIBUTE, "web")];
    let mapped = map_export(
        &request(resource.clone(), vec![span_with(1, vec![])]),
        &ORIGIN,
    );
    assert_eq!(mapped.events[0].project_id, "web");
    let bound = Origin {
        tenant: Some("acme"),
        project: Some("api"),
    };
    let mapped = map_export(&request(resource, vec![span_with(1, vec![])]), &bound);
    assert_eq!(mapped.refused.count, 1);
    assert!(mapped.events.is_empty());
    let mapped = map_export(&request(vec![], vec![span_with(1, vec![])]), &bound);
    assert_eq!(mapped.events[0].project_id, "api");
}

/// A stored `google.protobuf.Value` as the JSON any reader of the event would see.
fn as_json(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(flag)) => (*flag).into(),
        // JSON readers see "3" for 3.0: integral numbers come back as integers.
        #[allow(clippy::cast_possible_truncation, reason = "only integral values")]
        Some(Kind::NumberValue(number)) if number.fract() == 0.0 && number.abs() < 9e15 => {
            (*number as i64).into()
        }
        Some(Kind::NumberValue(number)) => (*number).into(),
        Some(Kind::StringValue(text)) => text.clone().into(),
        Some(Kind::ListValue(list)) => list.values.iter().map(as_json).collect(),
        Some(Kind::StructValue(object)) => object
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), as_json(value)))
            .collect(),
    }
}

/// `metadata.otlp` as plain OTLP/JSON: each attributes object (keyed by name) back into the
/// `[{"key", "value"}]` list OTLP/JSON has, in key order.
fn attribute_lists(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(fields) => {
            for (key, value) in fields.iter_mut() {
                if key == "attributes"
                    && let serde_json::Value::Object(named) = value
                {
                    *value = named
                        .iter()
                        .map(|(key, value)| serde_json::json!({"key": key, "value": value}))
                        .collect();
                } else {
                    attribute_lists(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(attribute_lists),
        _ => {}
    }
}

/// `list` in key order: the order attributes are rebuilt in.
fn by_key(mut list: Vec<KeyValue>) -> Vec<KeyValue> {
    list.sort_by(|a, b| a.key.cmp(&b.key));
    list
}

#[test]
fn the_end_event_rebuilds_the_span_exactly() {
    let typed = |key: &str, value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let mut span = span_with(
        9,
        vec![
            string("custom.key", "v"),
            int("custom.count", i64::MAX),
            typed("ratio", any_value::Value::DoubleValue(3.0)),
            typed("flag", any_value::Value::BoolValue(true)),
            typed("raw", any_value::Value::BytesValue(vec![0, 255, 7])),
            typed(
                "list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::IntValue(-1)),
                    }],
                }),
            ),
        ],
    );
    span.trace_state = "vendor=x".into();
    span.flags = 0x301;
    span.dropped_attributes_count = 2;
    span.status = Some(Status {
        code: StatusCode::Ok as i32,
        message: String::new(),
    });
    span.events.push(span::Event {
        name: "checkpoint".into(),
        time_unix_nano: 1_764_000_000_100_000_000,
        attributes: vec![string("step", "one")],
        dropped_attributes_count: 1,
    });
    span.links.push(span::Link {
        trace_id: vec![0xcd; 16],
        span_id: vec![0xef; 8],
        attributes: vec![string("why", "retry of")],
        flags: 1,
        ..span::Link::default()
    });
    let nested = KeyValue {
        key: "nested".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![string("inner", "deep"), string("inner", "twice")],
            })),
        }),
        ..KeyValue::default()
    };
    let exported = request(vec![string("service.name", "agent"), nested], vec![span]);
    let mapped = map_export(&exported, &ORIGIN);
    let end = &mapped.events[1];
    let mut otlp = as_json(&end.metadata.as_ref().unwrap().fields["otlp"]);
    assert_eq!(
        otlp["attributes"]["custom.count"]["intValue"], "9223372036854775807",
        "attributes are keyed by name, values typed"
    );
    attribute_lists(&mut otlp);
    // Any OTLP/JSON reader (here opentelemetry-proto's) reads back the span and resource;
    // attributes come back in key order (they are a map in OTLP's data model).
    let rebuilt: Span = serde_json::from_value(otlp.clone()).unwrap();
    let mut sent = exported.resource_spans[0].scope_spans[0].spans[0].clone();
    sent.attributes = by_key(sent.attributes);
    for event in &mut sent.events {
        event.attributes = by_key(std::mem::take(&mut event.attributes));
    }
    for link in &mut sent.links {
        link.attributes = by_key(std::mem::take(&mut link.attributes));
    }
    assert_eq!(rebuilt, sent);
    let resource: Resource = serde_json::from_value(otlp["resource"].clone()).unwrap();
    let mut sent_resource = exported.resource_spans[0].resource.clone().unwrap();
    sent_resource.attributes = by_key(sent_resource.attributes);
    assert_eq!(resource, sent_resource);
    assert_eq!(otlp["mappedAs"], "other");
    assert_eq!(
        otlp_field(&mapped.events[0], "name").kind,
        Some(Kind::StringValue("span 9".into()))
    );
}

#[test]
fn hostile_nesting_is_cut_off_not_followed() {
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("bottom".into())),
    };
    for _ in 0..500 {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(value),
                    ..KeyValue::default()
                }],
            })),
        };
    }
    let converted = values::to_value(&value);
    let mut depth = 0;
    let mut current = &converted;
    while let Some(Kind::StructValue(inner)) = &current.kind {
        current = &inner.fields["k"];
        depth += 1;
    }
    assert!(depth <= 33, "{depth}");
    let deep_json = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(
        values::parse_json(&deep_json).is_none(),
        "serde_json's depth limit refuses it"
    );
}

#[test]
fn many_flattened_messages_are_read_in_one_pass() {
    // 20k indexed attributes: a scan per index would be 400M key comparisons.
    let attributes: Vec<KeyValue> = (0..20_000)
        .map(|i| string(&format!("gen_ai.prompt.{i}.content"), "x"))
        .chain([
            string("gen_ai.operation.name", "chat"),
            string("gen_ai.prompt.20001.content", "gap"),
        ])
        .collect();
    let started = std::time::Instant::now();
    let mapped = map_export(&request(vec![], vec![span_with(1, attributes)]), &ORIGIN);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let Some(Content::LlmInvocation(asked)) = &mapped.events[0].content else {
        panic!("llm_invocation")
    };
    let Some(Kind::ListValue(list)) = &asked.request.as_ref().unwrap().fields["messages"].kind
    else {
        panic!("a list")
    };
    assert_eq!(list.values.len(), 20_000, "up to the first missing index");
}
