//! Which copy of each key a batch stores: decided after the claim lookup, never before.
//!
//! A key (tenant, event id) can arrive in several messages (resends), each with its own
//! stream sequence. The rule: the copy JetStream accepted first (lowest sequence) is stored,
//! once. `event_claims` resolves a key to the lowest sequence that ever claimed it.
//!
//! Deduplicating inside the batch *before* the lookup lost events: copies A (seq 100) and
//! B (seq 200) of K came back together after A's flush failed before its claim and B's insert
//! failed after its claim (K -> 200); the batch kept A, the lookup then called A a duplicate
//! of 200, both were acked, and K was never stored (issue #13, interleaving 1). So each key's
//! copies are judged together against its claim:
//! * no claim: the lowest copy is fresh (claim it, store it);
//! * a copy lower than the claim: it takes over (if the key is not stored yet, claim it
//!   with its lower sequence and store it: the claim resolves to it from then on);
//! * the claimant's own copy: reclaimed (store it unless it is stored already);
//! * every other copy: a duplicate.
//!
//! "Stored already" is checked by the caller for take-overs and reclaims, after any insert
//! still in flight has finished, so the check cannot miss a row being written.

use std::collections::HashMap;

/// One copy of a key in the batch: where it is and its stream sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCopy {
    /// Index of the held message.
    pub message: usize,
    /// Index of the row within the message.
    pub row: usize,
    /// The message's stream sequence.
    pub seq: u64,
}

/// What a batch does with its copies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// Unclaimed keys: claim and store these copies.
    pub fresh: Vec<KeyCopy>,
    /// Copies that must be claimed (lower than the claim found) and stored, unless the key
    /// is stored already.
    pub take_over: Vec<KeyCopy>,
    /// The claimants' own copies: store unless stored already.
    pub reclaim: Vec<KeyCopy>,
    /// Copies not stored: later copies of a key this batch or an earlier one stores.
    pub duplicates: usize,
}

/// A key's copies in the batch: the lowest and how many there are.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    lowest: KeyCopy,
    copies: usize,
}

/// Groups a batch's copies by key, in one pass and without an allocation per key (a batch is
/// tens of thousands of events).
pub fn group<K: std::hash::Hash + Eq>(
    copies: impl IntoIterator<Item = (K, KeyCopy)>,
) -> HashMap<K, Group> {
    let mut groups: HashMap<K, Group> = HashMap::new();
    for (key, copy) in copies {
        groups
            .entry(key)
            .and_modify(|group| {
                group.copies += 1;
                if copy.seq < group.lowest.seq {
                    group.lowest = copy;
                }
            })
            .or_insert(Group {
                lowest: copy,
                copies: 1,
            });
    }
    groups
}

/// Chooses per key, given the batch's groups and the claims found for their keys.
pub fn choose<K: std::hash::Hash + Eq>(
    groups: HashMap<K, Group>,
    claims: &HashMap<K, u64>,
) -> Choice {
    let mut choice = Choice::default();
    for (key, group) in groups {
        let lowest = group.lowest;
        // Every copy but the one chosen (if any) is a duplicate.
        choice.duplicates += group.copies - 1;
        match claims.get(&key) {
            None => choice.fresh.push(lowest),
            Some(&claimed) if lowest.seq < claimed => choice.take_over.push(lowest),
            Some(&claimed) if lowest.seq == claimed => choice.reclaim.push(lowest),
            Some(_) => choice.duplicates += 1,
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(message: usize, seq: u64) -> KeyCopy {
        KeyCopy {
            message,
            row: 0,
            seq,
        }
    }

    /// Interleaving 1 of issue #13: A (100) never claimed, B (200) claimed but not stored;
    /// both come back together. A must be stored (taking the claim over), not dropped.
    #[test]
    fn a_lower_copy_takes_over_a_claim_whose_row_never_landed() {
        let claims = HashMap::from([("K", 200)]);
        let choice = choose(
            group(vec![("K", copy(0, 100)), ("K", copy(1, 200))]),
            &claims,
        );
        assert_eq!(choice.take_over, vec![copy(0, 100)]);
        assert!(choice.fresh.is_empty() && choice.reclaim.is_empty());
        assert_eq!(choice.duplicates, 1);
    }

    #[test]
    fn the_claimants_own_copy_is_reclaimed_and_later_copies_are_duplicates() {
        let claims = HashMap::from([("K", 200)]);
        let choice = choose(
            group(vec![("K", copy(1, 200)), ("K", copy(2, 300))]),
            &claims,
        );
        assert_eq!(choice.reclaim, vec![copy(1, 200)]);
        assert_eq!(choice.duplicates, 1);
    }

    #[test]
    fn copies_later_than_the_claim_are_all_duplicates() {
        let claims = HashMap::from([("K", 100)]);
        let choice = choose(
            group(vec![("K", copy(1, 200)), ("K", copy(2, 300))]),
            &claims,
        );
        assert_eq!(
            choice,
            Choice {
                duplicates: 2,
                ..Choice::default()
            }
        );
    }

    #[test]
    fn an_unclaimed_key_stores_its_lowest_copy() {
        let copies = vec![
            ("K", copy(3, 300)),
            ("K", copy(1, 100)),
            ("J", copy(2, 200)),
        ];
        let choice = choose(group(copies), &HashMap::new());
        let mut fresh = choice.fresh.clone();
        fresh.sort_by_key(|copy| copy.seq);
        assert_eq!(fresh, vec![copy(1, 100), copy(2, 200)]);
        assert_eq!(choice.duplicates, 1);
    }
}
