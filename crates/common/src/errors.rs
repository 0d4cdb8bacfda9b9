//! The one error table: every error of every service is classified as an [`ErrorKind`], and
//! the kind alone decides the gRPC code, the HTTP status and whether (and when) to retry.
//!
//! Like Quickwit's `ServiceErrorCode`: crates keep their own typed errors, and each says only
//! which kind it is and what the caller may read. So gRPC and HTTP can never disagree, a client
//! error is never labelled retryable, and internals stay in the logs: an `Internal` or storage
//! failure reaches the caller as a sentence and a request id to quote.
//!
//! | kind | gRPC | HTTP | retry |
//! |---|---|---|---|
//! | `BadRequest` | INVALID_ARGUMENT | 400 | no: fix the request |
//! | `Unauthenticated` | UNAUTHENTICATED | 401 | no |
//! | `Forbidden` | PERMISSION_DENIED | 403 | no |
//! | `NotFound` | NOT_FOUND | 404 | no |
//! | `Conflict` | FAILED_PRECONDITION | 409 | no: be more specific (e.g. an ambiguous id prefix) |
//! | `TooLarge` | RESOURCE_EXHAUSTED | 413 | no: send less |
//! | `TooManyRequests` | RESOURCE_EXHAUSTED | 429 | after `Retry-After` |
//! | `Unavailable` | UNAVAILABLE | 503 | after `Retry-After` |
//! | `Timeout` | DEADLINE_EXCEEDED | 504 | yes, perhaps narrower |
//! | `RequestTimeout` | DEADLINE_EXCEEDED | 408 | yes: the client was too slow |
//! | `UnsupportedMediaType` | INVALID_ARGUMENT | 415 | no: change the content type |
//! | `Unimplemented` | UNIMPLEMENTED | 501 | no |
//! | `Internal` | INTERNAL | 500 | no (quote the request id) |
//!
//! A status that crosses a service boundary (query service -> gateway) carries its kind in
//! the `chaukas-error-kind` metadata entry, so `TooLarge` and `TooManyRequests`, which share a
//! gRPC code, keep their HTTP statuses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

/// Metadata entry naming the kind of a status sent between services.
pub const KIND_METADATA: &str = "chaukas-error-kind";
/// Metadata entry (gRPC) and header (HTTP) with the seconds to wait before retrying.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

/// What kind of failure; see the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or invalid; the message says what to fix.
    BadRequest,
    /// No valid credential.
    Unauthenticated,
    /// A valid credential that may not do this.
    Forbidden,
    /// What was asked for does not exist.
    NotFound,
    /// What was asked for matches more than one thing (an ambiguous id prefix).
    Conflict,
    /// The request (or what it asks for) is larger than allowed; send less.
    TooLarge,
    /// This caller has too much in flight; retry after a moment.
    TooManyRequests,
    /// A dependency is down or the service sheds load; nothing was done, retry.
    Unavailable,
    /// The work did not finish in time.
    Timeout,
    /// The client did not send its request in time.
    RequestTimeout,
    /// A body in an encoding or content type this route does not take.
    UnsupportedMediaType,
    /// The operation does not exist here.
    Unimplemented,
    /// A fault of ours; the caller gets a request id, the log gets the details.
    Internal,
}

/// How long a client should wait before retrying a retryable failure.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

impl ErrorKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [Self; 13] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::TooLarge,
        Self::TooManyRequests,
        Self::Unavailable,
        Self::Timeout,
        Self::RequestTimeout,
        Self::UnsupportedMediaType,
        Self::Unimplemented,
        Self::Internal,
    ];

    /// The gRPC status code.
    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::BadRequest | Self::UnsupportedMediaType => Code::InvalidArgument,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::Forbidden => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::Conflict => Code::FailedPrecondition,
            Self::TooLarge | Self::TooManyRequests => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout | Self::RequestTimeout => Code::DeadlineExceeded,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    /// The HTTP status.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// When to retry, if retrying can help at all.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Unavailable => Some(DEFAULT_RETRY_AFTER),
            Self::TooManyRequests => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The stable name sent in [`KIND_METADATA`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::TooManyRequests => "too_many_requests",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::RequestTimeout => "request_timeout",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unimplemented => "unimplemented",
            Self::Internal => "internal",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The kind of a status received from another service: its metadata if it has some,
    /// else read off the gRPC code.
    pub fn of_status(status: &tonic::Status) -> Self {
        if let Some(kind) = status
            .metadata()
            .get(KIND_METADATA)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::from_name)
        {
            return kind;
        }
        use tonic::Code;
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => Self::BadRequest,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::Forbidden,
            Code::NotFound => Self::NotFound,
            Code::ResourceExhausted => Self::TooManyRequests,
            Code::Unavailable | Code::Aborted => Self::Unavailable,
            Code::DeadlineExceeded | Code::Cancelled => Self::Timeout,
            Code::Unimplemented => Self::Unimplemented,
            _ => Self::Internal,
        }
    }

    /// A gRPC status of this kind with `message`, carrying the kind and any retry hint.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.grpc_code(), message);
        let metadata = status.metadata_mut();
        metadata.insert(
            KIND_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        if let Some(after) = self.retry_after() {
            metadata.insert(
                RETRY_AFTER_METADATA,
                tonic::metadata::MetadataValue::from(after.as_secs()),
            );
        }
        status
    }
}

/// An error that knows its place in the table and what a caller may be told.
pub trait ServiceError: std::error::Error {
    /// Its kind.
    fn kind(&self) -> ErrorKind;

    /// The text for the caller. For `Internal` (and storage failures) this is a generic
    /// sentence: the details go to the log with the request id ([`internal`]).
    fn public_message(&self) -> String {
        self.to_string()
    }

    /// As a gRPC status.
    fn to_status(&self) -> tonic::Status {
        self.kind().status(self.public_message())
    }
}

/// Logs `detail` (SQL, server messages, paths: whatever must not reach a client) with a fresh
/// request id and returns the sentence the caller gets instead, which quotes that id.
pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> String {
    let id = request_id();
    tracing::error!(request_id = %id, detail = %detail, "{what}");
    format!("{what}; quote request id {id} to the operator")
}

/// A short id that is unique enough to find one log line: time plus a counter.
pub fn request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{millis:x}-{sequence:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_survives_the_trip_between_services() {
        for kind in ErrorKind::ALL {
            let status = kind.status("x");
            assert_eq!(ErrorKind::of_status(&status), kind);
            assert_eq!(status.code(), kind.grpc_code());
        }
    }

    #[test]
    fn client_errors_are_never_retryable_or_503() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Unauthenticated,
            ErrorKind::Forbidden,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::TooLarge,
            ErrorKind::UnsupportedMediaType,
        ] {
            assert!(kind.http_status().is_client_error());
            assert_eq!(kind.retry_after(), None);
        }
    }

    #[test]
    fn plain_statuses_map_by_code() {
        assert_eq!(
            ErrorKind::of_status(&tonic::Status::invalid_argument("x")),
            ErrorKind::BadRequest
        );
        assert_eq!(
            ErrorKind::of_status(&tonic::Status::unknown("x")),
            ErrorKind::Internal
        );
    }
}
