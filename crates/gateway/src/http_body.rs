//! Reading an HTTP request body within its limits, whatever the client does.
//!
//! * **Size**: a declared `Content-Length` over the limit is refused before a byte is read
//!   (so `Expect: 100-continue` gets 413, not `100 Continue`); otherwise bytes are counted as
//!   they arrive, each frame also counting [`FRAME_OVERHEAD`] so a body of one-byte chunks
//!   reaches the limit by its framing, and all frames go into one buffer (not a list of tiny
//!   allocations).
//! * **Time**: the whole body must arrive within `gateway.body_timeout_ms` (408 otherwise), so
//!   a never-ending or trickling body cannot hold a connection and its buffer forever.
//! * **Memory**: the request's frames are paid for from the gateway's body budget
//!   (`admission`), and a gzip body's decompressed bytes too; a spent budget is 503 + retry.
//! * **gzip and deflate** (zlib): every member of a multi-member gzip stream is read; the
//!   decompressed size is bounded by the same limit.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use bytes::BytesMut;
use chaukas_common::errors::ErrorKind;
use http_body::Body as _;

use crate::admission::Reservation;
use crate::http::HttpError;
use crate::metrics::GatewayMetrics;

/// What each body frame counts against the size limit beyond its bytes: chunk-size line and
/// CRLFs of chunked encoding, rounded up.
pub(crate) const FRAME_OVERHEAD: usize = 8;

/// The limits one body is read under.
pub(crate) struct BodyLimits {
    /// Most bytes (raw, framing included, and decompressed).
    pub(crate) max_bytes: usize,
    /// Time for the whole body.
    pub(crate) timeout: Duration,
    /// Where bodies that ran out of time are counted.
    pub(crate) metrics: Arc<GatewayMetrics>,
}

/// Reads the body within `limits`, paying decompressed bytes from `reservation`, and
/// gunzips it.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &BodyLimits,
    reservation: Option<&Arc<Reservation>>,
) -> Result<Bytes, HttpError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(too_large(limits.max_bytes));
    }
    let encoding = content_encoding(headers)?;
    let raw = tokio::time::timeout(limits.timeout, collect(body, limits.max_bytes))
        .await
        .map_err(|_| {
            limits
                .metrics
                .client_timeouts
                .get_or_create(&[("while", "reading_body")])
                .inc();
            HttpError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    limits.timeout.as_secs()
                ),
            )
        })??;
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => inflate(
            flate2::read::MultiGzDecoder::new(&raw[..]),
            "gzip",
            limits.max_bytes,
            reservation,
        ),
        // HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2), what OTLP exporters send.
        Encoding::Deflate => inflate(
            flate2::read::ZlibDecoder::new(&raw[..]),
            "deflate",
            limits.max_bytes,
            reservation,
        ),
    }
}

enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, HttpError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(Encoding::Identity),
        "gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        other => Err(HttpError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Encoding {other:?} is not supported: use gzip, deflate or none"),
        )),
    }
}

fn too_large(limit: usize) -> HttpError {
    HttpError::new(
        ErrorKind::TooLarge,
        format!("request body is larger than {limit} bytes; send smaller batches"),
    )
}

/// Frames into one buffer, counting framing against `limit`.
async fn collect(mut body: Body, limit: usize) -> Result<Bytes, HttpError> {
    let mut buffer = BytesMut::new();
    let mut counted = 0usize;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(body_error)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        counted = counted.saturating_add(data.len() + FRAME_OVERHEAD);
        if counted > limit.saturating_add(FRAME_OVERHEAD) {
            return Err(too_large(limit));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// A failed body: the budget's refusal keeps its status, anything else is a broken request.
fn body_error(error: axum::Error) -> HttpError {
    let inner = error.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(error) = source {
        if let Some(status) = error.downcast_ref::<tonic::Status>() {
            return HttpError::new(ErrorKind::of_status(status), status.message());
        }
        source = error.source();
    }
    HttpError::new(
        ErrorKind::BadRequest,
        format!("the request body could not be read: {inner}"),
    )
}

/// Decompresses `decoder`'s stream (`name`: its Content-Encoding) up to `limit` bytes.
fn inflate(
    decoder: impl Read,
    name: &str,
    limit: usize,
    reservation: Option<&Arc<Reservation>>,
) -> Result<Bytes, HttpError> {
    let mut decoded = Vec::new();
    let read = decoder
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut decoded)
        .map_err(|error| {
            HttpError::new(
                ErrorKind::BadRequest,
                format!("body is not valid {name}: {error}"),
            )
        })?;
    if read > limit {
        return Err(too_large(limit));
    }
    if let Some(reservation) = reservation {
        reservation
            .take(read)
            .map_err(|spent| HttpError::new(ErrorKind::Unavailable, spent.to_string()))?;
    }
    Ok(Bytes::from(decoded))
}
