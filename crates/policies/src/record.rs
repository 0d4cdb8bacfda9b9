//! What the bucket holds: one record per tenant policy, one per project policy, and one
//! secret per tenant for the `hash` method.

use chaukas_privacy::{Keyed, Policy, Salt};
use serde::{Deserialize, Serialize};

/// A stored policy and who set it when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Whose.
    pub tenant: String,
    /// For one project of the tenant; absent: the tenant's own (applies to every project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The policy.
    pub policy: Policy,
    /// When it was set (Unix milliseconds).
    pub set_at_ms: i64,
    /// Who set it (`chaukas policy set --by`).
    pub set_by: String,
}

/// A tenant's HMAC secret: made once, when a policy of the tenant first hashes, and never
/// changed (a new secret would make hashes of equal values differ).
#[derive(Clone, Serialize, Deserialize)]
pub struct SaltRecord {
    /// Whose.
    pub tenant: String,
    /// Public name, written into every hashed event's `redaction.salt_id`.
    pub id: String,
    /// 32 random bytes, hex.
    pub secret: String,
}

impl std::fmt::Debug for SaltRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaltRecord")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SaltRecord {
    /// A fresh secret for `tenant`.
    pub fn generate(tenant: &str) -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id)?;
        Ok(Self {
            tenant: tenant.to_owned(),
            id: format!("hmac-{}", hex(&id)),
            secret: hex(&secret),
        })
    }

    /// The secret, ready to hash.
    pub fn salt(&self) -> Option<Salt> {
        let bytes = unhex(&self.secret)?;
        Some(Salt {
            id: self.id.clone(),
            key: Keyed::new(&bytes),
        })
    }
}

/// Lowercase hex of `bytes` (also how tenant and project names become bucket keys: a key
/// may hold only a few characters, a name may hold any).
pub fn hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

/// Bytes of lowercase or uppercase hex; `None` if it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_a_salt_hashes() {
        assert_eq!(unhex(&hex(b"acme/\xff")).unwrap(), b"acme/\xff");
        assert!(unhex("zz").is_none());
        let salt = SaltRecord::generate("acme").unwrap();
        assert!(salt.id.starts_with("hmac-"));
        assert_eq!(salt.secret.len(), 64);
        assert!(
            !format!("{salt:?}").contains(&salt.secret),
            "Debug never shows the secret"
        );
        assert_eq!(salt.salt().unwrap().id, salt.id);
    }
}
