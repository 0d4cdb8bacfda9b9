//! `POST /v1/traces`: OTLP/HTTP, binary protobuf or OTLP/JSON, optionally gzip.
//!
//! Answers as OTLP/HTTP specifies: 200 with an `ExportTraceServiceResponse` (its
//! `partial_success` naming refused spans) in the request's encoding; otherwise the error
//! table's status (400 bad data, not to be retried; 401/403; 413; 415; 503 with
//! `Retry-After` when the gateway sheds load or the bus is away) with a `google.rpc.Status`
//! body in the request's encoding.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chaukas_auth::Scope;
use chaukas_common::errors::ErrorKind;
use chaukas_otlp::Encoding;

use crate::access::authorization;
use crate::admission::Reservation;
use crate::http::{HttpError, HttpState};
use crate::http_body::read_body;

/// `POST /v1/traces`.
pub(crate) async fn export(
    State(state): State<HttpState>,
    Extension(reservation): Extension<Arc<Reservation>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let parsed = encoding_of(&headers);
    let encoding = parsed
        .as_ref()
        .map_or(Encoding::Protobuf, |encoding| *encoding);
    let answered = async {
        let encoding = parsed?;
        let access = state
            .service
            .guard
            .check(authorization(&headers), Scope::Ingest)?;
        let body = read_body(&headers, body, &state.ingest_limits, Some(&reservation)).await?;
        let response = state
            .service
            .export_traces(&access, &reservation, &body, encoding)
            .await?;
        Ok::<_, HttpError>(response)
    }
    .await;
    match answered {
        Ok(response) => (
            [(header::CONTENT_TYPE, content_type(encoding))],
            encoding.encode(&response),
        )
            .into_response(),
        Err(error) => refusal(&error, encoding),
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, HttpError> {
    match crate::http::media_type(headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(HttpError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "Content-Type {other:?} is not an OTLP encoding: send application/x-protobuf or \
                 application/json"
            ),
        )),
    }
}

fn content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    }
}

/// An error as OTLP/HTTP wants it: the table's status, a `google.rpc.Status` body.
fn refusal(error: &HttpError, encoding: Encoding) -> Response {
    let code = error.kind.status(String::new()).code() as i32;
    let body = match encoding {
        Encoding::Protobuf => {
            let mut bytes = Vec::with_capacity(error.message.len() + 16);
            prost::encoding::int32::encode(1, &code, &mut bytes);
            prost::encoding::string::encode(2, &error.message, &mut bytes);
            bytes
        }
        Encoding::Json => serde_json::json!({ "code": code, "message": error.message })
            .to_string()
            .into_bytes(),
    };
    error.answer(([(header::CONTENT_TYPE, content_type(encoding))], body))
}
