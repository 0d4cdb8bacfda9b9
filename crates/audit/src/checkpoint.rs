//! C2SP tlog-checkpoint bodies and c2sp.org/tlog-proof@v1 inclusion proofs.
//!
//! A checkpoint's text is `<origin>\n<size>\n<base64 root>\n`; signed, it is a signed note
//! ([`crate::note`]). A tlog-proof is `c2sp.org/tlog-proof@v1`, `index <n>`, the inclusion
//! proof one base64 hash per line, a blank line and the signed checkpoint verbatim.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::hash::Hash;
use crate::note::{NoteError, VerifierKey, open_note};
use crate::parse_decimal;
use crate::proof::{ProofError, verify_inclusion};

/// The first line of a tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A tree head: which log, how many leaves, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, `<log name>/<tenant>` here.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// The Merkle Tree Hash of those leaves.
    pub root: Hash,
}

/// Why a checkpoint or a tlog-proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not in the text format.
    #[error("malformed {0}: {1}")]
    Malformed(&'static str, &'static str),
    /// The signature did not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The checkpoint is for another log.
    #[error("the checkpoint is for log {found:?}, not {expected:?}")]
    WrongOrigin { expected: String, found: String },
    /// The inclusion proof does not hold.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

fn base64_hash(text: &str) -> Option<Hash> {
    BASE64.decode(text).ok()?.try_into().ok()
}

impl Checkpoint {
    /// The note text.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Parses note text; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |why| CheckpointError::Malformed("checkpoint", why);
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(malformed("no origin"))?;
        let size = lines
            .next()
            .and_then(parse_decimal)
            .ok_or(malformed("bad tree size"))?;
        let root = lines
            .next()
            .and_then(base64_hash)
            .ok_or(malformed("bad root hash"))?;
        if !text.ends_with('\n') {
            return Err(malformed("no final newline"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint: a trusted signature, then the expected origin.
    pub fn open(
        note: &str,
        trusted: &[VerifierKey],
        origin: &str,
    ) -> Result<Self, CheckpointError> {
        let opened = open_note(note, trusted)?;
        let checkpoint = Self::parse(&opened.text)?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::WrongOrigin {
                expected: origin.to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

/// An offline-verifiable proof that one entry is in a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// The entry's leaf index.
    pub index: u64,
    /// Inclusion proof hashes, from the leaf's sibling up.
    pub path: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut text = format!("{TLOG_PROOF_HEADER}\nindex {}\n", self.index);
        for hash in &self.path {
            text.push_str(&BASE64.encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Parses the text form (an `extra` line is accepted and ignored: it is unauthenticated).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |why| CheckpointError::Malformed("tlog-proof", why);
        let (head, checkpoint) = text.split_once("\n\n").ok_or(malformed("no blank line"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or(malformed("no index line"))?;
        if line.starts_with("extra ") {
            line = lines.next().ok_or(malformed("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(malformed("bad index line"))?;
        let path = lines
            .map(|line| base64_hash(line).ok_or(malformed("a proof line is not a base64 hash")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            index,
            path,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies that the entry with leaf hash `leaf` is in the proof's checkpoint, signed by
    /// a trusted key for `origin`; returns the checkpoint.
    pub fn verify(
        &self,
        leaf: &Hash,
        trusted: &[VerifierKey],
        origin: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, trusted, origin)?;
        verify_inclusion(
            self.index,
            checkpoint.size,
            leaf,
            &self.path,
            &checkpoint.root,
        )?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::{SignerKey, sign_note};
    use crate::tree::TreeEdge;

    #[test]
    fn checkpoints_round_trip_and_refuse_noncanonical_text() {
        let checkpoint = Checkpoint {
            origin: "chaukas.localhost/acme".into(),
            size: 12,
            root: leaf_hash(b"r"),
        };
        assert_eq!(
            Checkpoint::parse(&checkpoint.to_text()),
            Ok(checkpoint.clone())
        );
        let text = checkpoint.to_text();
        assert!(Checkpoint::parse(&text.replacen("\n12\n", "\n012\n", 1)).is_err());
        assert!(Checkpoint::parse(text.trim_end()).is_err());
        assert!(Checkpoint::parse(&format!("\n{text}")).is_err());
    }

    #[test]
    fn a_tlog_proof_verifies_offline_and_only_for_its_leaf_and_log() {
        let key = SignerKey::generate("chaukas.localhost").unwrap();
        let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        let mut edge = TreeEdge::empty();
        for leaf in &leaves {
            edge.append(*leaf);
        }
        let checkpoint = Checkpoint {
            origin: "chaukas.localhost/acme".into(),
            size: 5,
            root: edge.root(),
        };
        let signed = sign_note(&checkpoint.to_text(), std::slice::from_ref(&key)).unwrap();
        // Leaf 4 of 5: its only sibling is the root of the first four.
        let mut source = TestLeaves(leaves.clone());
        let path = crate::proof::inclusion_proof(&mut source, 4, 5).unwrap();
        let proof = TlogProof {
            index: 4,
            path,
            checkpoint: signed,
        };
        let parsed = TlogProof::parse(&proof.to_text()).unwrap();
        assert_eq!(parsed, proof);
        let trusted = [key.verifier()];
        assert_eq!(
            parsed.verify(&leaves[4], &trusted, "chaukas.localhost/acme"),
            Ok(checkpoint)
        );
        assert!(
            parsed
                .verify(&leaves[3], &trusted, "chaukas.localhost/acme")
                .is_err()
        );
        assert!(
            parsed
                .verify(&leaves[4], &trusted, "chaukas.localhost/other")
                .is_err()
        );
        let other = SignerKey::generate("chaukas.localhost").unwrap();
        assert!(
            parsed
                .verify(&leaves[4], &[other.verifier()], "chaukas.localhost/acme")
                .is_err()
        );
    }

    struct TestLeaves(Vec<Hash>);

    impl crate::proof::NodeSource for TestLeaves {
        fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError> {
            let start = usize::try_from(index << height).unwrap();
            Ok(crate::tiles::perfect_root(
                &self.0[start..start + (1 << height)],
            ))
        }
    }
}
