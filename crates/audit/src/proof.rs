//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): building them from a
//! source of node hashes, and verifying them with nothing but the proof, the sizes and the
//! hashes (§2.1.3.2 and §2.1.4.2, so a third party's verifier agrees with ours).

use crate::hash::{Hash, empty_root, node_hash, split_point};

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof needs `0 < old_size ≤ new_size`.
    #[error("no consistency proof from size {old} to size {new}: need 0 < old size ≤ new size")]
    InvalidSizes { old: u64, new: u64 },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    /// The hashes recomputed from the proof are not the ones claimed.
    #[error("the proof does not lead to the claimed root")]
    RootMismatch,
    /// A node hash the proof needs is not available.
    #[error("node hash at height {height}, index {index} is not available: {reason}")]
    MissingNode {
        height: u8,
        index: u64,
        reason: String,
    },
}

/// Where proofs get node hashes: node `(height, index)` is the Merkle Tree Hash of the
/// perfect subtree over leaves `[index·2^height, (index+1)·2^height)`.
pub trait NodeSource {
    /// The hash of one perfect subtree.
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError>;
}

/// A [`NodeSource`] that only writes down what is asked for (answering zeros), so a caller
/// can learn which nodes, hence which tiles, a proof needs before fetching them.
#[derive(Debug, Default)]
pub struct NodeRecorder {
    /// Every `(height, index)` asked for, in order.
    pub wanted: Vec<(u8, u64)>,
}

impl NodeSource for NodeRecorder {
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError> {
        self.wanted.push((height, index));
        Ok([0; 32])
    }
}

/// `MTH(D[start:end])` for the ranges RFC 9162's recursion produces: a perfect, aligned
/// range is one node; any other splits at the largest power of two below its length.
pub fn range_hash(source: &mut dyn NodeSource, start: u64, end: u64) -> Result<Hash, ProofError> {
    let len = end - start;
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let height = u8::try_from(len.trailing_zeros()).expect("below 64");
        return source.node(height, start >> height);
    }
    let split = split_point(len);
    let left = range_hash(source, start, start + split)?;
    let right = range_hash(source, start + split, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves.
pub fn tree_root(source: &mut dyn NodeSource, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(source, 0, size)
}

/// `PATH(index, D[size])`: the inclusion proof of one leaf, from its sibling upwards.
pub fn inclusion_proof(
    source: &mut dyn NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    let (mut start, mut end) = (0, size);
    // Walk down to the leaf, then reverse: the recursion appends the top sibling last.
    while end - start > 1 {
        let split = start + split_point(end - start);
        if index < split {
            proof.push(range_hash(source, split, end)?);
            end = split;
        } else {
            proof.push(range_hash(source, start, split)?);
            start = split;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// `PROOF(old_size, D[new_size])`: that the tree of `old_size` leaves is a prefix of the
/// tree of `new_size` leaves. Empty when the sizes are equal.
pub fn consistency_proof(
    source: &mut dyn NodeSource,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    let mut proof = Vec::new();
    // SUBPROOF(m, D[start:end], whole) of RFC 9162 §2.1.4.1, iteratively.
    let (mut m, mut start, mut end, mut whole) = (old_size, 0, new_size, true);
    while m != end - start {
        let split = split_point(end - start);
        if m <= split {
            proof.push(range_hash(source, start + split, end)?);
            end = start + split;
        } else {
            proof.push(range_hash(source, start, start + split)?);
            m -= split;
            start += split;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(source, start, end)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut node, mut last) = (index, size - 1);
    let mut computed = *leaf;
    for sibling in proof {
        if last == 0 {
            return Err(ProofError::WrongLength);
        }
        if node & 1 == 1 || node == last {
            computed = node_hash(sibling, &computed);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            computed = node_hash(&computed, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongLength);
    }
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with `old_root` is a prefix of the tree of
/// `new_size` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return match old_root == new_root {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        hashes.push(*old_root);
    }
    hashes.extend_from_slice(proof);
    let Some((first, rest)) = hashes.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut node, mut last) = (old_size - 1, new_size - 1);
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let (mut old_computed, mut new_computed) = (*first, *first);
    for hash in rest {
        if last == 0 {
            return Err(ProofError::WrongLength);
        }
        if node & 1 == 1 || node == last {
            old_computed = node_hash(hash, &old_computed);
            new_computed = node_hash(hash, &new_computed);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_computed = node_hash(&new_computed, hash);
        }
        node >>= 1;
        last >>= 1;
    }
    if last != 0 {
        return Err(ProofError::WrongLength);
    }
    if old_computed != *old_root || new_computed != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
