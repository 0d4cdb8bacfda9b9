//! Proofs against a reference tree computed the way RFC 9162 §2.1.1 defines it, and every
//! mutation of a good proof a verifier must refuse.

use super::*;
use crate::hash::leaf_hash;

/// Leaf hashes of a test log of `size` entries.
fn leaves(size: u64) -> Vec<Hash> {
    (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

/// MTH(D[n]) straight from the RFC's definition.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let split = usize::try_from(split_point(n as u64)).unwrap();
            node_hash(
                &reference_root(&leaves[..split]),
                &reference_root(&leaves[split..]),
            )
        }
    }
}

/// Node hashes computed from the leaves on demand.
struct Leaves(Vec<Hash>);

impl NodeSource for Leaves {
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let start = usize::try_from(index << height).unwrap();
        let end = start + (1usize << height);
        if end > self.0.len() {
            return Err(ProofError::MissingNode {
                height,
                index,
                reason: "beyond the tree".into(),
            });
        }
        Ok(reference_root(&self.0[start..end]))
    }
}

#[test]
fn roots_match_the_reference_definition() {
    for size in 0..70 {
        let mut source = Leaves(leaves(size));
        assert_eq!(
            tree_root(&mut source, size).unwrap(),
            reference_root(&source.0),
            "size {size}"
        );
    }
}

#[test]
fn inclusion_proofs_verify_for_every_leaf_of_every_small_tree() {
    for size in 1..70u64 {
        let mut source = Leaves(leaves(size));
        let root = tree_root(&mut source, size).unwrap();
        for index in 0..size {
            let proof = inclusion_proof(&mut source, index, size).unwrap();
            let leaf = source.0[usize::try_from(index).unwrap()];
            assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
        }
    }
}

#[test]
fn consistency_proofs_verify_for_every_pair_of_small_sizes() {
    let mut source = Leaves(leaves(70));
    for new_size in 1..70u64 {
        let new_root = tree_root(&mut source, new_size).unwrap();
        for old_size in 1..=new_size {
            let old_root = tree_root(&mut source, old_size).unwrap();
            let proof = consistency_proof(&mut source, old_size, new_size).unwrap();
            assert_eq!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &proof),
                Ok(()),
                "{old_size} → {new_size}"
            );
        }
    }
}

/// Every way of damaging one proof hash: each bit of each hash flipped in turn.
fn bit_flips(proof: &[Hash]) -> impl Iterator<Item = Vec<Hash>> + '_ {
    (0..proof.len() * 256).map(move |bit| {
        let mut damaged = proof.to_vec();
        damaged[bit / 256][(bit % 256) / 8] ^= 1 << (bit % 8);
        damaged
    })
}

#[test]
fn every_mutation_of_an_inclusion_proof_is_refused() {
    let size = 37u64;
    let mut source = Leaves(leaves(size * 2));
    let root = tree_root(&mut source, size).unwrap();
    for index in [0, 1, 12, 31, 32, 36] {
        let proof = inclusion_proof(&mut source, index, size).unwrap();
        let leaf = source.0[usize::try_from(index).unwrap()];
        let refused = |index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash| {
            assert!(
                verify_inclusion(index, size, leaf, proof, root).is_err(),
                "accepted index {index} size {size} with {} hashes",
                proof.len()
            );
        };
        refused(index + 1, size, &leaf, &proof, &root);
        if index > 0 {
            refused(index - 1, size, &leaf, &proof, &root);
        }
        refused(index, size * 2, &leaf, &proof, &root);
        refused(index, size / 2, &leaf, &proof, &root);
        refused(index, 0, &leaf, &proof, &root);
        refused(index, size, &leaf_hash(b"forged"), &proof, &root);
        refused(index, size, &leaf, &proof, &leaf);
        refused(index, size, &leaf, &proof[..proof.len() - 1], &root);
        let mut extended = proof.clone();
        extended.push(root);
        refused(index, size, &leaf, &extended, &root);
        for damaged in bit_flips(&proof) {
            refused(index, size, &leaf, &damaged, &root);
        }
    }
}

#[test]
fn every_mutation_of_a_consistency_proof_is_refused() {
    let mut source = Leaves(leaves(200));
    for (old, new) in [
        (1, 2),
        (3, 7),
        (4, 8),
        (6, 100),
        (64, 65),
        (37, 37),
        (50, 128),
    ] {
        let old_root = tree_root(&mut source, old).unwrap();
        let new_root = tree_root(&mut source, new).unwrap();
        let proof = consistency_proof(&mut source, old, new).unwrap();
        let refused = |old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]| {
            assert!(
                verify_consistency(old, new, old_root, new_root, proof).is_err(),
                "accepted {old} → {new} with {} hashes",
                proof.len()
            );
        };
        refused(old + 1, new, &old_root, &new_root, &proof);
        refused(old - 1, new, &old_root, &new_root, &proof);
        refused(old, new * 2, &old_root, &new_root, &proof);
        refused(old, new / 2, &old_root, &new_root, &proof);
        refused(old * 2, new, &old_root, &new_root, &proof);
        refused(0, new, &empty_root(), &new_root, &proof);
        let wrong = leaf_hash(b"wrong root");
        refused(old, new, &wrong, &new_root, &proof);
        refused(old, new, &old_root, &wrong, &proof);
        if old != new {
            refused(old, new, &new_root, &new_root, &proof);
            refused(old, new, &old_root, &old_root, &proof);
        }
        if !proof.is_empty() {
            refused(old, new, &old_root, &new_root, &proof[..proof.len() - 1]);
            refused(old, new, &old_root, &new_root, &proof[1..]);
        }
        let mut extended = proof.clone();
        extended.push(new_root);
        refused(old, new, &old_root, &new_root, &extended);
        for damaged in bit_flips(&proof) {
            refused(old, new, &old_root, &new_root, &damaged);
        }
    }
}

#[test]
fn proofs_are_refused_for_impossible_positions() {
    let mut source = Leaves(leaves(8));
    assert!(inclusion_proof(&mut source, 8, 8).is_err());
    assert!(inclusion_proof(&mut source, 0, 0).is_err());
    assert!(consistency_proof(&mut source, 0, 8).is_err());
    assert!(consistency_proof(&mut source, 9, 8).is_err());
}

#[test]
fn the_recorder_names_the_nodes_a_proof_needs() {
    let mut recorder = NodeRecorder::default();
    inclusion_proof(&mut recorder, 5, 8).unwrap();
    // Leaf 5's siblings in an 8-leaf tree: leaf 4, node (1, 3), node (2, 0).
    assert_eq!(recorder.wanted, vec![(2, 0), (1, 3), (0, 4)]);
}
