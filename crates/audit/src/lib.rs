//! The tamper-evident audit log, as pure functions and types: no I/O.
//!
//! Each tenant has one append-only log of its events' content hashes, hashed into an
//! RFC 9162 Merkle tree. The writer sequences and seals events ([`content`]) and keeps the
//! tree's right edge ([`tree`]); checkpoints are C2SP signed notes ([`note`],
//! [`checkpoint`]); the tree is served as C2SP tiles ([`tiles`]) from which anyone computes
//! inclusion and consistency proofs ([`proof`]). docs/audit.md has the whole contract.

pub mod bundle;
pub mod checkpoint;
mod config;
pub mod content;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tiles;
pub mod tree;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, TlogProof};
pub use config::{KeyError, LogConfig};
pub use hash::{Hash, leaf_hash};
pub use note::{NoteError, SignerKey, VerifierKey};
pub use proof::ProofError;
pub use tiles::{TileId, TileResource};
pub use tree::TreeEdge;

/// The log's origin line for `tenant`: `<log name>/<tenant>`.
pub fn origin(log_name: &str, tenant: &str) -> String {
    format!("{log_name}/{tenant}")
}

/// A decimal in the canonical form the C2SP formats use: digits only, no leading zeros
/// (except `0` itself), so one number has one spelling.
pub fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}
