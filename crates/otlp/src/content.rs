//! The typed part of the events of a span: what a model was asked and answered, with
//! which model and how many tokens; a tool's name, arguments and result; an MCP method.
//! Each reads the current GenAI conventions first, then the older ones and OpenInference.

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{
    CostDetails, DataAccess, LlmInvocation, McpCall, PolicyDecision, ToolCall, ToolResponse,
};
use opentelemetry_proto::tonic::trace::v1::span;
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::kind::SpanKind;
use crate::values::{Attributes, parse_json, to_struct};

/// The contents of a span's start and end events.
pub struct Contents {
    pub start: Option<Content>,
    pub end: Option<Content>,
    pub cost: Option<CostDetails>,
}

fn text(value: String) -> Value {
    Value {
        kind: Some(Kind::StringValue(value)),
    }
}

fn list(values: Vec<Value>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// `value` as a `Struct`: itself if it is an object, else under `key`.
fn wrap(key: &str, value: Value) -> Struct {
    match value.kind {
        Some(Kind::StructValue(object)) => object,
        kind => Struct {
            fields: [(key.to_owned(), Value { kind })].into(),
        },
    }
}

fn int32(value: Option<i64>) -> i32 {
    value.map_or(0, |v| i32::try_from(v.max(0)).unwrap_or(i32::MAX))
}

/// What the span of `kind` says, from its attributes and events.
pub fn contents(kind: SpanKind, attributes: Attributes<'_>, events: &[span::Event]) -> Contents {
    match kind {
        SpanKind::Model => model(attributes, events),
        SpanKind::Tool => tool(attributes),
        SpanKind::Mcp => mcp(attributes),
        SpanKind::Retrieval => {
            let access = DataAccess {
                datasource: attributes
                    .text(&["gen_ai.data_source.id", "db.system.name", "db.system"])
                    .unwrap_or_default(),
                ..DataAccess::default()
            };
            Contents {
                start: Some(Content::DataAccess(access.clone())),
                end: Some(Content::DataAccess(access)),
                cost: None,
            }
        }
        SpanKind::Guardrail => {
            let decision = PolicyDecision {
                policy_id: attributes
                    .text(&["guardrail.name", "gen_ai.guardrail.name"])
                    .unwrap_or_default(),
                outcome: attributes
                    .text(&["guardrail.outcome", "output.value"])
                    .unwrap_or_default(),
                ..PolicyDecision::default()
            };
            Contents {
                start: None,
                end: Some(Content::Policy(decision)),
                cost: None,
            }
        }
        SpanKind::Agent | SpanKind::Other => Contents {
            start: None,
            end: None,
            cost: None,
        },
    }
}

/// A message list, by the first convention that has one: a JSON attribute (semconv 1.37+),
/// flattened `<prefix>.N.*` attributes, then the span events named `event_names`.
fn messages(
    attributes: Attributes<'_>,
    json_keys: &[&str],
    flattened: &[&str],
    events: &[span::Event],
    event_names: &[&str],
) -> Option<Value> {
    if let Some(value) = attributes.structured(json_keys) {
        return Some(value);
    }
    for prefix in flattened {
        let items = attributes.indexed(prefix);
        if !items.is_empty() {
            return Some(list(items));
        }
    }
    let from_events: Vec<Value> = events
        .iter()
        .filter(|event| event_names.contains(&event.name.as_str()))
        .map(|event| {
            let mut fields = to_struct(&event.attributes);
            fields
                .fields
                .insert("event".into(), text(event.name.clone()));
            for value in fields.fields.values_mut() {
                if let Some(Kind::StringValue(json)) = &value.kind
                    && let Some(parsed) = parse_json(json)
                {
                    *value = parsed;
                }
            }
            Value {
                kind: Some(Kind::StructValue(fields)),
            }
        })
        .collect();
    (!from_events.is_empty()).then(|| list(from_events))
}

fn model(attributes: Attributes<'_>, events: &[span::Event]) -> Contents {
    let provider = attributes
        .text(&[
            "gen_ai.provider.name",
            "gen_ai.system",
            "llm.provider",
            "llm.system",
        ])
        .unwrap_or_default();
    let mut request = Struct::default();
    if let Some(input) = messages(
        attributes,
        &["gen_ai.input.messages"],
        &["gen_ai.prompt", "llm.input_messages"],
        events,
        &[
            "gen_ai.system.message",
            "gen_ai.user.message",
            "gen_ai.assistant.message",
            "gen_ai.tool.message",
        ],
    ) {
        request.fields.insert("messages".into(), input);
    }
    if let Some(system) = attributes.structured(&["gen_ai.system_instructions"]) {
        request.fields.insert("system_instructions".into(), system);
    }
    let mut response = Struct::default();
    if let Some(output) = messages(
        attributes,
        &["gen_ai.output.messages"],
        &["gen_ai.completion", "llm.output_messages"],
        events,
        &["gen_ai.choice"],
    ) {
        response.fields.insert("messages".into(), output);
    }
    for (key, name) in [
        (
            "gen_ai.usage.cache_read.input_tokens",
            "cached_input_tokens",
        ),
        (
            "gen_ai.usage.cache_creation.input_tokens",
            "cache_creation_input_tokens",
        ),
        ("gen_ai.usage.reasoning_tokens", "reasoning_tokens"),
        (
            "llm.token_count.completion_details.reasoning",
            "reasoning_tokens",
        ),
        (
            "llm.token_count.prompt_details.cache_read",
            "cached_input_tokens",
        ),
    ] {
        if let Some(value) = attributes.structured(&[key]) {
            response.fields.insert(name.into(), value);
        }
    }
    let input_tokens = attributes.int(&[
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ]);
    let output_tokens = attributes.int(&[
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ]);
    let total = attributes
        .int(&["llm.token_count.total"])
        .or_else(|| Some(input_tokens? + output_tokens?));
    let finish_reason = match attributes.structured(&["gen_ai.response.finish_reasons"]) {
        Some(Value {
            kind: Some(Kind::ListValue(reasons)),
        }) => match reasons.values.first() {
            Some(Value {
                kind: Some(Kind::StringValue(reason)),
            }) => reason.clone(),
            _ => String::new(),
        },
        Some(Value {
            kind: Some(Kind::StringValue(reason)),
        }) => reason,
        _ => String::new(),
    };
    let requested = LlmInvocation {
        provider: provider.clone(),
        model: attributes
            .text(&["gen_ai.request.model", "llm.model_name"])
            .unwrap_or_default(),
        request: Some(request),
        temperature: attributes
            .number(&["gen_ai.request.temperature"])
            .unwrap_or(0.0),
        max_tokens: int32(attributes.int(&["gen_ai.request.max_tokens"])),
        top_p: attributes.number(&["gen_ai.request.top_p"]).unwrap_or(0.0),
        frequency_penalty: attributes
            .number(&["gen_ai.request.frequency_penalty"])
            .unwrap_or(0.0),
        presence_penalty: attributes
            .number(&["gen_ai.request.presence_penalty"])
            .unwrap_or(0.0),
        ..LlmInvocation::default()
    };
    let answered = LlmInvocation {
        model: attributes
            .text(&[
                "gen_ai.response.model",
                "gen_ai.request.model",
                "llm.model_name",
            ])
            .unwrap_or_default(),
        request: None,
        response: Some(response),
        prompt_tokens: int32(input_tokens),
        completion_tokens: int32(output_tokens),
        total_tokens: int32(total),
        finish_reason,
        ..requested.clone()
    };
    let cost = (input_tokens.is_some() || output_tokens.is_some()).then(|| CostDetails {
        provider,
        input_tokens: int32(input_tokens),
        output_tokens: int32(output_tokens),
        total_tokens: int32(total),
        ..CostDetails::default()
    });
    Contents {
        start: Some(Content::LlmInvocation(requested)),
        end: Some(Content::LlmInvocation(answered)),
        cost,
    }
}

fn tool(attributes: Attributes<'_>) -> Contents {
    let id = attributes
        .text(&["gen_ai.tool.call.id", "tool_call.id"])
        .unwrap_or_default();
    let call = ToolCall {
        id: id.clone(),
        name: attributes
            .text(&["gen_ai.tool.name", "tool.name"])
            .unwrap_or_default(),
        arguments: attributes
            .structured(&[
                "gen_ai.tool.call.arguments",
                "tool.parameters",
                "input.value",
            ])
            .map(|value| wrap("value", value)),
        function_name: attributes
            .text(&["code.function.name", "code.function"])
            .unwrap_or_default(),
        ..ToolCall::default()
    };
    let response = ToolResponse {
        tool_call_id: id,
        output: attributes
            .structured(&["gen_ai.tool.call.result", "output.value"])
            .map(|value| wrap("value", value)),
        ..ToolResponse::default()
    };
    Contents {
        start: Some(Content::ToolCall(call)),
        end: Some(Content::ToolResponse(response)),
        cost: None,
    }
}

fn mcp(attributes: Attributes<'_>) -> Contents {
    let call = McpCall {
        server_name: attributes.text(&["server.address"]).unwrap_or_default(),
        method: attributes.text(&["mcp.method.name"]).unwrap_or_default(),
        operation: attributes
            .text(&["gen_ai.tool.name", "mcp.resource.uri", "gen_ai.prompt.name"])
            .unwrap_or_default(),
        protocol_version: attributes
            .text(&["mcp.protocol.version"])
            .unwrap_or_default(),
        request: attributes
            .structured(&["gen_ai.tool.call.arguments"])
            .map(|value| wrap("value", value)),
        ..McpCall::default()
    };
    let answered = McpCall {
        request: None,
        response: attributes
            .structured(&["gen_ai.tool.call.result"])
            .map(|value| wrap("value", value)),
        ..call.clone()
    };
    Contents {
        start: Some(Content::McpCall(call)),
        end: Some(Content::McpCall(answered)),
        cost: None,
    }
}
