//! What an export request will cost to decode and map, read from its encoded bytes before
//! anything is decoded.
//!
//! Decoding multiplies: an empty span is two bytes on the wire (`0x12 0x00`) and a few
//! hundred bytes as a Rust struct, then three events and their metadata once mapped. A
//! 16 MiB request of empty spans would allocate gigabytes before any check could look at
//! it. So the gateway first walks the bytes with the trace schema (protobuf: field numbers;
//! JSON: the OTLP/JSON key names, see `cost_json`), adds up every message it would build,
//! and pays that from its memory budget; only then does it decode.
//!
//! The walk allocates nothing per element and recurses at most [`MAX_NESTING`] levels.

use std::mem::size_of;

use chaukas_proto::common::v1::Event;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

/// Deepest nesting of messages accepted (the request's own levels plus attribute values
/// nested in arrays and lists); prost refuses past 100 anyway, this refuses before decoding.
pub const MAX_NESTING: usize = 64;

/// The message types of a trace export, as far as cost is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    SpanEvent,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// A message we do not decode into anything of ours (unknown, or a leaf like EntityRef).
    Other,
}

/// A repeated element's vector may have grown to twice what it holds.
const GROWTH: usize = 2;
/// What a mapped span adds: up to three events (start, end, error) and the metadata tree
/// around its attributes.
const SPAN_MAPPING: usize = 3 * size_of::<Event>() + 1024;
/// What an attribute adds once mapped: a `google.protobuf.Value` and its map entry, in the
/// start and the end event's metadata.
const ATTRIBUTE_MAPPING: usize = 2 * (size_of::<prost_types::Value>() + 64);
/// Each string or bytes field is copied into the decoded message, the metadata, the typed
/// content and the encoded bus message.
pub(crate) const COPIES_PER_BYTE: usize = 5;

impl Shape {
    /// Decoded size of one element of this shape, with what mapping adds to it.
    pub(crate) fn cost(self) -> usize {
        let decoded = match self {
            Self::Request | Self::Other => 64,
            Self::ResourceSpans => size_of::<ResourceSpans>(),
            Self::Resource => size_of::<Resource>(),
            Self::ScopeSpans => size_of::<ScopeSpans>(),
            Self::Scope => size_of::<InstrumentationScope>(),
            Self::Span => size_of::<Span>() + SPAN_MAPPING,
            Self::SpanEvent => size_of::<span::Event>(),
            Self::Link => size_of::<span::Link>(),
            Self::Status => size_of::<Status>(),
            Self::KeyValue => size_of::<KeyValue>() + ATTRIBUTE_MAPPING,
            Self::AnyValue => size_of::<AnyValue>() + size_of::<prost_types::Value>(),
            Self::ArrayValue => size_of::<ArrayValue>(),
            Self::KeyValueList => size_of::<KeyValueList>(),
        };
        decoded * GROWTH
    }

    /// The shape of protobuf field `number` of this message, if it is a message.
    fn child(self, number: u64) -> Option<Self> {
        Some(match (self, number) {
            (Self::Request, 1) => Self::ResourceSpans,
            (Self::ResourceSpans, 1) => Self::Resource,
            (Self::ResourceSpans, 2) => Self::ScopeSpans,
            (Self::Resource, 1)
            | (Self::Scope, 3)
            | (Self::Span, 9)
            | (Self::SpanEvent, 3)
            | (Self::Link, 4)
            | (Self::KeyValueList, 1) => Self::KeyValue,
            (Self::Resource, 3) => Self::Other,
            (Self::ScopeSpans, 1) => Self::Scope,
            (Self::ScopeSpans, 2) => Self::Span,
            (Self::Span, 11) => Self::SpanEvent,
            (Self::Span, 13) => Self::Link,
            (Self::Span, 15) => Self::Status,
            (Self::KeyValue, 2) | (Self::ArrayValue, 1) => Self::AnyValue,
            (Self::AnyValue, 5) => Self::ArrayValue,
            (Self::AnyValue, 6) => Self::KeyValueList,
            _ => return None,
        })
    }

    /// The shape of the value under OTLP/JSON key `key` of this message, if it is a message
    /// (or a list of them).
    pub(crate) fn json_child(self, key: &str) -> Option<Self> {
        Some(match (self, key) {
            (Self::Request, "resourceSpans") => Self::ResourceSpans,
            (Self::ResourceSpans, "resource") => Self::Resource,
            (Self::ResourceSpans, "scopeSpans") => Self::ScopeSpans,
            (
                Self::Resource | Self::Scope | Self::Span | Self::SpanEvent | Self::Link,
                "attributes",
            )
            | (Self::KeyValueList, "values") => Self::KeyValue,
            (Self::Resource, "entityRefs") => Self::Other,
            (Self::ScopeSpans, "scope") => Self::Scope,
            (Self::ScopeSpans, "spans") => Self::Span,
            (Self::Span, "events") => Self::SpanEvent,
            (Self::Span, "links") => Self::Link,
            (Self::Span, "status") => Self::Status,
            (Self::KeyValue, "value") | (Self::ArrayValue, "values") => Self::AnyValue,
            (Self::AnyValue, "arrayValue") => Self::ArrayValue,
            (Self::AnyValue, "kvlistValue") => Self::KeyValueList,
            _ => return None,
        })
    }
}

/// What a request will cost, in bytes of memory, and how many spans it holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Bytes decoding and mapping will allocate, at most.
    pub bytes: usize,
    /// Spans in the request.
    pub spans: usize,
}

impl Cost {
    pub(crate) fn add(&mut self, shape: Shape) {
        self.bytes = self.bytes.saturating_add(shape.cost());
        self.spans += usize::from(shape == Shape::Span);
    }

    pub(crate) fn add_text(&mut self, len: usize) {
        let string = size_of::<String>() * GROWTH;
        self.bytes = self
            .bytes
            .saturating_add(string + len.saturating_mul(COPIES_PER_BYTE));
    }
}

/// The cost of an encoded (binary protobuf) `ExportTraceServiceRequest`, or why its bytes are
/// not one.
pub fn of_protobuf(bytes: &[u8]) -> Result<Cost, String> {
    let mut cost = Cost::default();
    cost.add(Shape::Request);
    walk(bytes, Shape::Request, 0, &mut cost)?;
    Ok(cost)
}

fn walk(mut bytes: &[u8], shape: Shape, depth: usize, cost: &mut Cost) -> Result<(), String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "messages are nested deeper than {MAX_NESTING} levels"
        ));
    }
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = key >> 3;
        match key & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = skip(bytes, 8)?,
            5 => bytes = skip(bytes, 4)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|_| truncated())?;
                let (field, rest) = (bytes.get(..len).ok_or_else(truncated)?, &bytes[len..]);
                bytes = rest;
                match shape.child(number) {
                    Some(child) => {
                        cost.add(child);
                        walk(field, child, depth + 1, cost)?;
                    }
                    None => cost.add_text(len),
                }
            }
            other => return Err(format!("wire type {other} is not valid here")),
        }
    }
    Ok(())
}

fn truncated() -> String {
    "the message ends in the middle of a field".into()
}

fn skip(bytes: &[u8], len: usize) -> Result<&[u8], String> {
    bytes.get(len..).ok_or_else(truncated)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in 0..10 {
        let (&byte, rest) = bytes.split_first().ok_or_else(truncated)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (shift * 7);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint is longer than 10 bytes".into())
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
