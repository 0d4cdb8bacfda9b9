//! Decoding an export request in either OTLP encoding, after its cost was paid.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::cost::Cost;

/// The two OTLP encodings of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf (gRPC, and OTLP/HTTP `application/x-protobuf`).
    Protobuf,
    /// OTLP/JSON (`application/json`): lowerCamelCase keys, hex ids, 64-bit integers as
    /// strings or numbers, enums as integers.
    Json,
}

impl Encoding {
    /// What decoding and mapping `body` will allocate, or why it is not a request.
    pub fn cost(self, body: &[u8]) -> Result<Cost, String> {
        match self {
            Self::Protobuf => crate::cost::of_protobuf(body),
            Self::Json => crate::cost_of_json(body),
        }
    }

    /// `body` as a request, or a message saying what is wrong with it.
    pub fn decode(self, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
        match self {
            Self::Protobuf => ExportTraceServiceRequest::decode(body).map_err(|error| {
                format!("body is not a valid binary ExportTraceServiceRequest: {error}")
            }),
            Self::Json => serde_json::from_slice(body).map_err(|error| {
                format!("body is not a valid OTLP/JSON ExportTraceServiceRequest: {error}")
            }),
        }
    }

    /// `response` in this encoding.
    pub fn encode(self, response: &ExportTraceServiceResponse) -> Vec<u8> {
        match self {
            Self::Protobuf => response.encode_to_vec(),
            // OTLP/JSON writes int64 as a string and leaves an absent message out.
            Self::Json => {
                let body = match &response.partial_success {
                    None => serde_json::json!({}),
                    Some(partial) => serde_json::json!({
                        "partialSuccess": {
                            "rejectedSpans": partial.rejected_spans.to_string(),
                            "errorMessage": partial.error_message,
                        }
                    }),
                };
                body.to_string().into_bytes()
            }
        }
    }
}
