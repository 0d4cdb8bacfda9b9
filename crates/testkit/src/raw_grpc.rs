//! Sending arbitrary bytes as a gRPC request, the way a broken or hostile client would: no
//! generated stub would ever encode them.

use std::net::SocketAddr;

use prost::bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// Passes bytes through both ways.
#[derive(Debug, Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Calls `method` (e.g. `/chaukas.spec.server.v1.ChaukasServerService/IngestEventBatch`) on
/// the gateway at `addr` with `body` as the message and `key` as the bearer key, and returns
/// the answer's bytes or its status.
pub async fn call(
    addr: SocketAddr,
    method: &'static str,
    body: impl Into<Bytes>,
    key: Option<&str>,
) -> Result<Bytes, Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .map_err(|error| Status::unknown(error.to_string()))?
        .connect()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|error| Status::unknown(error.to_string()))?;
    let mut request = Request::new(body.into());
    if let Some(key) = key {
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
        );
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// The method path of IngestEventBatch on the server service.
pub const INGEST_BATCH: &str = "/chaukas.spec.server.v1.ChaukasServerService/IngestEventBatch";
/// The method path of QueryEvents on the server service.
pub const QUERY_EVENTS: &str = "/chaukas.spec.server.v1.ChaukasServerService/QueryEvents";

/// An `IngestEventBatchRequest` of `count` empty events on the wire (`1a 00` each): two bytes
/// that decode into a whole Event struct.
pub fn empty_events_batch(count: usize) -> Vec<u8> {
    field(0x0a, &empty_fields(0x1a, count))
}

/// `count` empty length-delimited fields of key byte `key`, back to back.
fn empty_fields(key: u8, count: usize) -> Vec<u8> {
    std::iter::repeat_n([key, 0x00], count).flatten().collect()
}

/// `body` as one length-delimited field of key byte `key`.
fn field(key: u8, body: &[u8]) -> Vec<u8> {
    let mut wire = vec![key];
    prost::encoding::encode_varint(body.len() as u64, &mut wire);
    wire.extend_from_slice(body);
    wire
}

/// The method path of OTLP's trace export.
pub const OTLP_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// An `ExportTraceServiceRequest` of `count` empty spans in one scope (`12 00` each): two
/// bytes that decode into a whole Span struct and, once mapped, into events.
pub fn empty_spans_export(count: usize) -> Vec<u8> {
    // ExportTraceServiceRequest.resource_spans (1) > ResourceSpans.scope_spans (2) > spans (2).
    field(0x0a, &field(0x12, &empty_fields(0x12, count)))
}
