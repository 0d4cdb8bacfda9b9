//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` over gRPC.
//!
//! Written by hand rather than generated: the generated server decodes the request inside
//! tonic, before any handler could weigh it. This one takes the message as raw bytes (tonic
//! still enforces the size limit, after gzip too), and the handler weighs, pays for and
//! decodes it ([`GatewayService::export_traces`]). The key was checked from the metadata
//! before the body was read (`admission`), which also left the request's body
//! [`Reservation`] in its extensions.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http;
use chaukas_common::errors::{ErrorKind, ServiceError};
use chaukas_otlp::Encoding;
use chaukas_otlp::collector::ExportTraceServiceResponse;
use prost::bytes::Buf;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::metadata::MetadataValue;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::{ProstCodec, ProstEncoder};

use crate::admission::{Reservation, access_of};
use crate::ingest::{IngestError, RETRY_AFTER};
use crate::service::GatewayService;

/// The one method's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Trailing metadata the OpenTelemetry exporters read their retry delay from: an encoded
/// `google.rpc.RetryInfo`.
const RETRY_INFO_METADATA: &str = "google.rpc.retryinfo-bin";

/// The TraceService, served next to the Chaukas services.
#[derive(Clone)]
pub(crate) struct TraceServiceServer {
    service: GatewayService,
    max_request_bytes: usize,
}

impl TraceServiceServer {
    pub(crate) fn new(service: GatewayService, max_request_bytes: usize) -> Self {
        Self {
            service,
            max_request_bytes,
        }
    }
}

impl NamedService for TraceServiceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for TraceServiceServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let status = ErrorKind::Unimplemented.status(format!(
                "{} is not a method of TraceService; call Export",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let export = Export(self.service.clone());
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(gzip, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// The Export call itself.
struct Export(GatewayService);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            let access = access_of(&request)?;
            let reservation = request
                .extensions()
                .get::<Arc<Reservation>>()
                .cloned()
                .ok_or_else(|| ErrorKind::Internal.status("request reached Export unweighed"))?;
            let body = request.into_inner();
            service
                .export_traces(&access, &reservation, &body, Encoding::Protobuf)
                .await
                .map(Response::new)
                .map_err(|error| status_of(&error))
        })
    }
}

/// The error table's status, with the retry delay where OTLP exporters look for it.
fn status_of(error: &IngestError) -> Status {
    let mut status = error.to_status();
    if super::is_retryable(error) {
        status.metadata_mut().insert_bin(
            RETRY_INFO_METADATA,
            MetadataValue::from_bytes(&retry_info()),
        );
    }
    status
}

/// `google.rpc.RetryInfo { retry_delay: Duration { seconds } }`, encoded.
fn retry_info() -> Vec<u8> {
    let seconds = u8::try_from(RETRY_AFTER.as_secs()).unwrap_or(u8::MAX) & 0x7f;
    // RetryInfo.retry_delay (field 1) holding Duration.seconds (field 1, varint).
    vec![0x0a, 0x02, 0x08, seconds]
}

/// Requests as raw bytes (weighed before decoding), answers as protobuf.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<ExportTraceServiceResponse, ExportTraceServiceResponse>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// Takes the message's bytes as they are.
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
