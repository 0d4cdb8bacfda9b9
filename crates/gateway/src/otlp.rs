//! OTLP trace ingestion (docs/otlp.md): `TraceService/Export` over gRPC and
//! `POST /v1/traces` over HTTP, both ending in [`GatewayService::export_traces`].
//!
//! Order of work, cheapest refusal first: the key (before the body is read), the body's size,
//! then the *decoded* size read from the encoded bytes (`chaukas_otlp::cost`), which is paid
//! from the gateway's body budget before a single span is decoded; then decode, map, admit
//! each span's events together, publish, and answer once JetStream has them. Spans that
//! cannot be stored are named in `partial_success`; the rest are stored.

use std::sync::Arc;

use chaukas_common::errors::{ErrorKind, ServiceError};
use chaukas_otlp::collector::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use chaukas_otlp::{Encoding, Origin};

use crate::access::Access;
use crate::admission::Reservation;
use crate::ingest::IngestError;
use crate::service::GatewayService;

pub(crate) mod grpc;
pub(crate) mod http;

/// The largest request OTLP ingestion decodes, in bytes of memory once decoded and mapped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OtlpLimits {
    pub(crate) max_decoded_bytes: usize,
}

impl GatewayService {
    /// Stores the spans of one export request (in `encoding`) and says which were refused.
    pub(crate) async fn export_traces(
        &self,
        access: &Access,
        reservation: &Arc<Reservation>,
        body: &[u8],
        encoding: Encoding,
    ) -> Result<ExportTraceServiceResponse, IngestError> {
        let cost = encoding.cost(body).map_err(IngestError::InvalidRequest)?;
        let limit = self.otlp.max_decoded_bytes;
        if cost.bytes > limit {
            return Err(IngestError::TooLarge(format!(
                "the request's {} spans would take about {} MiB to decode and store, more than \
                 the {} MiB one request may; send smaller batches",
                cost.spans,
                cost.bytes >> 20,
                limit >> 20
            )));
        }
        reservation.take(cost.bytes)?;
        let request = encoding.decode(body).map_err(IngestError::InvalidRequest)?;
        let origin = match access {
            Access::Key(principal) => Origin {
                tenant: Some(&principal.tenant),
                project: principal.project.as_deref(),
            },
            Access::Anyone => Origin {
                tenant: None,
                project: None,
            },
        };
        let mapped = chaukas_otlp::map_export(&request, &origin);
        drop(request);
        let refused = self.ingestor.ingest_spans(access, mapped).await?;
        Ok(answer(&refused))
    }
}

/// The OTLP answer: empty when every span was stored, else how many were not and why.
fn answer(refused: &chaukas_otlp::Refusals) -> ExportTraceServiceResponse {
    if refused.count == 0 {
        return ExportTraceServiceResponse::default();
    }
    let mut error_message = refused.reasons.join("; ");
    let unnamed = refused.count - refused.reasons.len() as u64;
    if unnamed > 0 {
        error_message.push_str(&format!("; and {unnamed} more"));
    }
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: i64::try_from(refused.count).unwrap_or(i64::MAX),
            error_message,
        }),
    }
}

/// OTLP's retry rule: only throttling and unavailability are worth a retry; everything
/// else says what to fix.
pub(crate) fn is_retryable(error: &IngestError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Unavailable | ErrorKind::TooManyRequests
    )
}
