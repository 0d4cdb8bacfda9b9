//! RFC 9162 §2.1 hashing: SHA-256 with domain separation between leaves and nodes, so a
//! leaf can never be passed off as an interior node (the second-preimage attack on plain
//! Merkle trees).

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, a node hash, a root or a content hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ entry)`: the hash of leaf `entry`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

/// The 32 bytes of a 64-digit hex hash (either case), or `None`.
pub fn hash_from_hex(hex: &str) -> Option<Hash> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

/// The largest power of two strictly below `n` (`n ≥ 2`): where RFC 9162 splits a tree.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_domain_separated() {
        let entry = [7u8; 64];
        let (left, right) = entry.split_at(32);
        let as_node = node_hash(left.try_into().unwrap(), right.try_into().unwrap());
        assert_ne!(leaf_hash(&entry), as_node);
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let hash = leaf_hash(b"x");
        assert_eq!(hash_from_hex(&to_hex(&hash)), Some(hash));
        assert_eq!(hash_from_hex(&to_hex(&hash).to_uppercase()), Some(hash));
        assert_eq!(hash_from_hex("00"), None);
        assert_eq!(hash_from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn split_points_are_the_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point((1 << 40) + 1), 1 << 40);
    }
}
