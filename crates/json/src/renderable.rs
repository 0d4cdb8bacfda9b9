//! What every read path can render: checked once, at ingest.
//!
//! An audit store must be able to hand back whatever it accepted. Three things in an event
//! would break a read after the event was acknowledged, so they are refused before:
//! * **nesting**: `Struct`/`ListValue` inside each other and `Any` inside `Any` drive
//!   recursion in every decoder and renderer (prost stops at 100 nested messages, JSON
//!   rendering follows the depth on the stack). One limit, [`MAX_NESTING`], counts a level
//!   for every `Struct`, `ListValue` and `Any`, in the event and inside the payloads of `Any`s
//!   of types this server knows. An `Any` of an unknown type stays opaque: it is carried as
//!   bytes and never looked into.
//! * **numbers JSON cannot carry**: NaN and infinities in a `google.protobuf.Value`;
//! * **timestamps and durations outside RFC 3339's range** (years 1–9999), and `Any`s of a
//!   known type whose bytes do not decode as that type.
//!
//! Every walk here keeps its own stack: no recursion is driven by client data.

use chaukas_proto::common::v1::{Event, event::Content};
use prost_reflect::{DynamicMessage, ReflectMessage, Value as Reflected};
use prost_types::value::Kind;
use prost_types::{Struct, Timestamp};

use crate::{opaque_any, pool};

/// Deepest nesting of `Struct`, `ListValue` and `Any` accepted in an event. A JSON object in
/// a Struct field is one level, an object inside it two, and so on. Chosen so that an event
/// at the limit stays well inside prost's 100-message decoding limit on every read path
/// (a Struct level costs three nested messages: Struct, map entry, Value).
pub const MAX_NESTING: usize = 24;

/// Earliest and latest instants RFC 3339 (and so canonical JSON) can write: years 1 to 9999.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// Longest `google.protobuf.Duration` canonical JSON accepts (10,000 years).
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// Why an event could not be read back as it is; names the field and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct Unrenderable {
    /// The event field where the problem starts, e.g. `event.tool_call.arguments`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl Unrenderable {
    fn new(field: &str, problem: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    fn too_deep(field: &str) -> Self {
        Self::new(
            field,
            format!(
                "nests Struct/ListValue/Any more than {MAX_NESTING} levels deep; flatten it or \
                 send the deep part as a string"
            ),
        )
    }
}

/// Checks that every read path (protobuf and JSON) can render `event`.
pub fn check_event(event: &Event) -> Result<(), Unrenderable> {
    for (field, value) in struct_fields(event) {
        check_struct(field, value)?;
    }
    if let Some(Content::LlmInvocation(llm)) = &event.content {
        for (field, time) in [
            ("event.llm_invocation.start_time", &llm.start_time),
            ("event.llm_invocation.end_time", &llm.end_time),
        ] {
            if let Some(time) = time {
                check_timestamp(field, time)?;
            }
        }
    }
    for (index, any) in event.extensions.iter().enumerate() {
        let field = format!("event.extensions[{index}]");
        check_any(&field, &any.type_url, &any.value, 1)?;
    }
    Ok(())
}

/// Every `google.protobuf.Struct` field of an event, with its name. The test below keeps
/// this list in step with the descriptor.
fn struct_fields(event: &Event) -> Vec<(&'static str, &Struct)> {
    let mut fields: Vec<(&'static str, Option<&Struct>)> = vec![
        ("event.metadata", event.metadata.as_ref()),
        (
            "event.infrastructure.metrics",
            event
                .infrastructure
                .as_ref()
                .and_then(|infra| infra.metrics.as_ref()),
        ),
    ];
    match &event.content {
        Some(Content::Message(message)) => {
            fields.push(("event.message.metadata", message.metadata.as_ref()));
        }
        Some(Content::ToolCall(call)) => {
            fields.push(("event.tool_call.arguments", call.arguments.as_ref()));
        }
        Some(Content::ToolResponse(response)) => {
            fields.push(("event.tool_response.output", response.output.as_ref()));
        }
        Some(Content::LlmInvocation(llm)) => {
            fields.push(("event.llm_invocation.request", llm.request.as_ref()));
            fields.push(("event.llm_invocation.response", llm.response.as_ref()));
        }
        Some(Content::StateUpdate(state)) => fields.push(("event.state_update", Some(state))),
        Some(Content::AgentHandoff(handoff)) => {
            fields.push((
                "event.agent_handoff.handoff_data",
                handoff.handoff_data.as_ref(),
            ));
        }
        Some(Content::McpCall(call)) => {
            fields.push(("event.mcp_call.request", call.request.as_ref()));
            fields.push(("event.mcp_call.response", call.response.as_ref()));
        }
        Some(Content::Policy(_) | Content::DataAccess(_) | Content::Error(_)) | None => {}
    }
    fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
}

/// A Struct field: depth and numbers, with an explicit stack.
fn check_struct(field: &str, root: &Struct) -> Result<(), Unrenderable> {
    let mut stack: Vec<(&prost_types::Value, usize)> =
        root.fields.values().map(|value| (value, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        match &value.kind {
            Some(Kind::NumberValue(number)) if !number.is_finite() => {
                return Err(Unrenderable::new(
                    field,
                    format!(
                        "holds the number {number}, which JSON cannot carry; send it as a string"
                    ),
                ));
            }
            Some(Kind::StructValue(inner)) => {
                if depth + 1 > MAX_NESTING {
                    return Err(Unrenderable::too_deep(field));
                }
                stack.extend(inner.fields.values().map(|value| (value, depth + 1)));
            }
            Some(Kind::ListValue(list)) => {
                if depth + 1 > MAX_NESTING {
                    return Err(Unrenderable::too_deep(field));
                }
                stack.extend(list.values.iter().map(|value| (value, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_timestamp(field: &str, time: &Timestamp) -> Result<(), Unrenderable> {
    if (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&time.seconds)
        && (0..1_000_000_000).contains(&time.nanos)
    {
        Ok(())
    } else {
        Err(Unrenderable::new(
            field,
            "must lie between years 1 and 9999 with nanos in 0..1e9",
        ))
    }
}

/// An `Any` at nesting level `depth`: opaque when its type is unknown here, otherwise its
/// payload is decoded and walked like the event itself.
fn check_any(field: &str, type_url: &str, bytes: &[u8], depth: usize) -> Result<(), Unrenderable> {
    if depth > MAX_NESTING {
        return Err(Unrenderable::too_deep(field));
    }
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return Ok(());
    };
    if !opaque_any::resolvable(pool(), type_url) {
        return Ok(());
    }
    let message = DynamicMessage::decode(descriptor, bytes).map_err(|error| {
        Unrenderable::new(
            field,
            format!("says it holds a {name} but its value does not decode as one: {error}"),
        )
    })?;
    check_message(field, message, depth)
}

/// Walks a decoded message (the payload of an `Any` at level `depth`).
fn check_message(field: &str, root: DynamicMessage, depth: usize) -> Result<(), Unrenderable> {
    let mut stack = vec![(root, depth)];
    while let Some((message, depth)) = stack.pop() {
        let name = message.descriptor().full_name().to_owned();
        match name.as_str() {
            "google.protobuf.Any" => {
                let type_url = reflected_str(&message, "type_url");
                let bytes = reflected_bytes(&message, "value");
                check_any(field, &type_url, &bytes, depth + 1)?;
                continue;
            }
            "google.protobuf.Timestamp" => check_timestamp(field, &seconds_nanos(&message))?,
            "google.protobuf.Duration" => check_duration(field, &seconds_nanos(&message))?,
            "google.protobuf.Value" => {
                if let Some(Reflected::F64(number)) =
                    message.get_field_by_name("number_value").as_deref()
                    && !number.is_finite()
                {
                    return Err(Unrenderable::new(
                        field,
                        format!("holds the number {number}, which JSON cannot carry"),
                    ));
                }
            }
            _ => {}
        }
        let level = depth
            + usize::from(matches!(
                name.as_str(),
                "google.protobuf.Struct" | "google.protobuf.ListValue"
            ));
        if level > MAX_NESTING {
            return Err(Unrenderable::too_deep(field));
        }
        for (_, value) in message.fields() {
            push_messages(value, level, &mut stack);
        }
    }
    Ok(())
}

fn push_messages(value: &Reflected, depth: usize, stack: &mut Vec<(DynamicMessage, usize)>) {
    match value {
        Reflected::Message(message) => stack.push((message.clone(), depth)),
        Reflected::List(items) => items
            .iter()
            .for_each(|item| push_messages(item, depth, stack)),
        Reflected::Map(entries) => entries
            .values()
            .for_each(|entry| push_messages(entry, depth, stack)),
        _ => {}
    }
}

fn check_duration(field: &str, duration: &Timestamp) -> Result<(), Unrenderable> {
    let consistent = duration.seconds == 0
        || duration.nanos == 0
        || (duration.seconds > 0) == (duration.nanos > 0);
    if duration.seconds.abs() <= MAX_DURATION_SECONDS
        && duration.nanos.abs() < 1_000_000_000
        && consistent
    {
        Ok(())
    } else {
        Err(Unrenderable::new(
            field,
            "is a Duration outside ±10000 years or with nanos of the other sign",
        ))
    }
}

/// `seconds` and `nanos` of a Timestamp or Duration (same field shapes).
fn seconds_nanos(message: &DynamicMessage) -> Timestamp {
    let seconds = match message.get_field_by_name("seconds").as_deref() {
        Some(Reflected::I64(seconds)) => *seconds,
        _ => 0,
    };
    let nanos = match message.get_field_by_name("nanos").as_deref() {
        Some(Reflected::I32(nanos)) => *nanos,
        _ => 0,
    };
    Timestamp { seconds, nanos }
}

fn reflected_str(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn reflected_bytes(message: &DynamicMessage, name: &str) -> Vec<u8> {
    message
        .get_field_by_name(name)
        .and_then(|value| value.as_bytes().map(|bytes| bytes.to_vec()))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "renderable_tests.rs"]
mod tests;
