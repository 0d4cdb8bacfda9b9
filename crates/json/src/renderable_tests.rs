use chaukas_proto::common::v1::{
    AgentHandoff, Event, EventType, InfrastructureMetrics, LlmInvocation, McpCall, MessageContent,
    QueryResponse, ToolCall, ToolResponse,
};
use chaukas_proto::server::v1::QueryEventsResponse;
use prost::Message;
use prost_types::value::Kind;
use prost_types::{Any, ListValue, Struct, Value};

use super::*;

fn event(content: Content) -> Event {
    Event {
        event_id: "e".into(),
        tenant_id: "t".into(),
        r#type: EventType::ToolCallStart as i32,
        content: Some(content),
        ..Event::default()
    }
}

/// A Struct `levels` deep: {"a": {"a": ... {"leaf": 1}}}.
fn nested_struct(levels: usize) -> Struct {
    let mut inner = Struct {
        fields: [("leaf".to_owned(), number(1.0))].into(),
    };
    for _ in 1..levels {
        inner = Struct {
            fields: [(
                "a".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            )]
            .into(),
        };
    }
    inner
}

/// A Struct holding a list `levels` deep (the Struct itself is one more level).
fn nested_list(levels: usize) -> Struct {
    let mut inner = ListValue {
        values: vec![number(1.0)],
    };
    for _ in 1..levels {
        inner = ListValue {
            values: vec![Value {
                kind: Some(Kind::ListValue(inner)),
            }],
        };
    }
    Struct {
        fields: [(
            "l".to_owned(),
            Value {
                kind: Some(Kind::ListValue(inner)),
            },
        )]
        .into(),
    }
}

fn number(value: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(value)),
    }
}

fn tool_call(arguments: Struct) -> Event {
    event(Content::ToolCall(ToolCall {
        name: "search".into(),
        arguments: Some(arguments),
        ..ToolCall::default()
    }))
}

/// An Any wrapping an Any ... `levels` Anys in all, the innermost holding a Struct.
fn nested_any(levels: usize) -> Any {
    let mut any = Any {
        type_url: "type.googleapis.com/google.protobuf.Struct".into(),
        value: nested_struct(1).encode_to_vec(),
    };
    for _ in 1..levels {
        any = Any {
            type_url: "type.googleapis.com/google.protobuf.Any".into(),
            value: any.encode_to_vec(),
        };
    }
    any
}

/// Every read path: protobuf through both response wrappers, and JSON in both spellings.
fn reads_back(event: &Event) {
    let page = QueryResponse {
        events: vec![event.clone()],
        next_page_token: String::new(),
    };
    let wrapped = QueryEventsResponse {
        response: Some(page.clone()),
    }
    .encode_to_vec();
    let decoded = QueryEventsResponse::decode(wrapped.as_slice()).expect("protobuf read");
    assert_eq!(decoded.response.unwrap().events[0], *event);
    let openapi = crate::to_openapi(&page).expect("OpenAPI JSON");
    assert_eq!(
        crate::from_value::<QueryResponse>(openapi).expect("JSON parses back"),
        page
    );
    crate::to_canonical(event).expect("canonical JSON");
    let text = crate::query_page_to_openapi(&page).expect("page JSON");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&text).unwrap(),
        crate::to_openapi(&page).unwrap()
    );
}

#[test]
fn the_deepest_accepted_struct_list_and_any_read_back_everywhere() {
    for event in [
        tool_call(nested_struct(MAX_NESTING)),
        tool_call(nested_list(MAX_NESTING - 1)),
        Event {
            extensions: vec![nested_any(MAX_NESTING - 1)],
            ..tool_call(Struct::default())
        },
    ] {
        assert_eq!(check_event(&event), Ok(()));
        reads_back(&event);
    }
}

#[test]
fn one_level_more_is_refused_with_the_field_and_the_limit() {
    let struct_error = check_event(&tool_call(nested_struct(MAX_NESTING + 1))).unwrap_err();
    assert_eq!(struct_error.field, "event.tool_call.arguments");
    assert!(
        struct_error
            .problem
            .contains(&format!("more than {MAX_NESTING} levels"))
    );
    let list_error = check_event(&tool_call(nested_list(MAX_NESTING))).unwrap_err();
    assert_eq!(list_error.field, "event.tool_call.arguments");
    let any_event = Event {
        extensions: vec![nested_any(MAX_NESTING)],
        ..tool_call(Struct::default())
    };
    let any_error = check_event(&any_event).unwrap_err();
    assert_eq!(any_error.field, "event.extensions[0]");
}

#[test]
fn thousands_of_anys_deep_are_refused_without_exhausting_the_stack() {
    let event = Event {
        extensions: vec![nested_any(4_000)],
        ..tool_call(Struct::default())
    };
    assert!(check_event(&event).is_err());
}

#[test]
fn numbers_json_cannot_carry_are_refused() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let arguments = Struct {
            fields: [("x".to_owned(), number(bad))].into(),
        };
        let error = check_event(&tool_call(arguments)).unwrap_err();
        assert!(error.problem.contains("JSON cannot carry"), "{error}");
    }
}

#[test]
fn known_type_anys_must_decode_and_unknown_ones_stay_opaque() {
    let garbage = vec![0xff, 0xff, 0xff];
    let known = Event {
        extensions: vec![Any {
            type_url: "type.googleapis.com/google.protobuf.Struct".into(),
            value: garbage.clone(),
        }],
        ..tool_call(Struct::default())
    };
    assert!(
        check_event(&known)
            .unwrap_err()
            .problem
            .contains("does not decode")
    );
    let opaque = Event {
        extensions: vec![Any {
            type_url: "type.example.com/vendor.Thing".into(),
            value: garbage,
        }],
        ..tool_call(Struct::default())
    };
    assert_eq!(check_event(&opaque), Ok(()));
    reads_back(&opaque);
}

#[test]
fn timestamps_outside_rfc3339_are_refused_also_inside_anys() {
    let llm = event(Content::LlmInvocation(LlmInvocation {
        start_time: Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        }),
        ..LlmInvocation::default()
    }));
    assert_eq!(
        check_event(&llm).unwrap_err().field,
        "event.llm_invocation.start_time"
    );
    let inside_any = Event {
        extensions: vec![Any {
            type_url: "type.googleapis.com/google.protobuf.Timestamp".into(),
            value: prost_types::Timestamp {
                seconds: -99_999_999_999,
                nanos: 0,
            }
            .encode_to_vec(),
        }],
        ..tool_call(Struct::default())
    };
    assert_eq!(
        check_event(&inside_any).unwrap_err().field,
        "event.extensions[0]"
    );
}

/// `struct_fields` lists the Struct fields by hand; this keeps the list in step with the
/// descriptor: an event with every Struct field set must yield one entry per field.
#[test]
fn every_struct_field_of_an_event_is_checked() {
    let event_descriptor = pool()
        .get_message_by_name("chaukas.spec.common.v1.Event")
        .unwrap();
    let mut in_descriptor = Vec::new();
    for field in event_descriptor.fields() {
        let Some(message) = field.kind().as_message().cloned() else {
            continue;
        };
        if message.full_name() == "google.protobuf.Struct" {
            in_descriptor.push(field.name().to_owned());
        } else if message.package_name().starts_with("chaukas") {
            for inner in message.fields() {
                if inner
                    .kind()
                    .as_message()
                    .is_some_and(|kind| kind.full_name() == "google.protobuf.Struct")
                {
                    in_descriptor.push(format!("{}.{}", field.name(), inner.name()));
                }
            }
        }
    }
    let full = || Some(nested_struct(1));
    let contents = [
        Content::Message(MessageContent {
            metadata: full(),
            ..MessageContent::default()
        }),
        Content::ToolCall(ToolCall {
            arguments: full(),
            ..ToolCall::default()
        }),
        Content::ToolResponse(ToolResponse {
            output: full(),
            ..ToolResponse::default()
        }),
        Content::LlmInvocation(LlmInvocation {
            request: full(),
            response: full(),
            ..LlmInvocation::default()
        }),
        Content::StateUpdate(nested_struct(1)),
        Content::AgentHandoff(AgentHandoff {
            handoff_data: full(),
            ..AgentHandoff::default()
        }),
        Content::McpCall(McpCall {
            request: full(),
            response: full(),
            ..McpCall::default()
        }),
    ];
    let mut checked: Vec<String> = vec!["metadata".into(), "infrastructure.metrics".into()];
    for content in contents {
        let event = Event {
            metadata: full(),
            infrastructure: Some(InfrastructureMetrics {
                metrics: full(),
                ..InfrastructureMetrics::default()
            }),
            ..event(content)
        };
        for (name, _) in struct_fields(&event) {
            let name = name.trim_start_matches("event.").to_owned();
            if !checked.contains(&name) {
                checked.push(name);
            }
        }
    }
    in_descriptor.sort();
    checked.sort();
    // The descriptor names the oneof variants by field name (`llm_invocation.request`).
    assert_eq!(checked, in_descriptor);
}
