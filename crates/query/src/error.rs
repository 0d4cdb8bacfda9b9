//! Why one query was not answered, and its place in the error table
//! (`chaukas_common::errors`): client errors say what to fix; storage failures reach the
//! caller as a sentence and a request id, never SQL or the server's message.

use chaukas_common::errors::{self, ErrorKind};
use chaukas_store::StoreError;

/// Why one query was not answered; each has its place in the error table.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The tenant already runs its share of reads.
    #[error("{0}")]
    Busy(String),
    /// What was asked for does not exist (yet); the message says what.
    #[error("{0}")]
    NotFound(String),
    /// The request matches more than one thing (an ambiguous session id prefix).
    #[error("{0}")]
    Ambiguous(String),
    /// ClickHouse failed, refused or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored payload does not decode (the audit trail needs attention).
    #[error("a stored event does not decode: {0}")]
    Corrupt(String),
}

/// ClickHouse error codes a read can meet because of its own size, not a fault.
const TIMEOUT_EXCEEDED: u32 = 159;
const TOO_MANY_ROWS_OR_BYTES: [u32; 2] = [158, 307];
const MEMORY_LIMIT_EXCEEDED: u32 = 241;

impl QueryError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub(crate) fn store(sql: &str, source: clickhouse::error::Error) -> Self {
        Self::Store(StoreError::Query {
            statement: sql.chars().take(120).collect(),
            source,
        })
    }

    /// The ClickHouse exception code of a store error, if the server sent one.
    fn clickhouse_code(&self) -> Option<u32> {
        let Self::Store(StoreError::Query {
            source: clickhouse::error::Error::BadResponse(text),
            ..
        }) = self
        else {
            return None;
        };
        let rest = text.split("Code: ").nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Query {
                source: clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut,
                ..
            })
        )
    }
}

impl errors::ServiceError for QueryError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::BadRequest,
            Self::Busy(_) => ErrorKind::TooManyRequests,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Ambiguous(_) => ErrorKind::Conflict,
            Self::Corrupt(_) => ErrorKind::Internal,
            Self::Store(_) => match self.clickhouse_code() {
                Some(TIMEOUT_EXCEEDED) => ErrorKind::Timeout,
                Some(code) if TOO_MANY_ROWS_OR_BYTES.contains(&code) => ErrorKind::TooLarge,
                Some(MEMORY_LIMIT_EXCEEDED) => ErrorKind::TooLarge,
                Some(_) => ErrorKind::Internal,
                None if self.is_connection_failure() => ErrorKind::Unavailable,
                None => ErrorKind::Internal,
            },
        }
    }

    /// Store and decoding failures are told as a sentence and a request id; the SQL and the
    /// server's message go to the log only.
    fn public_message(&self) -> String {
        match (self, self.kind()) {
            (
                Self::Invalid(message)
                | Self::Busy(message)
                | Self::NotFound(message)
                | Self::Ambiguous(message),
                _,
            ) => message.clone(),
            (_, ErrorKind::Timeout) => errors::internal(
                "the query ran past its time limit; narrow it (time range, session, type)",
                self,
            ),
            (_, ErrorKind::TooLarge) => errors::internal(
                "the query needs more memory or rows than a read may use; narrow it",
                self,
            ),
            (_, ErrorKind::Unavailable) => {
                errors::internal("storage is unavailable; retry shortly", self)
            }
            _ => errors::internal("the query failed on the server", self),
        }
    }
}
