//! Tile naming and the nodes tiles answer.

use super::*;
use crate::hash::leaf_hash;
use crate::proof::{NodeRecorder, inclusion_proof, tree_root};
use crate::tree::TreeEdge;

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

#[test]
fn tile_paths_follow_the_spec_and_only_canonical_ones_parse() {
    assert_eq!(tile(0, 1_234_067, 256).path(), "tile/0/x001/x234/067");
    assert_eq!(tile(2, 5, 17).path(), "tile/2/005.p/17");
    assert_eq!(tile(0, 1000, 3).entries_path(), "tile/entries/x001/000.p/3");
    for good in [
        "0/x001/x234/067",
        "2/005.p/17",
        "entries/x001/000.p/3",
        "63/000",
    ] {
        let parsed = TileResource::parse(good).unwrap();
        let back = match parsed {
            TileResource::Hashes(t) => t.path(),
            TileResource::Entries(t) => t.entries_path(),
        };
        assert_eq!(back, format!("tile/{good}"));
    }
    for bad in [
        "0/1",
        "0/0001",
        "0/x000/001",
        "00/001",
        "64/001",
        "0/001.p/0",
        "0/001.p/256",
        "0/001.p/017",
        "0/001/",
        "entries/001.p/",
        "x/001",
        "0/x01/001",
        "0/-01",
        "",
    ] {
        assert!(TileResource::parse(bad).is_err(), "{bad} parsed");
    }
}

#[test]
fn tiles_exist_only_within_the_tree() {
    assert_eq!(TileId::in_tree(0, 0, 300), Some(tile(0, 0, 256)));
    assert_eq!(TileId::in_tree(0, 1, 300), Some(tile(0, 1, 44)));
    assert_eq!(TileId::in_tree(0, 2, 300), None);
    assert_eq!(TileId::in_tree(1, 0, 300), Some(tile(1, 0, 1)));
    assert_eq!(TileId::in_tree(2, 0, 300), None);
    assert_eq!(TileId::in_tree(7, u64::MAX, u64::MAX), None);
}

#[test]
fn proofs_computed_from_tiles_match_proofs_from_leaves() {
    let size = 70_000u64;
    let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut edge = TreeEdge::empty();
    let mut level_one = Vec::new();
    for leaf in &leaves {
        level_one.extend(edge.append(*leaf));
    }
    let mut recorder = NodeRecorder::default();
    for index in [0, 255, 256, 65_535, 65_536, 69_999] {
        inclusion_proof(&mut recorder, index, size).unwrap();
    }
    tree_root(&mut recorder, size).unwrap();
    let mut set = TileSet::default();
    for needed in tiles_for(size, &recorder.wanted) {
        let hashes: Vec<Hash> = match needed.level {
            0 => {
                let start = usize::try_from(needed.index * 256).unwrap();
                leaves[start..start + usize::from(needed.width)].to_vec()
            }
            1 if needed.is_full() => level_one[0].1.clone(),
            1 => (0..u64::from(needed.width))
                .map(|k| {
                    let start = usize::try_from((needed.index * 256 + k) * 256).unwrap();
                    perfect_root(&leaves[start..start + 256])
                })
                .collect(),
            _ => vec![perfect_root(&level_one[0].1)],
        };
        set.insert(needed, hashes);
    }
    assert_eq!(tree_root(&mut set, size).unwrap(), edge.root());
    for index in [0, 255, 256, 65_535, 65_536, 69_999] {
        let proof = inclusion_proof(&mut set, index, size).unwrap();
        let leaf = leaves[usize::try_from(index).unwrap()];
        crate::proof::verify_inclusion(index, size, &leaf, &proof, &edge.root()).unwrap();
    }
    // A node whose tile was not fetched is named, not guessed.
    assert!(TileSet::default().node(0, 0).is_err());
}
