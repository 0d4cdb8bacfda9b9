//! The HTTP surface: the routes `chaukas-sdk` posts binary protobuf to, plus health checks
//! and metrics.
//!
//! * `POST /events` (and `/v1/events`): body `chaukas.spec.client.v1.IngestEventRequest`.
//! * `POST /events/batch` (and `/v1/events/batch`): body `IngestEventBatchRequest`.
//! * `GET /v1/capabilities`: the OpenAPI document's `Capabilities` as JSON.
//!
//! Bodies are binary protobuf (`application/x-protobuf`, `application/protobuf` or
//! `application/octet-stream`), optionally compressed (`Content-Encoding: gzip` or `deflate`).
//! Answers: 202 with a JSON summary; 400 naming what is malformed or invalid; 413 past the
//! size limit; 415 for other content types; 503 with `Retry-After` when nothing could be
//! accepted (its body says "high memory usage" when the gateway sheds load, which is what
//! makes the SDK split its batch and retry). The SDK's `Authorization: Bearer` key is checked
//! before the body is read: 401 without a valid key, 403 without the route's scope or for
//! another tenant's data (see `access`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use chaukas_auth::Scope;
use chaukas_common::errors::{ErrorKind, ServiceError};
use chaukas_json::JsonMessage;
use chaukas_proto::client::v1::{IngestEventBatchRequest, IngestEventRequest};
use chaukas_proto::common::v1::{Event, EventBatch, QueryRequest, QueryResponse};
use chaukas_proto::server::v1::GetEventStatsRequest;
use prost::Message;
use serde_json::json;

use crate::access::{Access, authorization};
use crate::admission::{BodyBudget, BudgetBody, Reservation};
use crate::http_body::{BodyLimits, read_body};
use crate::ingest::IngestError;
use crate::service::GatewayService;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct HttpState {
    /// The same handlers as gRPC: key checks, ingestion, forwarded reads.
    pub(crate) service: GatewayService,
    /// Ingestion bodies: size (before and after gzip) and time.
    pub(crate) ingest_limits: Arc<BodyLimits>,
    /// Read bodies (query, stats): small filters.
    pub(crate) read_limits: Arc<BodyLimits>,
    /// What every body is paid from.
    pub(crate) budget: BodyBudget,
    /// Cancelled when the gateway stops: long-lived responses (the live tail) end then, so
    /// the graceful drain does not wait on them.
    pub(crate) stop: tokio_util::sync::CancellationToken,
    /// The live tails open on this gateway, per tenant.
    pub(crate) tails: Arc<crate::http_tail::TailSlots>,
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
        .route("/v1/traces", post(crate::otlp::http::export))
        .route("/v1/capabilities", get(capabilities))
        .route("/v1/log/key", get(log_key))
        .route("/v1/log/{tenant}/{*resource}", get(log_resource))
        .route("/v1/sessions", get(crate::http_sessions::list))
        .route("/v1/stats/models", get(crate::http_sessions::model_stats))
        .route("/v1/sessions/{*path}", get(crate::http_sessions::one))
        .route("/v1/tail", get(crate::http_tail::tail))
        .route("/ui", get(crate::http_ui::redirect))
        .route("/ui/", get(crate::http_ui::index))
        .route("/ui/{file}", get(crate::http_ui::asset))
        .route_layer(middleware::from_fn_with_state(state.clone(), on_budget))
        .with_state(state)
        .merge(health_routes)
}

/// Every body of these routes is read on the gateway's body budget; the bytes stay reserved
/// until the answer is made.
async fn on_budget(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let reservation = state.budget.reservation();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(reservation.clone());
    let body = Body::new(BudgetBody::new(body, reservation.clone()));
    let response = next.run(Request::from_parts(parts, body)).await;
    drop(reservation);
    response
}

/// A refusal: status and a JSON body `{"error": "..."}` saying what to fix.
#[derive(Debug)]
pub(crate) struct HttpError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl HttpError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl HttpError {
    /// `body` as this error's answer: its status, and the headers the error table gives its
    /// kind (`WWW-Authenticate` for 401, `Retry-After` where a retry helps).
    pub(crate) fn answer(&self, body: impl IntoResponse) -> Response {
        let mut response = (self.kind.http_status(), body).into_response();
        if self.kind == ErrorKind::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chaukas\""),
            );
        }
        if let Some(after) = self.kind.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        response
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        self.answer(axum::Json(json!({ "error": self.message })))
    }
}

impl From<IngestError> for HttpError {
    fn from(error: IngestError) -> Self {
        Self::new(error.kind(), error.public_message())
    }
}

/// Checks the caller's API key for `scope` before the body is even read.
pub(crate) fn authorize(
    state: &HttpState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Access, HttpError> {
    Ok(state.service.guard.check(authorization(headers), scope)?)
}

/// How a body is encoded, from its `Content-Type`; answers to query routes use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

/// The request's media type: `Content-Type` without parameters, lower case ("" if none).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Format {
    fn of(headers: &HeaderMap) -> Result<Self, HttpError> {
        match media_type(headers).as_str() {
            "application/x-protobuf" | "application/protobuf" | "application/octet-stream" => {
                Ok(Self::Protobuf)
            }
            "application/json" => Ok(Self::Json),
            json if json.starts_with("application/") && json.ends_with("+json") => Ok(Self::Json),
            other => Err(HttpError::new(
                ErrorKind::UnsupportedMediaType,
                format!(
                    "Content-Type {other:?} is not supported: send application/json or binary protobuf as application/x-protobuf"
                ),
            )),
        }
    }
}

/// A body with what it is read under.
struct BodyToRead<'a> {
    headers: &'a HeaderMap,
    body: Body,
    limits: &'a BodyLimits,
    reservation: &'a Arc<Reservation>,
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
    body: BodyToRead<'_>,
    wrapper_keys: &[&str],
    wrap: impl FnOnce(Bare) -> T,
) -> Result<Decoded<T>, HttpError>
where
    T: JsonMessage,
    Bare: JsonMessage,
{
    let format = Format::of(body.headers)?;
    let bytes = read_body(body.headers, body.body, body.limits, Some(body.reservation)).await?;
    let invalid = |reason: String| HttpError::new(ErrorKind::BadRequest, reason);
    let message = match format {
        Format::Protobuf => {
            if T::FULL_NAME.ends_with(".IngestEventBatchRequest") {
                chaukas_proto::codec::check_batch_wire(&bytes).map_err(invalid)?;
            }
            T::decode(bytes).map_err(|error| {
                invalid(format!(
                    "body is not a valid binary {}: {error}",
                    T::FULL_NAME
                ))
            })?
        }
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
fn answer<T: JsonMessage>(format: Format, message: &T) -> Result<Response, HttpError> {
    match format {
        Format::Json => {
            let value = chaukas_json::to_openapi(message).map_err(|error| {
                HttpError::new(
                    ErrorKind::Internal,
                    chaukas_common::errors::internal(
                        "the answer cannot be rendered as JSON",
                        &error,
                    ),
                )
            })?;
            Ok((StatusCode::OK, axum::Json(value)).into_response())
        }
        Format::Protobuf => Ok(protobuf(message.encode_to_vec())),
    }
}

fn protobuf(bytes: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        bytes,
    )
        .into_response()
}

/// A query page: JSON rendered one event at a time (see `chaukas_json::query_page_to_openapi`);
/// an event that cannot be rendered fails this request, named in the log, never the process.
fn answer_page(format: Format, page: &QueryResponse) -> Result<Response, HttpError> {
    match format {
        Format::Protobuf => Ok(protobuf(page.encode_to_vec())),
        Format::Json => match chaukas_json::query_page_to_openapi(page) {
            Ok(text) => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                text,
            )
                .into_response()),
            Err(error) => Err(HttpError::new(
                ErrorKind::Internal,
                chaukas_common::errors::internal(
                    "a stored event of this page cannot be rendered as JSON; read it as protobuf",
                    &error,
                ),
            )),
        },
    }
}

async fn ingest_one(
    State(state): State<HttpState>,
    Extension(reservation): Extension<Arc<Reservation>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Ingest)?;
    let to_read = BodyToRead {
        headers: &headers,
        body,
        limits: &state.ingest_limits,
        reservation: &reservation,
    };
    let request: Decoded<IngestEventRequest> = read_request(to_read, &["event"], |event: Event| {
        IngestEventRequest { event: Some(event) }
    })
    .await?;
    let event_id = state
        .service
        .ingest_event(&access, request.message.event)
        .await?;
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
    Extension(reservation): Extension<Arc<Reservation>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Ingest)?;
    let to_read = BodyToRead {
        headers: &headers,
        body,
        limits: &state.ingest_limits,
        reservation: &reservation,
    };
    let request: Decoded<IngestEventBatchRequest> = read_request(
        to_read,
        &["event_batch", "eventBatch"],
        |batch: EventBatch| IngestEventBatchRequest {
            event_batch: Some(batch),
        },
    )
    .await?;
    let (batch_id, outcome) = state
        .service
        .ingest_batch(&access, request.message.event_batch)
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
            "batch_id": batch_id,
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
    Extension(reservation): Extension<Arc<Reservation>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Query)?;
    let to_read = BodyToRead {
        headers: &headers,
        body,
        limits: &state.read_limits,
        reservation: &reservation,
    };
    let request: Decoded<QueryRequest> =
        read_request(to_read, &[], |request: QueryRequest| request).await?;
    let response = state
        .service
        .query(&access, Some(request.message))
        .await?
        .response
        .unwrap_or_default();
    answer_page(request.format, &response)
}

/// `POST /v1/stats` (our addition to the document): `GetEventStatsRequest` in, response out.
async fn stats(
    State(state): State<HttpState>,
    Extension(reservation): Extension<Arc<Reservation>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Stats)?;
    let to_read = BodyToRead {
        headers: &headers,
        body,
        limits: &state.read_limits,
        reservation: &reservation,
    };
    let request: Decoded<GetEventStatsRequest> =
        read_request(to_read, &[], |request: GetEventStatsRequest| request).await?;
    let response = state.service.stats(&access, request.message).await?;
    answer(request.format, &response)
}

impl From<tonic::Status> for HttpError {
    /// A status of the shared service, as the error table's HTTP status.
    fn from(status: tonic::Status) -> Self {
        Self::new(ErrorKind::of_status(&status), status.message())
    }
}

/// `GET /v1/log/key`: the log's verifier key(s), one per line (docs/audit.md).
async fn log_key(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Query)?;
    let resource = state
        .service
        .log_resource(&access, String::new(), "key".into())
        .await?;
    Ok(log_answer(resource))
}

/// `GET /v1/log/{tenant}/...`: the tenant's checkpoint, C2SP tiles, entry bundles and
/// proofs (docs/audit.md); the tenant (percent-decoded) must be the key's.
async fn log_resource(
    State(state): State<HttpState>,
    Path((tenant, resource)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Query)?;
    let resource = state
        .service
        .log_resource(&access, tenant, resource)
        .await?;
    Ok(log_answer(resource))
}

fn log_answer(resource: chaukas_proto::internal::v1::LogResourceResponse) -> Response {
    let cache = match resource.max_age_secs {
        0 => "no-store".to_owned(),
        secs => format!("public, max-age={secs}, immutable"),
    };
    let content_type = match resource.content_type.as_str() {
        "application/octet-stream" => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CACHE_CONTROL, cache),
        ],
        resource.body,
    )
        .into_response()
}

/// `GET /v1/capabilities`: the same answer as the GetCapabilities RPC, as JSON.
async fn capabilities(State(state): State<HttpState>) -> Response {
    let capabilities = state.service.capabilities();
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
