//! C2SP tlog-tiles: the Merkle tree cut into tiles of height 8 (256 hashes), how tiles are
//! named in URLs, and which tiles hold the nodes a proof needs.
//!
//! Tile `(L, N)` holds `MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L])` for `i` in
//! `0..256`: the nodes at height `8L`. A tree of size `s` has, at each level, one partial
//! tile of `⌊s / 256^L⌋ mod 256` hashes (none when that is 0).

use std::collections::{BTreeSet, HashMap};

use crate::hash::{Hash, node_hash};
use crate::parse_decimal;
use crate::proof::{NodeSource, ProofError};

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile.
pub const TILE_HEIGHT: u8 = 8;

/// One tile: its level, its index within the level and how many hashes it holds (256 for a
/// full tile, 1–255 for a partial one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileId {
    /// 0 for leaf hashes; each level up is 8 tree levels up.
    pub level: u8,
    /// Index within the level.
    pub index: u64,
    /// Number of hashes, 1..=256.
    pub width: u16,
}

/// A tile-shaped resource named by a URL path under `tile/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileResource {
    /// `tile/<L>/<N>[.p/<W>]`: hashes.
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`: the entries of the level-0 tile `N`.
    Entries(TileId),
}

/// Why a tile path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tile path (want tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]): {0}")]
pub struct BadTilePath(pub String);

impl TileId {
    /// The tile at `level`, `index` as it exists in a tree of `size` leaves, if it does.
    pub fn in_tree(level: u8, index: u64, size: u64) -> Option<Self> {
        let nodes = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
        let width = nodes
            .checked_sub(index.checked_mul(TILE_WIDTH)?)?
            .min(TILE_WIDTH);
        (width > 0).then(|| Self {
            level,
            index,
            width: u16::try_from(width).expect("at most 256"),
        })
    }

    /// Whether the tile holds all 256 hashes.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The path under the log's prefix, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.index_path())
    }

    /// The entry-bundle path of a level-0 tile, `tile/entries/<N>[.p/<W>]`.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.index_path())
    }

    fn index_path(&self) -> String {
        let mut groups = Vec::new();
        let mut rest = self.index;
        loop {
            groups.push(rest % 1000);
            rest /= 1000;
            if rest == 0 {
                break;
            }
        }
        let mut path = String::new();
        for (position, group) in groups.iter().rev().enumerate() {
            if position + 1 < groups.len() {
                path.push_str(&format!("x{group:03}/"));
            } else {
                path.push_str(&format!("{group:03}"));
            }
        }
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }
}

impl TileResource {
    /// Parses the path after `tile/`, accepting only the canonical spelling (so one tile has
    /// one name, and a cache keyed by path cannot be poisoned through an alias).
    pub fn parse(path: &str) -> Result<Self, BadTilePath> {
        let bad = || BadTilePath(path.to_owned());
        let (level, rest) = path.split_once('/').ok_or_else(bad)?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, width)) => (index_part, parse_width(width).ok_or_else(bad)?),
            None => (rest, 256),
        };
        let index = parse_index(index_part).ok_or_else(bad)?;
        let resource = if level == "entries" {
            TileResource::Entries(TileId {
                level: 0,
                index,
                width,
            })
        } else {
            let level = parse_decimal(level)
                .filter(|level| *level < 64)
                .ok_or_else(bad)?;
            TileResource::Hashes(TileId {
                level: u8::try_from(level).expect("below 64"),
                index,
                width,
            })
        };
        let canonical = match resource {
            TileResource::Hashes(tile) => tile.path(),
            TileResource::Entries(tile) => tile.entries_path(),
        };
        (canonical == format!("tile/{path}"))
            .then_some(resource)
            .ok_or_else(bad)
    }
}

fn parse_width(text: &str) -> Option<u16> {
    parse_decimal(text)
        .filter(|width| (1..TILE_WIDTH).contains(width))
        .map(|width| u16::try_from(width).expect("below 256"))
}

fn parse_index(text: &str) -> Option<u64> {
    let mut index: u64 = 0;
    let groups: Vec<&str> = text.split('/').collect();
    for (position, group) in groups.iter().enumerate() {
        let digits = match position + 1 < groups.len() {
            true => group.strip_prefix('x')?,
            false => group,
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    Some(index)
}

/// The hash of a perfect subtree whose bottom row is `hashes` (a power of two of them).
pub fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    if hashes.len() == 1 {
        return hashes[0];
    }
    let mut row: Vec<Hash> = hashes
        .chunks_exact(2)
        .map(|pair| node_hash(&pair[0], &pair[1]))
        .collect();
    while row.len() > 1 {
        row = row
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    row[0]
}

/// Where node `(height, index)` lies: its tile's level and index, and the range of that
/// tile's hashes it covers.
fn locate(height: u8, index: u64) -> (u8, u64, u64, u64) {
    let level = height / TILE_HEIGHT;
    let span_height = height - level * TILE_HEIGHT;
    let first = index << span_height;
    let tile_index = first / TILE_WIDTH;
    let start = first % TILE_WIDTH;
    (level, tile_index, start, start + (1 << span_height))
}

/// The tiles of a tree of `size` leaves that hold the given nodes.
pub fn tiles_for(size: u64, nodes: &[(u8, u64)]) -> BTreeSet<TileId> {
    nodes
        .iter()
        .filter_map(|&(height, index)| {
            let (level, tile_index, _, _) = locate(height, index);
            TileId::in_tree(level, tile_index, size)
        })
        .collect()
}

/// Tiles fetched for a proof, answering node hashes from them.
#[derive(Debug, Default)]
pub struct TileSet {
    tiles: HashMap<(u8, u64), Vec<Hash>>,
}

impl TileSet {
    /// Adds a tile's hashes (as many as it holds).
    pub fn insert(&mut self, tile: TileId, hashes: Vec<Hash>) {
        self.tiles.insert((tile.level, tile.index), hashes);
    }
}

impl NodeSource for TileSet {
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, ProofError> {
        let (level, tile_index, start, end) = locate(height, index);
        let missing = |reason: &str| ProofError::MissingNode {
            height,
            index,
            reason: reason.to_owned(),
        };
        let hashes = self
            .tiles
            .get(&(level, tile_index))
            .ok_or_else(|| missing("its tile was not fetched"))?;
        let range =
            usize::try_from(start).expect("below 256")..usize::try_from(end).expect("≤ 256");
        let covered = hashes
            .get(range)
            .ok_or_else(|| missing("its tile is too narrow"))?;
        Ok(perfect_root(covered))
    }
}

/// Splits raw tile bytes into hashes; `None` unless the length is a whole number of them.
pub fn tile_hashes(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|chunk| chunk.try_into().expect("32 bytes"))
            .collect(),
    )
}

#[cfg(test)]
#[path = "tiles_tests.rs"]
mod tests;
