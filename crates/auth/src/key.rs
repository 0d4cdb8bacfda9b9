//! Key records, tokens and their verification.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuthError;

/// Every token starts with this, so a leaked key is easy to find (secret scanners, grep).
pub const TOKEN_PREFIX: &str = "chk_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// IngestEvent, IngestEventBatch, the HTTP ingestion routes.
    Ingest,
    /// QueryEvents, `/v1/query`.
    Query,
    /// GetEventStats, `/v1/stats`.
    Stats,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
            Self::Stats => "stats",
        })
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "ingest" => Ok(Self::Ingest),
            "query" => Ok(Self::Query),
            "stats" => Ok(Self::Stats),
            other => Err(format!(
                "unknown scope {other:?}; scopes are ingest, query, stats"
            )),
        }
    }
}

/// A key as stored: everything but the secret, which is kept as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, 12 hex digits.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// The tenant the key writes and reads.
    pub tenant: String,
    /// The project it is confined to, if any.
    pub project: Option<String>,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Created, ms since the epoch.
    pub created_at_ms: i64,
    /// Refused from this time on, if set.
    pub expires_at_ms: Option<i64>,
    /// Refused since this time, if revoked.
    pub revoked_at_ms: Option<i64>,
    /// SHA-256 of the whole token, hex.
    pub secret_sha256: String,
}

/// The caller a valid key identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (for logs).
    pub key_id: String,
    /// Tenant it may touch.
    pub tenant: String,
    /// Project it is confined to, if any.
    pub project: Option<String>,
}

/// A freshly created key: the record and the token, shown once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// What was stored.
    pub record: KeyRecord,
    /// The secret token; not stored anywhere.
    pub token: String,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Equal without revealing where two strings first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key id a token names, without checking anything else.
pub fn parse_token(token: &str) -> Result<&str, AuthError> {
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(AuthError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Malformed)?;
    let id_ok = id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !id_ok || secret.len() < 32 {
        return Err(AuthError::Malformed);
    }
    Ok(id)
}

impl KeyRecord {
    /// A new key for `tenant`, with a random id and secret.
    pub fn generate(
        name: String,
        tenant: String,
        project: Option<String>,
        scopes: Vec<Scope>,
        now_ms: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<NewKey, getrandom::Error> {
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        let id: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        Ok(NewKey {
            record: Self {
                id,
                name,
                tenant,
                project,
                scopes,
                created_at_ms: now_ms,
                expires_at_ms,
                revoked_at_ms: None,
                secret_sha256: sha256_hex(&token),
            },
            token,
        })
    }

    /// Checks `token` (already known to name this key) for `scope` at `now_ms`.
    pub fn verify(&self, token: &str, scope: Scope, now_ms: i64) -> Result<Principal, AuthError> {
        if !constant_time_eq(sha256_hex(token).as_bytes(), self.secret_sha256.as_bytes()) {
            return Err(AuthError::Unknown {
                key_id: self.id.clone(),
            });
        }
        if self.revoked_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Revoked {
                key_id: self.id.clone(),
            });
        }
        if self.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Expired {
                key_id: self.id.clone(),
            });
        }
        if !self.scopes.contains(&scope) {
            return Err(AuthError::MissingScope {
                key_id: self.id.clone(),
                scope,
            });
        }
        Ok(Principal {
            key_id: self.id.clone(),
            tenant: self.tenant.clone(),
            project: self.project.clone(),
        })
    }

    /// `active`, `revoked` or `expired` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if self.revoked_at_ms.is_some_and(|at| at <= now_ms) {
            "revoked"
        } else if self.expires_at_ms.is_some_and(|at| at <= now_ms) {
            "expired"
        } else {
            "active"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: Vec<Scope>) -> NewKey {
        KeyRecord::generate("t".into(), "acme".into(), None, scopes, 1_000, Some(5_000)).unwrap()
    }

    #[test]
    fn tokens_carry_a_prefix_and_a_public_id_and_verify_only_with_their_secret() {
        let new = key(vec![Scope::Ingest, Scope::Query, Scope::Ingest]);
        assert!(new.token.starts_with("chk_"));
        assert_eq!(parse_token(&new.token).unwrap(), new.record.id);
        assert_eq!(new.record.scopes, vec![Scope::Ingest, Scope::Query]);
        assert!(!new.record.secret_sha256.contains(&new.token[17..]));
        let principal = new.record.verify(&new.token, Scope::Ingest, 2_000).unwrap();
        assert_eq!(principal.tenant, "acme");
        let mut forged = new.token.clone();
        forged.pop();
        forged.push(if new.token.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(
            new.record.verify(&forged, Scope::Ingest, 2_000),
            Err(AuthError::Unknown { .. })
        ));
    }

    #[test]
    fn scope_expiry_and_revocation_are_enforced() {
        let mut new = key(vec![Scope::Ingest]);
        let denied = new
            .record
            .verify(&new.token, Scope::Stats, 2_000)
            .unwrap_err();
        assert!(denied.is_forbidden(), "{denied}");
        assert!(matches!(
            new.record.verify(&new.token, Scope::Ingest, 5_000),
            Err(AuthError::Expired { .. })
        ));
        new.record.revoked_at_ms = Some(1_500);
        assert!(matches!(
            new.record.verify(&new.token, Scope::Ingest, 2_000),
            Err(AuthError::Revoked { .. })
        ));
    }

    #[test]
    fn malformed_tokens_are_told_apart_from_unknown_ones() {
        for bad in [
            "",
            "Bearer x",
            "chk_",
            "chk_xyz_secret",
            "sk_0123456789ab_aaaa",
        ] {
            assert_eq!(parse_token(bad), Err(AuthError::Malformed), "{bad}");
        }
    }
}
