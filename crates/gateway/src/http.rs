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
//! makes the SDK split its batch and retry). The SDK's `Authorization: Bearer` key is checked
//! before the body is read: 401 without a valid key, 403 without the route's scope or for
//! another tenant's data (see `access`).

use std::future::Future;
use std::io::Read;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chaukas_auth::Scope;
use chaukas_common::health;
use chaukas_json::JsonMessage;
use chaukas_proto::client::v1::{IngestEventBatchRequest, IngestEventRequest};
use chaukas_proto::common::v1::{Event, EventBatch, QueryRequest};
use chaukas_proto::server::v1::GetEventStatsRequest;
use serde_json::json;
use tokio::net::TcpListener;

use crate::GatewayError;
use crate::access::Access;
use crate::grpc::GatewayService;
use crate::ingest::{IngestError, RETRY_AFTER};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    /// The same handlers as gRPC: key checks, ingestion, forwarded reads.
    pub(crate) service: GatewayService,
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
        .route("/v1/query", post(query))
        .route("/v1/stats", post(stats))
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
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chaukas\""),
            );
        }
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
            IngestError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            IngestError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            IngestError::Overloaded { .. } | IngestError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        Self::new(status, error.to_string())
    }
}

/// The `Authorization` header (`Bearer <key>`, as chaukas-sdk sends it).
fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// Checks the caller's API key for `scope` before the body is even read.
fn authorize(state: &HttpState, headers: &HeaderMap, scope: Scope) -> Result<Access, HttpError> {
    Ok(state.service.guard.check(authorization(headers), scope)?)
}

/// How a body is encoded, from its `Content-Type`; answers to query routes use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn of(headers: &HeaderMap) -> Result<Self, HttpError> {
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
            "application/x-protobuf" | "application/protobuf" | "application/octet-stream" => {
                Ok(Self::Protobuf)
            }
            "application/json" => Ok(Self::Json),
            json if json.starts_with("application/") && json.ends_with("+json") => Ok(Self::Json),
            other => Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not supported: send application/json or binary protobuf as application/x-protobuf"
                ),
            )),
        }
    }
}

/// Reads the body within `limit` bytes, gunzipping it (the decompressed size is bounded too).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, HttpError> {
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

/// A request body decoded as `T`, with the format it came in.
struct Decoded<T> {
    message: T,
    format: Format,
}

/// Decodes the body as `T`: binary protobuf, or JSON in either spelling. A JSON body may also
/// be the bare `Bare` message (`Event` for `/events`), which `wrap` turns into `T`;
/// `wrapper_keys` are the JSON keys that mark the wrapped form.
async fn read_request<T, Bare>(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    wrapper_keys: &[&str],
    wrap: impl FnOnce(Bare) -> T,
) -> Result<Decoded<T>, HttpError>
where
    T: JsonMessage,
    Bare: JsonMessage,
{
    let format = Format::of(headers)?;
    let bytes = read_body(headers, body, state.max_request_bytes).await?;
    let invalid = |reason: String| HttpError::new(StatusCode::BAD_REQUEST, reason);
    let message = match format {
        Format::Protobuf => T::decode(bytes).map_err(|error| {
            invalid(format!(
                "body is not a valid binary {}: {error}",
                T::FULL_NAME
            ))
        })?,
        Format::Json => {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|error| invalid(format!("body is not valid JSON: {error}")))?;
            let wrapped = value
                .as_object()
                .is_some_and(|object| wrapper_keys.iter().any(|key| object.contains_key(*key)));
            let described = |error: chaukas_json::JsonError| {
                invalid(format!(
                    "invalid JSON {}: {error}",
                    if wrapped {
                        T::FULL_NAME
                    } else {
                        Bare::FULL_NAME
                    }
                ))
            };
            if wrapped || wrapper_keys.is_empty() {
                chaukas_json::from_value::<T>(value).map_err(described)?
            } else {
                wrap(chaukas_json::from_value::<Bare>(value).map_err(described)?)
            }
        }
    };
    Ok(Decoded { message, format })
}

/// An answer in the request's format: binary protobuf, or JSON in the OpenAPI spelling.
fn answer<T: JsonMessage>(status: StatusCode, format: Format, message: &T) -> Response {
    match format {
        Format::Json => (status, axum::Json(chaukas_json::to_openapi(message))).into_response(),
        Format::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
    }
}

async fn ingest_one(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Ingest)?;
    let request: Decoded<IngestEventRequest> =
        read_request(&state, &headers, body, &["event"], |event: Event| {
            IngestEventRequest { event: Some(event) }
        })
        .await?;
    let event = request
        .message
        .event
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "event is required"))?;
    let event_id = event.event_id.clone();
    state.service.ingestor.ingest_one(&access, event).await?;
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
    let access = authorize(&state, &headers, Scope::Ingest)?;
    let request: Decoded<IngestEventBatchRequest> = read_request(
        &state,
        &headers,
        body,
        &["event_batch", "eventBatch"],
        |batch: EventBatch| IngestEventBatchRequest {
            event_batch: Some(batch),
        },
    )
    .await?;
    let batch = request
        .message
        .event_batch
        .ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "event_batch is required"))?;
    let outcome = state
        .service
        .ingestor
        .ingest_batch(&access, batch.events)
        .await?;
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

/// `POST /v1/query`: a `QueryRequest` (JSON or protobuf) answered with a `QueryResponse`.
async fn query(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Query)?;
    let request: Decoded<QueryRequest> =
        read_request(&state, &headers, body, &[], |request: QueryRequest| request).await?;
    let response = state
        .service
        .query(&access, Some(request.message))
        .await?
        .response
        .unwrap_or_default();
    Ok(answer(StatusCode::OK, request.format, &response))
}

/// `POST /v1/stats` (our addition to the document): `GetEventStatsRequest` in, response out.
async fn stats(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Stats)?;
    let request: Decoded<GetEventStatsRequest> = read_request(
        &state,
        &headers,
        body,
        &[],
        |request: GetEventStatsRequest| request,
    )
    .await?;
    let response = state.service.stats(&access, request.message).await?;
    Ok(answer(StatusCode::OK, request.format, &response))
}

impl From<tonic::Status> for HttpError {
    /// The query service's gRPC codes, as the HTTP statuses a REST caller expects.
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let code = match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                StatusCode::BAD_REQUEST
            }
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(code, status.message())
    }
}

/// `GET /v1/capabilities`: the same answer as the GetCapabilities RPC, as JSON.
async fn capabilities(State(state): State<HttpState>) -> Response {
    let capabilities = chaukas_proto::capabilities(state.service.guard.enforced());
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
