//! Every kind of tampering the audit must name.

use chaukas_proto::common::v1::Event;
use prost::Message;

use super::*;
use crate::content::{LogPlace, canonical_encoding, seal};

/// A sealed log of `n` events as the writer stores it (canonical payloads) and the
/// checkpoint over all of them.
fn sealed_log(n: u64) -> (Vec<StoredEvent>, Checkpoint) {
    let (mut events, checkpoint) = legacy_log(n);
    for event in &mut events {
        let decoded = Event::decode(event.payload.as_slice()).unwrap();
        event.payload = canonical_encoding(&decoded);
    }
    (events, checkpoint)
}

/// The same log as rows sealed since migration 0010 store it: no hash of their own, the
/// log's entries (returned) the only record of it.
fn hashless_log(n: u64) -> (Vec<StoredEvent>, Checkpoint, LogRecord) {
    let (mut events, checkpoint) = sealed_log(n);
    let record = record_of(&events);
    for event in &mut events {
        event.content_hash.clear();
    }
    (events, checkpoint, record)
}

/// What `log_leaves` records of `events`, as the materialized view fills it.
fn record_of(events: &[StoredEvent]) -> LogRecord {
    LogRecord {
        pruned_below: 0,
        entries: events
            .iter()
            .map(|event| {
                (
                    event.leaf_index,
                    Hash::try_from(event.content_hash.as_slice()).unwrap(),
                )
            })
            .collect(),
    }
}

/// A sealed log of `n` events in the older stored form, the log fields in each payload.
fn legacy_log(n: u64) -> (Vec<StoredEvent>, Checkpoint) {
    let mut edge = TreeEdge::empty();
    let mut previous = None;
    let mut events = Vec::new();
    for leaf_index in 0..n {
        let mut event = Event {
            event_id: format!("e{leaf_index}"),
            tenant_id: "t".into(),
            agent_name: format!("agent {leaf_index}"),
            ..Event::default()
        };
        let (hash, payload) = seal(
            &mut event,
            LogPlace {
                leaf_index,
                previous,
            },
        );
        edge.append(leaf_hash(&hash));
        previous = Some(hash);
        events.push(StoredEvent {
            event_id: event.event_id,
            leaf_index,
            sealed: true,
            content_hash: hash.to_vec(),
            payload,
        });
    }
    let checkpoint = Checkpoint {
        origin: "chaukas.localhost/t".into(),
        size: n,
        root: edge.root(),
    };
    (events, checkpoint)
}

/// Re-encodes event `i` after `change`, keeping its log fields as they were.
fn edit(events: &mut [StoredEvent], i: usize, change: impl FnOnce(&mut Event)) {
    let mut event = Event::decode(events[i].payload.as_slice()).unwrap();
    change(&mut event);
    events[i].payload = event.encode_to_vec();
}

#[test]
fn an_intact_log_has_no_findings_and_newer_leaves_are_not_blamed() {
    let (events, checkpoint) = sealed_log(300);
    let audit = audit(events.clone(), &checkpoint);
    assert_eq!(audit.findings, vec![]);
    assert_eq!(
        (audit.checked, audit.newer, audit.root),
        (300, 0, checkpoint.root)
    );
    let older = Checkpoint {
        size: 0,
        ..checkpoint.clone()
    };
    assert_eq!(super::audit(events, &older).newer, 300);
}

#[test]
fn a_changed_field_is_named() {
    let (mut events, checkpoint) = sealed_log(10);
    edit(&mut events, 4, |e| e.agent_name = "someone else".into());
    let findings = audit(events, &checkpoint).findings;
    assert!(
        findings.contains(&Finding::ContentChanged {
            event_id: "e4".into(),
            leaf: 4
        }),
        "{findings:?}"
    );
}

#[test]
fn a_deleted_row_is_a_missing_leaf() {
    let (mut events, checkpoint) = sealed_log(10);
    events.remove(6);
    let findings = audit(events, &checkpoint).findings;
    assert!(
        findings.contains(&Finding::MissingLeaf { leaf: 6 }),
        "{findings:?}"
    );
}

#[test]
fn a_forged_row_is_named_whatever_it_pretends() {
    let (mut events, checkpoint) = sealed_log(10);
    let mut forged = events[3].clone();
    forged.event_id = "forged".into();
    events.push(forged.clone());
    let findings = audit(events.clone(), &checkpoint).findings;
    assert!(findings.iter().any(|f| matches!(f, Finding::DuplicateLeaf { leaf: 3, event_ids } if event_ids.contains(&"forged".to_owned()))), "{findings:?}");
    // Not marked sealed it is an unsealed row.
    events.pop();
    forged.sealed = false;
    forged.content_hash.clear();
    events.push(forged);
    assert!(
        audit(events, &checkpoint)
            .findings
            .contains(&Finding::Unsealed {
                event_id: "forged".into()
            })
    );
}

/// Events 2 and 5 trade places.
fn swap_2_and_5(events: &mut [StoredEvent]) {
    events[2].leaf_index = 5;
    events[5].leaf_index = 2;
}

/// Both swapped events are named as moved, and the root no longer matches.
fn assert_swap_named(findings: &[Finding]) {
    for (event_id, leaf) in [("e2", 5), ("e5", 2)] {
        assert!(
            findings.contains(&Finding::FieldsDisagree {
                event_id: event_id.into(),
                leaf
            }),
            "{findings:?}"
        );
    }
    assert!(findings.contains(&Finding::RootMismatch { size: 10 }));
}

#[test]
fn swapped_events_are_named_by_the_log_record() {
    let (mut events, checkpoint) = sealed_log(10);
    let record = record_of(&events);
    swap_2_and_5(&mut events);
    assert_swap_named(&audit_with_record(events.clone(), &checkpoint, &record).findings);
    // Against the checkpoint alone the swap is still caught, without names.
    assert_eq!(
        audit(events, &checkpoint).findings,
        vec![Finding::RootMismatch { size: 10 }]
    );
}

#[test]
fn swapped_events_of_the_older_form_break_the_chain() {
    let (mut events, checkpoint) = legacy_log(10);
    // Swap leaves 2 and 5, rows and fields alike.
    let (two, five) = (events[2].leaf_index, events[5].leaf_index);
    events[2].leaf_index = five;
    events[5].leaf_index = two;
    edit(&mut events, 2, |e| e.worm_proof_id = five.to_string());
    edit(&mut events, 5, |e| e.worm_proof_id = two.to_string());
    let findings = audit(events, &checkpoint).findings;
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::ChainBroken { .. })),
        "{findings:?}"
    );
    assert!(
        findings.contains(&Finding::RootMismatch { size: 10 }),
        "{findings:?}"
    );
}

#[test]
fn a_rollback_and_a_rewrite_with_fresh_hashes_are_caught_by_the_checkpoint() {
    let (mut events, checkpoint) = sealed_log(10);
    events.truncate(7);
    assert!(
        audit(events, &checkpoint)
            .findings
            .contains(&Finding::Truncated {
                size: 10,
                stored: 7
            })
    );

    // A rewrite that recomputes the changed event's hash and fixes the next one's hash_prev:
    // each row is self-consistent, only the signed root disagrees.
    let (mut events, checkpoint) = legacy_log(10);
    let mut event = Event::decode(events[4].payload.as_slice()).unwrap();
    event.agent_name = "rewritten".into();
    let previous = crate::hash::hash_from_hex(&event.hash_prev);
    let (hash, payload) = seal(
        &mut event,
        LogPlace {
            leaf_index: 4,
            previous,
        },
    );
    events[4].payload = payload;
    events[4].content_hash = hash.to_vec();
    edit(&mut events, 5, |e| e.hash_prev = to_hex(&hash));
    let findings = audit(events, &checkpoint).findings;
    assert_eq!(findings, vec![Finding::RootMismatch { size: 10 }]);

    // The same rewrite of a canonical row: the log's record of the leaf names it, unless the
    // record was rewritten too.
    let (mut events, checkpoint) = sealed_log(10);
    let record = record_of(&events);
    edit(&mut events, 4, |e| e.agent_name = "rewritten".into());
    events[4].content_hash = crate::content::hash_canonical(&events[4].payload).to_vec();
    let findings = audit_with_record(events.clone(), &checkpoint, &record).findings;
    assert_eq!(
        findings,
        vec![
            Finding::FieldsDisagree {
                event_id: "e4".into(),
                leaf: 4
            },
            Finding::RootMismatch { size: 10 }
        ]
    );
    let findings = audit_with_record(events.clone(), &checkpoint, &record_of(&events)).findings;
    assert_eq!(findings, vec![Finding::RootMismatch { size: 10 }]);
}

/// The first `below` events removed by retention, their entries kept as `log_leaves` keeps
/// them; the retention run's event renamed into the log at `run_at`.
fn pruned_log(n: u64, below: u64, run_at: usize) -> (Vec<StoredEvent>, Checkpoint, LogRecord) {
    let (mut events, checkpoint) = sealed_log(n);
    events[run_at].event_id = retention_event_id(below);
    let record = LogRecord {
        pruned_below: below,
        ..record_of(&events)
    };
    events.retain(|event| event.leaf_index >= below);
    (events, checkpoint, record)
}

#[test]
fn pruned_leaves_are_checked_by_their_entries_and_counted() {
    let (events, checkpoint, pruned) = pruned_log(50, 20, 45);
    let audit = audit_with_record(events.clone(), &checkpoint, &pruned);
    assert_eq!(audit.findings, vec![]);
    assert_eq!((audit.pruned, audit.checked), (20, 50));
    // Without the prune record the same store is a deletion.
    let plain = super::audit(events, &checkpoint);
    assert!(plain.findings.contains(&Finding::MissingLeaf { leaf: 0 }));
}

#[test]
fn a_lost_or_changed_pruned_entry_and_an_unlogged_prune_are_named() {
    let (events, checkpoint, mut pruned) = pruned_log(50, 20, 45);
    pruned.entries.remove(&3);
    let audit = audit_with_record(events.clone(), &checkpoint, &pruned);
    assert!(
        audit.findings.contains(&Finding::MissingLeaf { leaf: 3 }),
        "{:?}",
        audit.findings
    );

    let (events, checkpoint, mut pruned) = pruned_log(50, 20, 45);
    pruned.entries.insert(3, [7; 32]);
    let audit = audit_with_record(events, &checkpoint, &pruned);
    assert!(
        audit.findings.contains(&Finding::RootMismatch { size: 50 }),
        "{:?}",
        audit.findings
    );

    let (mut events, checkpoint, pruned) = pruned_log(50, 20, 45);
    events.retain(|event| event.event_id != retention_event_id(20));
    let audit = audit_with_record(events, &checkpoint, &pruned);
    assert!(
        audit
            .findings
            .contains(&Finding::UnloggedPrune { below: 20 }),
        "{:?}",
        audit.findings
    );
}

#[test]
fn rows_without_a_stored_hash_are_judged_by_the_log_entry_of_their_leaf() {
    let (events, checkpoint, record) = hashless_log(10);
    let audit = audit_with_record(events.clone(), &checkpoint, &record);
    assert_eq!(audit.findings, vec![]);
    assert_eq!(audit.checked, 10);

    // Changed: its content is no leaf's entry.
    let mut changed = events.clone();
    edit(&mut changed, 4, |event| {
        event.agent_name = "someone else".into()
    });
    let findings = audit_with_record(changed, &checkpoint, &record).findings;
    assert!(
        findings.contains(&Finding::ContentChanged {
            event_id: "e4".into(),
            leaf: 4
        }),
        "{findings:?}"
    );

    // Moved: its content is another leaf's entry.
    let mut swapped = events.clone();
    swap_2_and_5(&mut swapped);
    assert_swap_named(&audit_with_record(swapped, &checkpoint, &record).findings);

    // A leaf's entry lost (a crash between the row's part and the view's): nothing to
    // compare that row with but the signed root, which it matches.
    let mut lost = record.clone();
    lost.entries.remove(&7);
    assert_eq!(
        audit_with_record(events, &checkpoint, &lost).findings,
        vec![]
    );
}
