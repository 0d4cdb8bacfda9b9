//! The shared `[log]` section (`CHAUKAS_LOG__*`): the log's name and its keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::note::{NoteError, SignerKey, VerifierKey};

/// The `[log]` section, read by the writer (which signs) and the query service (which
/// serves the verifier key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Whether writers seal stored events into their tenants' logs (on by default). Off,
    /// events are stored unsealed — no content hash, leaf or checkpoint, and `chaukas verify`
    /// reports each as unsealed — and gateways say `audit_proofs: false`. For deployments
    /// that want no audit trail, and for measuring what the log costs (`make bench`).
    pub enabled: bool,
    /// The log's name: the signed-note key name and the first part of every origin line
    /// (`<name>/<tenant>`). Change it only with a new key: verifiers pin both.
    pub name: String,
    /// A file holding the signing keys (`chaukas log keygen`), one per line; every key
    /// signs each checkpoint, so a rotation lists the old and the new key for a while.
    pub signing_key_file: Option<PathBuf>,
    /// The signing keys themselves, one per line, instead of a file (for an environment
    /// variable filled from a secret). A secret: never logged.
    pub signing_keys: Option<String>,
    /// Verifier keys (`<name>+<id>+<key>`, one per line) for services that check and serve
    /// checkpoints without holding the signing key; derived from the signing keys if unset.
    pub verifier_keys: Option<String>,
    /// The least time between two rounds of checkpoints, in ms: a writer signs one for each
    /// tenant whose log grew as soon as rows are stored, at most once per this interval.
    pub checkpoint_interval_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "chaukas.localhost".into(),
            signing_key_file: None,
            signing_keys: None,
            verifier_keys: None,
            checkpoint_interval_ms: 200,
        }
    }
}

/// Why the configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read log.signing_key_file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key line is not a signer key.
    #[error("log signing key {line}: {source}")]
    Malformed {
        /// Its line number, from 1.
        line: usize,
        /// Why.
        #[source]
        source: NoteError,
    },
    /// A key is named differently from the log.
    #[error("log signing key {line} is named {found:?}, but log.name is {expected:?}")]
    WrongName {
        /// Its line number, from 1.
        line: usize,
        /// The key's name.
        found: String,
        /// `log.name`.
        expected: String,
    },
}

impl LogConfig {
    /// The configured signing keys; empty when none is configured (nothing is signed).
    pub fn signers(&self) -> Result<Vec<SignerKey>, KeyError> {
        let text = match (&self.signing_keys, &self.signing_key_file) {
            (Some(keys), _) => keys.clone(),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
                    path: path.clone(),
                    source,
                })?
            }
            (None, None) => return Ok(Vec::new()),
        };
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = SignerKey::parse(line).map_err(|source| KeyError::Malformed {
                line: number + 1,
                source,
            })?;
            if key.name() != self.name {
                return Err(KeyError::WrongName {
                    line: number + 1,
                    found: key.name().to_owned(),
                    expected: self.name.clone(),
                });
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// The configured verifier keys, or those of the signing keys.
    pub fn verifiers(&self) -> Result<Vec<VerifierKey>, KeyError> {
        let Some(text) = &self.verifier_keys else {
            return Ok(self.signers()?.iter().map(SignerKey::verifier).collect());
        };
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(
                VerifierKey::parse(line).map_err(|source| KeyError::Malformed {
                    line: number + 1,
                    source,
                })?,
            );
        }
        Ok(keys)
    }
}
