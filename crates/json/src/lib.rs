//! JSON for Chaukas messages, in the two spellings users send.
//!
//! The spec's OpenAPI document writes enums by their short names (`"TOOL_CALL_START"`) and the
//! content union as one object `content` whose `kind` names the variant; protobuf's canonical
//! JSON (what `chaukas-sdk` writes in file mode, what every protobuf library prints) uses full
//! enum names and the variant's field name. Both decode here into the same prost messages, so
//! the gateway validates and stores one thing whichever spelling arrived.
//!
//! Decoding goes through `prost-reflect`'s canonical JSON parser over the compiled descriptor
//! set: the mapping rules (well-known types, 64-bit integers as strings, `null`, lowerCamel
//! names) are protobuf's own, not a hand copy that drifts. The OpenAPI spelling is rewritten
//! into canonical JSON first ([`spelling`]); answers are rendered the other way round.

mod opaque_any;
mod renderable;
mod spelling;

pub use renderable::{MAX_NESTING, Unrenderable, check_event};

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use serde_json::Value;

use chaukas_proto::client::v1 as client;
use chaukas_proto::common::v1 as common;
use chaukas_proto::server::v1 as server;

/// Why a JSON body could not become the message asked for; the text names the field.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or truncated).
    #[error("body is not valid JSON: {0}")]
    Syntax(String),
    /// JSON, but a field has a value the message cannot take.
    #[error("{path}: {reason}")]
    Field {
        /// Where, e.g. `events[3].type` (`$` for the top level).
        path: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// A message (a stored event) that cannot be written as JSON. Ingestion refuses what
    /// would cause this ([`check_event`]); it remains for events stored before that check.
    #[error("cannot be rendered as JSON: {0}")]
    Render(String),
}

/// A message with a JSON form: ties the prost type to its descriptor's full name.
pub trait JsonMessage: prost::Message + Default {
    /// The fully qualified protobuf name, e.g. `chaukas.spec.common.v1.Event`.
    const FULL_NAME: &'static str;
}

macro_rules! json_messages {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl JsonMessage for $ty {
            const FULL_NAME: &'static str = $name;
        })*
    };
}

json_messages! {
    common::Event => "chaukas.spec.common.v1.Event",
    common::EventBatch => "chaukas.spec.common.v1.EventBatch",
    common::QueryRequest => "chaukas.spec.common.v1.QueryRequest",
    common::QueryResponse => "chaukas.spec.common.v1.QueryResponse",
    common::Capabilities => "chaukas.spec.common.v1.Capabilities",
    client::IngestEventRequest => "chaukas.spec.client.v1.IngestEventRequest",
    client::IngestEventBatchRequest => "chaukas.spec.client.v1.IngestEventBatchRequest",
    server::GetEventStatsRequest => "chaukas.spec.server.v1.GetEventStatsRequest",
    server::GetEventStatsResponse => "chaukas.spec.server.v1.GetEventStatsResponse",
}

/// The descriptors of everything under `proto/`, plus the helper type for opaque `Any`s.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(chaukas_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled by chaukas-proto is valid");
        opaque_any::register(&mut pool);
        pool
    })
}

fn descriptor(name: &str) -> prost_reflect::MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in the compiled descriptor set"))
}

/// Parses `bytes` as JSON in either spelling into `T`.
pub fn from_slice<T: JsonMessage>(bytes: &[u8]) -> Result<T, JsonError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|error| JsonError::Syntax(error.to_string()))?;
    from_value(value)
}

/// Converts a parsed JSON value in either spelling into `T`.
pub fn from_value<T: JsonMessage>(mut value: Value) -> Result<T, JsonError> {
    let descriptor = descriptor(T::FULL_NAME);
    spelling::to_canonical(&descriptor, &mut value, &mut spelling::Path::root())?;
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(&value, &mut track);
    let mut message = DynamicMessage::deserialize_with_options(
        descriptor,
        deserializer,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(|error: serde_json::Error| JsonError::Field {
        path: display_path(&track.path()),
        reason: error.to_string(),
    })?;
    opaque_any::unwrap_all(&mut message);
    message
        .transcode_to::<T>()
        .map_err(|error| JsonError::Field {
            path: "$".into(),
            reason: error.to_string(),
        })
}

fn display_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." || text.is_empty() {
        "$".into()
    } else {
        text
    }
}

/// Renders `message` in the OpenAPI document's spelling: short enum names, `content` with
/// `kind`, proto field names, 64-bit integers as JSON numbers, default fields left out.
pub fn to_openapi<T: JsonMessage>(message: &T) -> Result<Value, JsonError> {
    let descriptor = descriptor(T::FULL_NAME);
    let mut value = canonical_value(&descriptor, message, false)?;
    spelling::to_openapi(&descriptor, &mut value);
    Ok(value)
}

/// Renders `message` as protobuf's canonical JSON with proto field names (the form
/// `chaukas-sdk` writes in file mode).
pub fn to_canonical<T: JsonMessage>(message: &T) -> Result<Value, JsonError> {
    canonical_value(&descriptor(T::FULL_NAME), message, true)
}

/// A query page rendered as OpenAPI JSON text, one event at a time: each event's JSON tree is
/// written out and dropped before the next is built, so the memory a page costs is its
/// output plus one event's tree, not a tree of the whole page (which was ~30x its protobuf
/// size). The text equals `to_openapi(response)` serialized.
pub fn query_page_to_openapi(response: &common::QueryResponse) -> Result<Vec<u8>, PageRenderError> {
    let mut out = Vec::with_capacity(prost::Message::encoded_len(response));
    out.push(b'{');
    if !response.events.is_empty() {
        out.extend_from_slice(b"\"events\":[");
        for (index, event) in response.events.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let value = to_openapi(event).map_err(|error| PageRenderError {
                event_id: event.event_id.clone(),
                reason: error.to_string(),
            })?;
            serde_json::to_writer(&mut out, &value).expect("writing JSON to a Vec cannot fail");
        }
        out.push(b']');
    }
    if !response.next_page_token.is_empty() {
        if !response.events.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"next_page_token\":");
        serde_json::to_writer(&mut out, &response.next_page_token)
            .expect("writing JSON to a Vec cannot fail");
    }
    out.push(b'}');
    Ok(out)
}

/// A stored event of a page that could not be rendered as JSON.
#[derive(Debug, thiserror::Error)]
#[error("stored event {event_id:?} cannot be rendered as JSON: {reason}")]
pub struct PageRenderError {
    /// The event's id, for the operator's log.
    pub event_id: String,
    /// What went wrong.
    pub reason: String,
}

fn canonical_value<T: JsonMessage>(
    descriptor: &prost_reflect::MessageDescriptor,
    message: &T,
    stringify_64_bit_integers: bool,
) -> Result<Value, JsonError> {
    let mut dynamic = DynamicMessage::new(descriptor.clone());
    dynamic
        .transcode_from(message)
        .map_err(|error| JsonError::Render(error.to_string()))?;
    opaque_any::wrap_unresolvable(pool(), &mut dynamic);
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(stringify_64_bit_integers)
        .skip_default_fields(true);
    let mut value = dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|error| JsonError::Render(error.to_string()))?;
    opaque_any::unwrap_json(&mut value);
    Ok(value)
}

#[cfg(test)]
mod tests;
