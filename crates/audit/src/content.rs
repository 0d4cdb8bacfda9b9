//! The content hash of an event and the three fields that place it in its tenant's log.
//!
//! `content_hash` is the lowercase hex SHA-256 of the event's deterministic protobuf
//! encoding — fields in number order, map entries sorted by key, no unknown fields, which is
//! what prost produces for our types (their maps are `BTreeMap`s) and what protobuf's
//! `SerializeToString(deterministic=True)` produces — with `hash_prev`, `content_hash` and
//! `worm_proof_id` empty. `worm_proof_id` is the leaf index in decimal, `hash_prev` the
//! previous leaf's content hash (empty for leaf 0).
//!
//! Rows store the canonical encoding (the bytes the hash covers) with the hash and leaf
//! index as columns; the three fields are derived from those and filled in when an event is
//! read. Keeping ~150 bytes of hex that no compression can shrink out of every row is most
//! of what the log saves on storage and insert work (docs/audit.md). Rows stored before
//! that carry the fields in their payload; readers accept both forms.

use chaukas_proto::common::v1::Event;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::hash::{Hash, hash_from_hex, to_hex};

/// The SHA-256 of the canonical encoding of `event` without its log fields.
///
/// Takes the event by `&mut` to avoid copying it: the three fields are cleared for the
/// encoding and put back afterwards.
pub fn content_hash(event: &mut Event) -> Hash {
    let saved = take_log_fields(event);
    let hash = Sha256::digest(event.encode_to_vec()).into();
    restore_log_fields(event, saved);
    hash
}

/// Where an event sits in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPlace {
    /// The leaf index.
    pub leaf_index: u64,
    /// The previous leaf's content hash; `None` for leaf 0.
    pub previous: Option<Hash>,
}

/// Computes `event`'s content hash, fills its three log fields for `place`, and returns
/// the hash and the event's encoding with the fields filled: the older stored form, which
/// the tests build logs of (readers fill fields with [`with_log_fields`]).
#[cfg(test)]
pub(crate) fn seal(event: &mut Event, place: LogPlace) -> (Hash, Vec<u8>) {
    take_log_fields(event);
    let hash: Hash = Sha256::digest(event.encode_to_vec()).into();
    fill_log_fields(event, place, &hash);
    (hash, event.encode_to_vec())
}

/// Fills `event`'s three log fields: `content_hash` from `hash`, `worm_proof_id` and
/// `hash_prev` from `place`. Stored rows keep only the canonical encoding and the hash and
/// leaf index as columns; readers put the fields back with this.
pub fn fill_log_fields(event: &mut Event, place: LogPlace, hash: &Hash) {
    event.content_hash = to_hex(hash);
    event.hash_prev = place.previous.map(|h| to_hex(&h)).unwrap_or_default();
    event.worm_proof_id = place.leaf_index.to_string();
}

/// Decodes a stored payload and fills its log fields from the row's `leaf_index` and
/// `content_hash` columns and the previous leaf's recorded entry (looked up in
/// `previous_entries` by index): the event as QueryEvents and export bundles present it.
/// Payloads of the older form already carry the fields and are returned as stored; rows in
/// no log (an empty hash column) are returned without fields.
pub fn with_log_fields(
    payload: &[u8],
    leaf_index: u64,
    content_hash: &[u8],
    previous_entries: &std::collections::BTreeMap<u64, Hash>,
) -> Result<Event, prost::DecodeError> {
    let mut event = Event::decode(payload)?;
    if let Ok(hash) = Hash::try_from(content_hash)
        && !carries_log_fields(&event)
    {
        let previous = leaf_index
            .checked_sub(1)
            .and_then(|index| previous_entries.get(&index).copied());
        fill_log_fields(
            &mut event,
            LogPlace {
                leaf_index,
                previous,
            },
            &hash,
        );
    }
    Ok(event)
}

/// Whether a stored payload is in the older sealed form, with the three log fields written
/// into it (rows stored before the payload became the canonical encoding alone).
pub fn carries_log_fields(event: &Event) -> bool {
    !(event.hash_prev.is_empty() && event.content_hash.is_empty() && event.worm_proof_id.is_empty())
}

/// The canonical encoding of `event` without its log fields: the bytes its content hash
/// covers, and what the writer stores as the row's payload.
pub fn canonical_encoding(event: &Event) -> Vec<u8> {
    if !carries_log_fields(event) {
        return event.encode_to_vec();
    }
    let mut cleared = event.clone();
    take_log_fields(&mut cleared);
    cleared.encode_to_vec()
}

/// The content hash of bytes already in canonical form (from [`canonical_encoding`]).
pub fn hash_canonical(canonical: &[u8]) -> Hash {
    Sha256::digest(canonical).into()
}

/// What a stored event says about itself, checked against its own content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealCheck {
    /// The content hash recomputed from the event.
    pub recomputed: Hash,
    /// The `content_hash` field, if it is a hash.
    pub claimed: Option<Hash>,
    /// The `worm_proof_id` field, if it is a decimal index.
    pub leaf_index: Option<u64>,
    /// The `hash_prev` field of a payload that carries the log fields: `Some(None)` when
    /// empty, `Some(Some(h))` when a hash; `None` for a canonical payload, which claims nothing.
    pub previous: Option<Option<Hash>>,
    /// Whether the payload carries the log fields (the older stored form).
    pub carries_log_fields: bool,
}

/// Decodes a stored payload and recomputes its content hash.
pub fn check_sealed(payload: &[u8]) -> Result<SealCheck, prost::DecodeError> {
    let mut event = Event::decode(payload)?;
    let carries_log_fields = carries_log_fields(&event);
    let (prev, claimed, leaf) = take_log_fields(&mut event);
    let recomputed = Sha256::digest(event.encode_to_vec()).into();
    Ok(SealCheck {
        recomputed,
        claimed: hash_from_hex(&claimed),
        leaf_index: leaf.parse().ok().filter(|_| !leaf.starts_with('+')),
        previous: match prev.as_str() {
            _ if !carries_log_fields => None,
            "" => Some(None),
            hex => hash_from_hex(hex).map(Some),
        },
        carries_log_fields,
    })
}

fn take_log_fields(event: &mut Event) -> (String, String, String) {
    (
        std::mem::take(&mut event.hash_prev),
        std::mem::take(&mut event.content_hash),
        std::mem::take(&mut event.worm_proof_id),
    )
}

fn restore_log_fields(event: &mut Event, (prev, hash, leaf): (String, String, String)) {
    event.hash_prev = prev;
    event.content_hash = hash;
    event.worm_proof_id = leaf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_fills_the_fields_and_the_payload_checks_out() {
        let mut event = Event {
            event_id: "e1".into(),
            tenant_id: "t".into(),
            agent_name: "a".into(),
            ..Event::default()
        };
        let before = content_hash(&mut event);
        let previous = crate::hash::leaf_hash(b"p");
        let (hash, payload) = seal(
            &mut event,
            LogPlace {
                leaf_index: 7,
                previous: Some(previous),
            },
        );
        assert_eq!(hash, before);
        assert_eq!(event.worm_proof_id, "7");
        assert_eq!(event.hash_prev, to_hex(&previous));
        let check = check_sealed(&payload).unwrap();
        assert_eq!(check.recomputed, hash);
        assert_eq!(check.claimed, Some(hash));
        assert_eq!(check.leaf_index, Some(7));
        assert_eq!(check.previous, Some(Some(previous)));
        // Any change to the content changes the hash; the log fields do not count.
        assert_eq!(content_hash(&mut event), hash);
        event.agent_name = "b".into();
        assert_ne!(content_hash(&mut event), hash);
    }

    #[test]
    fn a_canonical_payload_hashes_to_the_content_hash_and_claims_no_place() {
        let mut event = Event {
            event_id: "e1".into(),
            tenant_id: "t".into(),
            tags: vec!["x".into(), "y".into()],
            pii_categories: vec!["email".into()],
            ..Event::default()
        };
        let (hash, sealed) = seal(
            &mut event,
            LogPlace {
                leaf_index: 3,
                previous: None,
            },
        );
        let canonical = canonical_encoding(&Event::decode(sealed.as_slice()).unwrap());
        assert_eq!(hash_canonical(&canonical), hash);
        let check = check_sealed(&canonical).unwrap();
        assert_eq!(check.recomputed, hash);
        assert!(!check.carries_log_fields);
        assert_eq!(
            (check.claimed, check.leaf_index, check.previous),
            (None, None, None)
        );
        // Filling the fields back gives exactly the sealed form.
        let mut filled = Event::decode(canonical.as_slice()).unwrap();
        fill_log_fields(
            &mut filled,
            LogPlace {
                leaf_index: 3,
                previous: None,
            },
            &hash,
        );
        assert_eq!(filled.encode_to_vec(), sealed);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// What sealing one ~900-byte event costs the writer (its hash):
    /// `cargo test --release -p chaukas-audit seal_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a timing, not a check: run by hand"]
    fn seal_cost() {
        let event = Event {
            event_id: "e1".into(),
            tenant_id: "t".into(),
            agent_name: "x".repeat(900),
            ..Event::default()
        };
        let canonical = canonical_encoding(&event);
        let started = std::time::Instant::now();
        let n = 200_000u64;
        for _ in 0..n {
            std::hint::black_box(hash_canonical(std::hint::black_box(&canonical)));
        }
        println!(
            "{:?} per seal",
            started.elapsed() / u32::try_from(n).unwrap()
        );
    }
}
