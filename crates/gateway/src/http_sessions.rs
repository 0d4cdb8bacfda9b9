//! The sessions API over HTTP (docs/sessions.md): `GET /v1/sessions`,
//! `GET /v1/sessions/{id}` and `GET /v1/sessions/{id}/prov`, with the same API keys as the
//! query routes (`query` scope), confined to the key's tenant and forwarded to the query
//! service, whose JSON body is returned as it is.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

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

/// `GET /v1/sessions/{id}` and `/v1/sessions/{id}/prov`.
pub(crate) async fn one(
    State(state): State<HttpState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    answer(&state, &headers, path, query.unwrap_or_default()).await
}

async fn answer(
    state: &HttpState,
    headers: &HeaderMap,
    path: String,
    query: String,
) -> Result<Response, HttpError> {
    let access = authorize(state, headers, Scope::Query)?;
    let resource = state.service.session_resource(&access, path, query).await?;
    let content_type = match resource.content_type.as_str() {
        "application/ld+json" => "application/ld+json",
        _ => "application/json",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        resource.body,
    )
        .into_response())
}
