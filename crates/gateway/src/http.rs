//! The HTTP surface: the routes `chaukas-sdk` posts binary protobuf to, plus health checks
//! and metrics.
//!
//! * `POST /events` (and `/v1/events`): body `chaukas.spec.client.v1.IngestEventRequest`.
//! * `POST /events/batch` (and `/v1/events/batch`): body `IngestEventBatchRequest`.
//! * `GET /v1/capabilities`: the OpenAPI document's `Capabilities` as JSON.
//!
//! Bodies are binary protobuf (`application/x-protobuf`, `application/protobuf` or
//! `application/octet-stream`), optionally gzip-compressed (`Content-Encoding: gzip`).
//! Answers: 202 with a JSON summary; 400 naming what is malformed or invalid; 413 past the
//! size limit; 415 for other content types; 503 with `Retry-After` when nothing could be
//! accepted (its body says "high memory usage" when the gateway sheds load, which is what
//! makes the SDK split its batch and retry). The SDK's `Authorization: Bearer` header is
//! accepted and not checked until API keys exist (see `authorize`).

use std::future::Future;
use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chaukas_common::health;
use chaukas_proto::client::v1::{IngestEventBatchRequest, IngestEventRequest};
use prost::Message;
use serde_json::json;
use tokio::net::TcpListener;

use crate::GatewayError;
use crate::ingest::{IngestError, Ingestor, RETRY_AFTER};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) ingestor: Arc<Ingestor>,
    /// Largest body accepted, before and after gzip decompression.
    pub(crate) max_request_bytes: usize,
}

/// Ingestion routes merged with the health and metrics routes.
pub(crate) fn router(state: HttpState, health_routes: Router) -> Router {
    Router::new()
        .route("/events", post(ingest_one))
        .route("/v1/events", post(ingest_one))
        .route("/events/batch", post(ingest_batch))
        .route("/v1/events/batch", post(ingest_batch))
        .route("/v1/capabilities", get(capabilities))
        .with_state(state)
        .merge(health_routes)
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    health::serve(listener, router, shutdown)
        .await
        .map_err(GatewayError::Http)
}

/// A refusal: status and a JSON body `{"error": "..."}` saying what to fix.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER.as_secs()),
            );
        }
        response
    }
}

impl From<IngestError> for HttpError {
    fn from(error: IngestError) -> Self {
        let status = match error {
            IngestError::InvalidRequest(_) | IngestError::InvalidEvent(_) => {
                StatusCode::BAD_REQUEST
            }
            IngestError::Overloaded { .. } | IngestError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        Self::new(status, error.to_string())
    }
}

/// Where API keys will be checked. Today every caller is accepted: keys bound to tenants
/// are a later piece of work, and the SDK always sends one, so refusing here would break it.
fn authorize(_headers: &HeaderMap) -> Result<(), HttpError> {
    Ok(())
}

/// Reads the body as protobuf bytes: checks the content type, the size, and gunzips.
async fn protobuf_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" | "application/octet-stream" => {}
        "application/json" => {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "JSON bodies are not accepted yet: send binary protobuf with Content-Type: application/x-protobuf",
            ));
        }
        other => {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not supported: send binary protobuf as application/x-protobuf"
                ),
            ));
        }
    }
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes; send smaller batches"),
        )
    };
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => {
            let mut decoded = Vec::new();
            let read = flate2::read::GzDecoder::new(raw.as_ref())
                .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
                .read_to_end(&mut decoded)
                .map_err(|error| {
                    HttpError::new(
                        StatusCode::BAD_REQUEST,
                        format!("body is not valid gzip: {error}"),
                    )
                })?;
            if read > limit {
                return Err(too_large());
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported: use gzip or none"),
        )),
    }
}

/// Authorizes the caller and decodes the body as the request message `T`, called `name`
/// in the error a malformed body gets.
async fn read_request<T: Message + Default>(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    name: &str,
) -> Result<T, HttpError> {
    authorize(headers)?;
    let bytes = protobuf_body(headers, body, state.max_request_bytes).await?;
    T::decode(bytes).map_err(|error| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not a valid binary {name}: {error}"),
        )
    })
}

async fn ingest_one(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: IngestEventRequest = read_request(
        &state,
        &headers,
        body,
        "chaukas.spec.client.v1.IngestEventRequest",
    )
    .await?;
    let event = request
        .event
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "event is required"))?;
    let event_id = event.event_id.clone();
    state.ingestor.ingest_one(event).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "accepted",
            "event_id": event_id,
            "accepted_count": 1,
            "rejected_count": 0,
            "rejected_event_ids": [],
        })),
    )
        .into_response())
}

async fn ingest_batch(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: IngestEventBatchRequest = read_request(
        &state,
        &headers,
        body,
        "chaukas.spec.client.v1.IngestEventBatchRequest",
    )
    .await?;
    let batch = request
        .event_batch
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "event_batch is required"))?;
    let outcome = state.ingestor.ingest_batch(batch.events).await?;
    let errors: Vec<_> = outcome
        .rejected
        .iter()
        .map(
            |(event_id, rejection)| json!({ "event_id": event_id, "error": rejection.to_string() }),
        )
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "accepted",
            "batch_id": batch.batch_id,
            "accepted_count": outcome.accepted,
            "rejected_count": outcome.rejected.len(),
            "rejected_event_ids": outcome.rejected.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "errors": errors,
        })),
    )
        .into_response())
}

/// `GET /v1/capabilities`: the same answer as the GetCapabilities RPC, as JSON.
async fn capabilities() -> Response {
    let capabilities = chaukas_proto::capabilities();
    axum::Json(json!({
        "worm_retention": capabilities.worm_retention,
        "audit_proofs": capabilities.audit_proofs,
        "distributed_query": capabilities.distributed_query,
        "rbac": capabilities.rbac,
        "sso": capabilities.sso,
        "policy_decisions": capabilities.policy_decisions,
        "data_access_events": capabilities.data_access_events,
    }))
    .into_response()
}
