//! API keys bound to tenants (and optionally projects), with scopes.
//!
//! `chaukas-sdk` sends `Authorization: Bearer <CHAUKAS_API_KEY>` on every request; a key says
//! which tenant (and project) its holder may write and read, and what it may do (`ingest`,
//! `query`, `stats`). Keys live in a NATS JetStream key-value bucket, already shared by every
//! gateway and query replica, and each replica watches it, so a revocation reaches all of them
//! within moments without a restart or a new server.
//!
//! A key is `chk_<id>_<secret>`: the prefix makes leaked keys greppable, the 12-hex-digit id
//! names the key in logs and metrics, and the 256-bit secret is stored only as its SHA-256
//! (fine for random secrets of that size; no slow hash needed), compared in constant time.

mod key;
mod store;

pub use key::{KeyRecord, NewKey, Principal, Scope, TOKEN_PREFIX, parse_token};
pub use store::{KeyStore, bucket_name, bucket_spec};

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header / metadata.
    #[error(
        "missing API key: send `Authorization: Bearer <key>` (create one with `chaukas keys create`)"
    )]
    Missing,
    /// Not a Chaukas key at all.
    #[error("malformed API key: expected `Bearer {TOKEN_PREFIX}<id>_<secret>`")]
    Malformed,
    /// Well formed, but no such key (or a wrong secret: the two are not told apart).
    #[error("unknown API key {key_id}")]
    Unknown {
        /// The public id the token named.
        key_id: String,
    },
    /// Revoked with `chaukas keys revoke`.
    #[error("API key {key_id} was revoked")]
    Revoked {
        /// The key.
        key_id: String,
    },
    /// Past its expiry.
    #[error("API key {key_id} has expired")]
    Expired {
        /// The key.
        key_id: String,
    },
    /// Valid, but not for this operation.
    #[error("API key {key_id} lacks the {scope} scope")]
    MissingScope {
        /// The key.
        key_id: String,
        /// What the call needed.
        scope: Scope,
    },
}

impl AuthError {
    /// True when the caller is known but not allowed (403 / PERMISSION_DENIED); false when
    /// the caller is not authenticated at all (401 / UNAUTHENTICATED).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::MissingScope { .. })
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown { .. } => "unknown",
            Self::Revoked { .. } => "revoked",
            Self::Expired { .. } => "expired",
            Self::MissingScope { .. } => "scope",
        }
    }

    /// The key id, when the token named one (for logs: never the secret).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Unknown { key_id }
            | Self::Revoked { key_id }
            | Self::Expired { key_id }
            | Self::MissingScope { key_id, .. } => Some(key_id),
            Self::Missing | Self::Malformed => None,
        }
    }
}

/// Why the key store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// NATS failed.
    #[error("API key store: {0}")]
    Nats(String),
    /// A stored record is not valid JSON of a key.
    #[error("API key store: record {key} is corrupt: {reason}")]
    Corrupt {
        /// The bucket key.
        key: String,
        /// Why.
        reason: String,
    },
    /// No key with that id.
    #[error("no API key with id {0}")]
    NotFound(String),
    /// Bad arguments to `create`.
    #[error("{0}")]
    Invalid(String),
}
