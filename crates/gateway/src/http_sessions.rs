//! The sessions API over HTTP (docs/sessions.md): `GET /v1/sessions`,
//! `GET /v1/sessions/{id}`, `/v1/sessions/{id}/prov` and `/v1/sessions/{id}/events/{event id}`
//! (one event, rendered like a query's), with the same API keys as the
//! query routes (`query` scope), confined to the key's tenant and forwarded to the query
//! service, whose JSON body is returned as it is.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};

use chaukas_common::errors::ErrorKind;
use chaukas_proto::common::v1::Event;
use prost::Message;

use crate::http::{HttpError, HttpState, authorize};
use chaukas_auth::Scope;

/// `GET /v1/sessions`: one page of sessions, newest first.
pub(crate) async fn list(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    answer(&state, &headers, String::new(), query.unwrap_or_default()).await
}

/// `GET /v1/sessions/{id}`, `/v1/sessions/{id}/prov` and `/v1/sessions/{id}/events/{event
/// id}`. The path is forwarded still percent-encoded: the query service splits it before
/// decoding, so an id containing `/` is addressable as `%2F`.
pub(crate) async fn one(
    State(state): State<HttpState>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let path = uri
        .path()
        .strip_prefix("/v1/sessions/")
        .unwrap_or_default()
        .to_owned();
    answer(&state, &headers, path, query.unwrap_or_default()).await
}

/// `GET /v1/stats/models`: tokens, cost and calls by model and provider (`stats` scope).
pub(crate) async fn model_stats(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Stats)?;
    let stats = state
        .service
        .model_stats(&access, query.unwrap_or_default())
        .await?;
    Ok(json_answer("application/json", stats.body))
}

fn json_answer(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn answer(
    state: &HttpState,
    headers: &HeaderMap,
    path: String,
    query: String,
) -> Result<Response, HttpError> {
    let access = authorize(state, headers, Scope::Query)?;
    let resource = state.service.session_resource(&access, path, query).await?;
    let (content_type, body) = match resource.content_type.as_str() {
        "application/ld+json" => ("application/ld+json", resource.body),
        // One event (`/v1/sessions/{id}/events/{event id}`), rendered like a query's.
        protobuf if protobuf.starts_with("application/x-protobuf") => {
            let event = Event::decode(resource.body.as_slice()).map_err(|error| {
                HttpError::new(
                    ErrorKind::Internal,
                    format!("the query service sent an undecodable event: {error}"),
                )
            })?;
            let json = chaukas_json::to_openapi(&event).map_err(|error| {
                HttpError::new(
                    ErrorKind::Internal,
                    format!("the event cannot be rendered: {error}"),
                )
            })?;
            ("application/json", json.to_string().into_bytes())
        }
        _ => ("application/json", resource.body),
    };
    Ok(json_answer(content_type, body))
}
