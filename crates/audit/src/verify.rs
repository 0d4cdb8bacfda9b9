//! Checking a tenant's stored events against its log and a signed checkpoint, trusting
//! nothing the store says about itself: every content hash is recomputed from the event,
//! the tree is rebuilt from the recomputed hashes, and each disagreement names the event.

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::content::check_sealed;
use crate::hash::{Hash, leaf_hash, to_hex};
use crate::tree::TreeEdge;

/// One stored event as read back: what the row says and the payload itself.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The event id column.
    pub event_id: String,
    /// The `leaf_index` column.
    pub leaf_index: u64,
    /// The `sealed` column: whether the row was given a leaf.
    pub sealed: bool,
    /// The `content_hash` column: 32 bytes for rows sealed before migration 0010, which
    /// stored their hash beside the log's record of it; empty for later rows, whose leaf's
    /// record in the log is their only one.
    pub content_hash: Vec<u8>,
    /// The stored encoding.
    pub payload: Vec<u8>,
}

/// A finding about one event, once its id and leaf are known.
type EventFinding = fn(String, u64) -> Finding;

fn content_changed(event_id: String, leaf: u64) -> Finding {
    Finding::ContentChanged { event_id, leaf }
}

fn fields_disagree(event_id: String, leaf: u64) -> Finding {
    Finding::FieldsDisagree { event_id, leaf }
}

/// What the log fields an older payload carries say against its row: changed if they
/// claim another hash than its content's, moved if another leaf.
fn judge_claims(check: &crate::content::SealCheck, leaf: u64) -> Option<EventFinding> {
    if !check.carries_log_fields {
        None
    } else if check.claimed != Some(check.recomputed) {
        Some(content_changed)
    } else if check.leaf_index != Some(leaf) {
        Some(fields_disagree)
    } else {
        None
    }
}

/// A row that stored its own hash (sealed before migration 0010): changed if its content no
/// longer hashes to it, moved if the log's record of its leaf is another hash. Returns the
/// hash the chain follows.
fn judge_by_stored_hash(
    check: &crate::content::SealCheck,
    leaf: u64,
    stored: &[u8],
    entry: Option<Hash>,
) -> (Hash, Option<EventFinding>) {
    let recorded = Hash::try_from(stored).unwrap_or(check.recomputed);
    if stored != check.recomputed {
        return (recorded, Some(content_changed));
    }
    let claims = judge_claims(check, leaf);
    if claims.is_some() {
        return (recorded, claims);
    }
    let moved = entry.is_some_and(|entry| entry != recorded);
    (recorded, moved.then_some(fields_disagree as EventFinding))
}

/// A row sealed since migration 0010, whose only recorded hash is the log's entry for its
/// leaf: moved if its content is another leaf's entry, changed if no leaf's. With no entry
/// to compare (its leaf's row lost) only the signed root can judge it.
fn judge_by_entry(
    check: &crate::content::SealCheck,
    leaf: u64,
    entry: Option<Hash>,
    recorded_at: &mut EntryIndex<'_>,
) -> (Hash, Option<EventFinding>) {
    let recorded = entry.unwrap_or(check.recomputed);
    let claims = judge_claims(check, leaf);
    if claims.is_some() || recorded == check.recomputed {
        return (recorded, claims);
    }
    match recorded_at.leaf_of(&check.recomputed) {
        Some(other) if other != leaf => (recorded, Some(fields_disagree)),
        _ => (recorded, Some(content_changed)),
    }
}

/// Which leaf the log records a hash at, indexed on first use: only a row that disagrees
/// with its own leaf's entry asks, so an intact log never builds it.
struct EntryIndex<'a> {
    entries: &'a BTreeMap<u64, Hash>,
    by_hash: Option<std::collections::HashMap<Hash, u64>>,
}

impl EntryIndex<'_> {
    fn leaf_of(&mut self, hash: &Hash) -> Option<u64> {
        let entries = self.entries;
        let by_hash = self.by_hash.get_or_insert_with(|| {
            let mut index = std::collections::HashMap::with_capacity(entries.len());
            for (&leaf, entry) in entries {
                index.entry(*entry).or_insert(leaf);
            }
            index
        });
        by_hash.get(hash).copied()
    }
}

/// One thing that does not hold, with the event and leaf it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The payload does not decode.
    Unreadable { event_id: String },
    /// The event is in no log: stored before the log existed, or inserted by hand.
    Unsealed { event_id: String },
    /// The event's content no longer hashes to what was recorded: it was changed.
    ContentChanged { event_id: String, leaf: u64 },
    /// The event's leaf disagrees with its own log fields (older payloads) or with the
    /// log's record of that leaf: moved to another place.
    FieldsDisagree { event_id: String, leaf: u64 },
    /// Two events claim one leaf.
    DuplicateLeaf { leaf: u64, event_ids: Vec<String> },
    /// No event holds this leaf of the checkpointed tree: deleted.
    MissingLeaf { leaf: u64 },
    /// The event's `hash_prev` (carried by older payloads only) is not the previous leaf's
    /// content hash: reordered or replaced around it.
    ChainBroken { event_id: String, leaf: u64 },
    /// The stored leaves do not hash to the signed root: a leaf was replaced together with
    /// its recorded hashes (which one, only an older checkpoint or proof can tell).
    RootMismatch { size: u64 },
    /// The signed checkpoint covers more leaves than are stored: the log was rolled back.
    Truncated { size: u64, stored: u64 },
    /// A prune is recorded, but its run left no retention event in the log: the record
    /// may have been written to excuse a deletion.
    UnloggedPrune { below: u64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable { event_id } => write!(f, "event {event_id}: payload does not decode"),
            Self::Unsealed { event_id } => write!(
                f,
                "event {event_id}: in no log (stored before the log existed, or inserted by hand)"
            ),
            Self::ContentChanged { event_id, leaf } => write!(
                f,
                "event {event_id} (leaf {leaf}): content changed since it was logged"
            ),
            Self::FieldsDisagree { event_id, leaf } => write!(
                f,
                "event {event_id} (leaf {leaf}): its log fields disagree with its row or with the log's record of that leaf"
            ),
            Self::DuplicateLeaf { leaf, event_ids } => write!(
                f,
                "leaf {leaf}: claimed by several events: {}",
                event_ids.join(", ")
            ),
            Self::MissingLeaf { leaf } => write!(f, "leaf {leaf}: no stored event (deleted)"),
            Self::ChainBroken { event_id, leaf } => write!(
                f,
                "event {event_id} (leaf {leaf}): hash_prev is not the previous leaf's content hash (reordered or replaced)"
            ),
            Self::RootMismatch { size } => write!(
                f,
                "the stored leaves do not hash to the signed root at size {size}"
            ),
            Self::Truncated { size, stored } => write!(
                f,
                "the checkpoint covers {size} leaves but only {stored} are stored (rolled back)"
            ),
            Self::UnloggedPrune { below } => write!(
                f,
                "a prune below leaf {below} is recorded but no retention run logged it \
                 (no event {})",
                retention_event_id(*below)
            ),
        }
    }
}

/// What the audit keeps of an event holding a leaf (or of a pruned leaf's entry).
struct Leaf {
    event_id: String,
    recomputed: Hash,
    recorded: Hash,
    hash_prev: Option<Option<Hash>>,
    /// Retention removed the event: only its recorded entry remains, no chain to check.
    pruned: bool,
}

/// The log's own record of a tenant's leaves (`log_leaves`, filled by ClickHouse in the
/// same insert as each event): every event is checked against the entry of the leaf it
/// holds, which names the events of a reordering; below `pruned_below` a leaf may have no
/// event, since retention removed it (`chaukas retention apply`, docs/privacy.md), and its
/// recorded entry goes into the tree instead, so the signed root covers it as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRecord {
    /// Leaves below this index may have lost their event.
    pub pruned_below: u64,
    /// The recorded entries, by index (the first one where a leaf is recorded twice).
    pub entries: BTreeMap<u64, Hash>,
}

/// What [`audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Events read.
    pub events: usize,
    /// Leaves covered by the checkpoint and checked against its root.
    pub checked: u64,
    /// Leaves stored after the checkpoint (not yet covered; checked for content only).
    pub newer: u64,
    /// Leaves whose event retention removed, checked by their recorded entry only.
    pub pruned: u64,
    /// Root of the checkpointed prefix as rebuilt.
    pub root: Hash,
    /// Everything that does not hold; empty when the log is intact.
    pub findings: Vec<Finding>,
}

/// Checks `events` (any order) against `checkpoint` alone.
pub fn audit(events: Vec<StoredEvent>, checkpoint: &Checkpoint) -> Audit {
    audit_with_record(events, checkpoint, &LogRecord::default())
}

/// The id of the event a retention run publishes for a prune below `below` (and the one
/// the audit looks for).
pub fn retention_event_id(below: u64) -> String {
    format!("chaukas-retention-{below}")
}

/// Checks `events` (any order) against `checkpoint` and the log's `record` of its leaves.
pub fn audit_with_record(
    events: Vec<StoredEvent>,
    checkpoint: &Checkpoint,
    record: &LogRecord,
) -> Audit {
    let count = events.len();
    let mut findings = Vec::new();
    if record.pruned_below > 0 {
        let logged = retention_event_id(record.pruned_below);
        if !events.iter().any(|event| event.event_id == logged) {
            findings.push(Finding::UnloggedPrune {
                below: record.pruned_below,
            });
        }
    }
    let mut leaves: BTreeMap<u64, Vec<Leaf>> = BTreeMap::new();
    // Where each recorded entry sits: a row whose content is another leaf's entry was moved.
    let mut recorded_at = EntryIndex {
        entries: &record.entries,
        by_hash: None,
    };
    for event in events {
        if !event.sealed {
            findings.push(Finding::Unsealed {
                event_id: event.event_id,
            });
            continue;
        }
        let Ok(check) = check_sealed(&event.payload) else {
            findings.push(Finding::Unreadable {
                event_id: event.event_id,
            });
            continue;
        };
        let leaf = event.leaf_index;
        let entry = record.entries.get(&leaf).copied();
        // The chain follows the recorded hash, so a changed event is blamed alone; the tree
        // is built from the recomputed one, so a recorded hash rewritten with it still fails
        // against the signed root.
        let (recorded, finding) = if event.content_hash.is_empty() {
            judge_by_entry(&check, leaf, entry, &mut recorded_at)
        } else {
            judge_by_stored_hash(&check, leaf, &event.content_hash, entry)
        };
        if let Some(finding) = finding {
            findings.push(finding(event.event_id.clone(), leaf));
        }
        leaves.entry(leaf).or_default().push(Leaf {
            event_id: event.event_id,
            recomputed: check.recomputed,
            recorded,
            hash_prev: check.previous,
            pruned: false,
        });
    }
    let mut pruned_count = 0;
    for (&leaf, &entry) in record.entries.range(..record.pruned_below) {
        if let std::collections::btree_map::Entry::Vacant(slot) = leaves.entry(leaf) {
            pruned_count += 1;
            slot.insert(vec![Leaf {
                event_id: String::new(),
                recomputed: entry,
                recorded: entry,
                hash_prev: None,
                pruned: true,
            }]);
        }
    }
    let mut edge = TreeEdge::empty();
    let mut previous: Option<Hash> = None;
    let mut root = edge.root();
    let mut expected = 0u64;
    for (leaf, holders) in &leaves {
        while expected < *leaf {
            findings.push(Finding::MissingLeaf { leaf: expected });
            expected += 1;
        }
        if holders.len() > 1 {
            findings.push(Finding::DuplicateLeaf {
                leaf: *leaf,
                event_ids: holders.iter().map(|h| h.event_id.clone()).collect(),
            });
        }
        let holder = &holders[0];
        // Only payloads of the older form carry a `hash_prev` to check.
        if !holder.pruned
            && let Some(claimed) = holder.hash_prev
            && claimed != previous
        {
            findings.push(Finding::ChainBroken {
                event_id: holder.event_id.clone(),
                leaf: *leaf,
            });
        }
        previous = Some(holder.recorded);
        if *leaf < checkpoint.size {
            edge.append(leaf_hash(&holder.recomputed));
            if edge.size() == checkpoint.size {
                root = edge.root();
            }
        }
        expected = leaf + 1;
    }
    let stored = leaves.keys().next_back().map_or(0, |last| last + 1);
    if stored < checkpoint.size {
        findings.push(Finding::Truncated {
            size: checkpoint.size,
            stored,
        });
    } else if edge.size() == checkpoint.size && root != checkpoint.root {
        findings.push(Finding::RootMismatch {
            size: checkpoint.size,
        });
    }
    Audit {
        events: count,
        checked: edge.size(),
        newer: stored.saturating_sub(checkpoint.size),
        pruned: pruned_count,
        root,
        findings,
    }
}

/// Short hex of a hash, for messages.
pub fn short(hash: &Hash) -> String {
    to_hex(&hash[..6])
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
