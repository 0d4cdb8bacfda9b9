//! The right edge of one log's tree, as its sequencer keeps it: enough to append leaves and
//! compute the root without reading anything back.
//!
//! It is the set of partial tiles (at most 255 hashes per level, a few levels): appending a
//! leaf pushes its hash on level 0; a level reaching 256 hashes is a full tile, whose root
//! moves up one level. Loading it after a restart means fetching exactly those partial tiles
//! ([`right_edge`]).

use crate::hash::{Hash, empty_root, node_hash};
use crate::tiles::{TILE_WIDTH, TileId, perfect_root};

/// The mutable edge of a tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEdge {
    size: u64,
    /// `levels[L]`: the hashes of the partial tile at level `L`.
    levels: Vec<Vec<Hash>>,
}

/// The partial tiles a tree of `size` leaves has, lowest level first.
pub fn right_edge(size: u64) -> Vec<TileId> {
    (0u8..8)
        .filter_map(|level| {
            let nodes = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
            TileId::in_tree(level, nodes / TILE_WIDTH, size).filter(|tile| !tile.is_full())
        })
        .collect()
}

/// Why loaded tiles could not form a tree edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tiles do not match a tree of size {size}: level {level} has {found} hashes, needs {needed}"
)]
pub struct EdgeMismatch {
    size: u64,
    level: usize,
    found: usize,
    needed: u64,
}

impl TreeEdge {
    /// The empty tree.
    pub fn empty() -> Self {
        Self {
            size: 0,
            levels: Vec::new(),
        }
    }

    /// The edge of a tree of `size` leaves from its partial tiles' hashes, level by level
    /// (as [`right_edge`] lists them; levels with no partial tile are empty).
    pub fn from_partial_tiles(size: u64, levels: Vec<Vec<Hash>>) -> Result<Self, EdgeMismatch> {
        for (level, hashes) in levels.iter().enumerate() {
            let needed = size
                .checked_shr(u32::try_from(level).expect("few") * 8)
                .unwrap_or(0)
                % TILE_WIDTH;
            if hashes.len() as u64 != needed {
                return Err(EdgeMismatch {
                    size,
                    level,
                    found: hashes.len(),
                    needed,
                });
            }
        }
        let top = usize::try_from(64 - size.leading_zeros())
            .expect("≤ 64")
            .div_ceil(8);
        if levels.len() < top {
            return Err(EdgeMismatch {
                size,
                level: levels.len(),
                found: 0,
                needed: size >> (levels.len() * 8),
            });
        }
        Ok(Self { size, levels })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash. Returns the full tiles of level 1 and above this completed
    /// (level-0 tiles are the leaves themselves), for whoever caches tiles.
    pub fn append(&mut self, leaf: Hash) -> Vec<(TileId, Vec<Hash>)> {
        let mut completed = Vec::new();
        let mut carry = leaf;
        let mut level = 0usize;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(carry);
            if self.levels[level].len() as u64 != TILE_WIDTH {
                break;
            }
            let full = std::mem::take(&mut self.levels[level]);
            carry = perfect_root(&full);
            if level > 0 {
                let shift = u32::try_from(level).expect("few") * 8 + 8;
                completed.push((
                    TileId {
                        level: u8::try_from(level).expect("few"),
                        index: self.size >> shift,
                        width: 256,
                    },
                    full,
                ));
            }
            level += 1;
        }
        self.size += 1;
        completed
    }

    /// The Merkle Tree Hash of the whole tree.
    pub fn root(&self) -> Hash {
        // The perfect subtrees along the right edge, largest (leftmost) first.
        let mut subtrees = Vec::new();
        for hashes in self.levels.iter().rev() {
            let mut rest = hashes.as_slice();
            while !rest.is_empty() {
                let take = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
                subtrees.push(perfect_root(&rest[..take]));
                rest = &rest[take..];
            }
        }
        let Some(mut root) = subtrees.pop() else {
            return empty_root();
        };
        while let Some(left) = subtrees.pop() {
            root = node_hash(&left, &root);
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::proof::{NodeSource, ProofError, tree_root};

    struct Leaves(Vec<Hash>);

    impl NodeSource for Leaves {
        fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError> {
            let start = usize::try_from(index << height).unwrap();
            Ok(perfect_root(&self.0[start..start + (1 << height)]))
        }
    }

    #[test]
    fn the_edge_agrees_with_the_tree_at_every_size_across_two_tile_levels() {
        let mut edge = TreeEdge::empty();
        let mut leaves = Leaves(Vec::new());
        let mut completed = Vec::new();
        for i in 0u64..70_000 {
            let leaf = leaf_hash(&i.to_be_bytes());
            leaves.0.push(leaf);
            completed.extend(edge.append(leaf));
            let size = i + 1;
            if size < 600 || size % 4999 == 0 || size == 65_536 {
                assert_eq!(
                    edge.root(),
                    tree_root(&mut leaves, size).unwrap(),
                    "size {size}"
                );
            }
        }
        // One full level-1 tile: the roots of the first 256 level-0 tiles.
        assert_eq!(completed.len(), 1);
        let (tile, hashes) = &completed[0];
        assert_eq!((tile.level, tile.index, tile.width), (1, 0, 256));
        assert_eq!(hashes[3], perfect_root(&leaves.0[3 * 256..4 * 256]));
    }

    #[test]
    fn an_edge_reloads_from_its_partial_tiles() {
        let mut edge = TreeEdge::empty();
        for i in 0u64..70_000 {
            edge.append(leaf_hash(&i.to_be_bytes()));
        }
        // Size 70,000: level 0 has 112 hashes, level 1 has 17, level 2 has 1.
        assert_eq!(
            right_edge(70_000)
                .iter()
                .map(|t| (t.level, t.index, t.width))
                .collect::<Vec<_>>(),
            vec![(0, 273, 112), (1, 1, 17), (2, 0, 1)]
        );
        let reloaded = TreeEdge::from_partial_tiles(70_000, edge.levels.clone()).unwrap();
        assert_eq!(reloaded.root(), edge.root());
        let mut short = edge.levels.clone();
        short[1].pop();
        assert!(TreeEdge::from_partial_tiles(70_000, short).is_err());
        assert!(TreeEdge::from_partial_tiles(70_000, edge.levels[..2].to_vec()).is_err());
        assert_eq!(right_edge(256).len(), 1);
        assert_eq!(
            TreeEdge::from_partial_tiles(0, Vec::new()).unwrap().root(),
            empty_root()
        );
    }
}
