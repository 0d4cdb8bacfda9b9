//! Offline bundles (`chaukas export`, `chaukas verify --bundle`): a tenant's events with an
//! inclusion proof each, against one signed checkpoint, checkable with nothing but the
//! log's verifier key.
//!
//! JSON Lines. The first line is the header
//! `{"bundle":"chaukas.dev/audit-bundle@v1","origin":...,"checkpoint":<signed note>}`; every
//! other line is one event: `{"event_id":...,"leaf_index":...,"payload":<base64 of its stored
//! encoding>,"proof":<c2sp.org/tlog-proof@v1 text>}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, TlogProof};
use crate::content::check_sealed;
use crate::hash::leaf_hash;
use crate::note::VerifierKey;

/// The header's format name.
pub const BUNDLE_FORMAT: &str = "chaukas.dev/audit-bundle@v1";

/// The first line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// Always [`BUNDLE_FORMAT`].
    pub bundle: String,
    /// The log, `<log name>/<tenant>`.
    pub origin: String,
    /// The signed checkpoint every proof is against.
    pub checkpoint: String,
}

/// One event of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEvent {
    /// The event id, for reports.
    pub event_id: String,
    /// Its leaf.
    pub leaf_index: u64,
    /// Its stored encoding, base64.
    pub payload: String,
    /// Its inclusion proof, a c2sp.org/tlog-proof@v1.
    pub proof: String,
}

impl BundleEvent {
    /// An event line from the stored encoding and its proof.
    pub fn new(event_id: String, leaf_index: u64, payload: &[u8], proof: &TlogProof) -> Self {
        Self {
            event_id,
            leaf_index,
            payload: BASE64.encode(payload),
            proof: proof.to_text(),
        }
    }
}

/// What an offline check of a bundle found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    /// The checkpoint the bundle proves against.
    pub checkpoint: Checkpoint,
    /// Events whose content and inclusion verified.
    pub verified: usize,
    /// One line per event (or line) that did not.
    pub failures: Vec<String>,
}

/// Why a bundle could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The first line is not a bundle header.
    #[error("not a {BUNDLE_FORMAT} bundle: {0}")]
    Header(String),
    /// The checkpoint does not verify under the trusted keys.
    #[error("the bundle's checkpoint does not verify: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The origin is not of a log the trusted keys sign.
    #[error("the bundle is for log {0:?}, not one of the trusted keys' logs")]
    Origin(String),
}

/// Checks a bundle with nothing but `trusted` keys: the checkpoint's signature, then for
/// each event its content hash (recomputed from the payload) and its inclusion proof.
pub fn verify_bundle(text: &str, trusted: &[VerifierKey]) -> Result<BundleReport, BundleError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: BundleHeader = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|error| BundleError::Header(error.to_string()))?;
    if header.bundle != BUNDLE_FORMAT {
        return Err(BundleError::Header(format!("format {:?}", header.bundle)));
    }
    let known = trusted
        .iter()
        .any(|key| header.origin.starts_with(&format!("{}/", key.name())));
    if !known {
        return Err(BundleError::Origin(header.origin));
    }
    let checkpoint = Checkpoint::open(&header.checkpoint, trusted, &header.origin)?;
    let mut report = BundleReport {
        checkpoint,
        verified: 0,
        failures: Vec::new(),
    };
    for (number, line) in lines.enumerate() {
        match check_line(line, &header, trusted) {
            Ok(()) => report.verified += 1,
            Err(why) => report.failures.push(format!("line {}: {why}", number + 2)),
        }
    }
    Ok(report)
}

fn check_line(line: &str, header: &BundleHeader, trusted: &[VerifierKey]) -> Result<(), String> {
    let event: BundleEvent =
        serde_json::from_str(line).map_err(|e| format!("not an event line: {e}"))?;
    let name = &event.event_id;
    let payload = BASE64
        .decode(&event.payload)
        .map_err(|_| format!("event {name}: payload is not base64"))?;
    let sealed =
        check_sealed(&payload).map_err(|_| format!("event {name}: payload does not decode"))?;
    if sealed.claimed != Some(sealed.recomputed) {
        return Err(format!("event {name}: content changed since it was logged"));
    }
    if sealed.leaf_index != Some(event.leaf_index) {
        return Err(format!(
            "event {name}: its worm_proof_id is not leaf {}",
            event.leaf_index
        ));
    }
    let proof = TlogProof::parse(&event.proof).map_err(|e| format!("event {name}: {e}"))?;
    if proof.index != event.leaf_index || proof.checkpoint != header.checkpoint {
        return Err(format!(
            "event {name}: the proof is for another leaf or checkpoint"
        ));
    }
    proof
        .verify(&leaf_hash(&sealed.recomputed), trusted, &header.origin)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "event {name} (leaf {}): not in the checkpoint: {e}",
                event.leaf_index
            )
        })
}
