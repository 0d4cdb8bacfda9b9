//! The audit log's tables (migration 0004): leaves, filled by ClickHouse from `events`;
//! cached full tiles; signed checkpoints. Reads check what they find: a missing or forked
//! leaf is reported as [`LogDamage`], never smoothed over.

use std::future::Future;
use std::pin::Pin;

use chaukas_audit::tiles::{TILE_WIDTH, perfect_root};
use chaukas_audit::{Hash, TileId, leaf_hash};
use serde::{Deserialize, Serialize};

use crate::{LogDamage, StoreError};

/// One leaf of a tenant's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Its index.
    pub index: u64,
    /// The event's content hash (the leaf's entry).
    pub content_hash: Hash,
    /// The event it stands for.
    pub event_id: String,
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct LeafRow {
    leaf_index: u64,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    event_id: String,
}

/// How many leaves a tenant's log has, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clickhouse::Row)]
pub struct StoredSize {
    /// Rows in `log_leaves`.
    pub rows: u64,
    /// The highest leaf index plus one; 0 for an empty log.
    pub size: u64,
}

/// The size of `tenant`'s log: one past its highest leaf (rows ≠ size means damage,
/// which [`leaves`] names).
pub async fn stored_size(
    client: &clickhouse::Client,
    tenant: &str,
) -> Result<StoredSize, StoreError> {
    let sql = "SELECT count() AS rows, if(count() = 0, 0, max(leaf_index) + 1) AS size \
               FROM log_leaves WHERE tenant_id = ?";
    client
        .query(sql)
        .bind(tenant)
        .fetch_one()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct EntryRow {
    leaf_index: u64,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
}

/// The recorded entries (content hashes) of `tenant`'s leaves, of those at `indices` if
/// given, else all of them; the first where a leaf is recorded twice, none where an entry is
/// not a hash. Readers fill an event's `hash_prev` from its previous leaf's entry.
pub async fn recorded_entries(
    client: &clickhouse::Client,
    tenant: &str,
    indices: Option<&[u64]>,
) -> Result<std::collections::BTreeMap<u64, Hash>, StoreError> {
    let mut sql =
        String::from("SELECT leaf_index, content_hash FROM log_leaves WHERE tenant_id = ?");
    if let Some(indices) = indices {
        if indices.is_empty() {
            return Ok(Default::default());
        }
        let list: Vec<String> = indices.iter().map(u64::to_string).collect();
        sql.push_str(&format!(" AND leaf_index IN ({})", list.join(",")));
    }
    sql.push_str(" ORDER BY leaf_index");
    let rows: Vec<EntryRow> = client
        .query(&sql)
        .bind(tenant)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(&sql, source))?;
    let mut entries = std::collections::BTreeMap::new();
    for row in rows {
        if let Ok(hash) = Hash::try_from(row.content_hash.as_slice()) {
            entries.entry(row.leaf_index).or_insert(hash);
        }
    }
    Ok(entries)
}

/// The recorded entries a reader of sealed rows needs: each row's own leaf (rows sealed
/// since migration 0010 store no hash but the log's) and the leaf before it (`hash_prev`).
pub async fn entries_around(
    client: &clickhouse::Client,
    tenant: &str,
    leaves: impl IntoIterator<Item = u64>,
) -> Result<std::collections::BTreeMap<u64, Hash>, StoreError> {
    let mut wanted: Vec<u64> = leaves
        .into_iter()
        .flat_map(|leaf| std::iter::once(leaf).chain(leaf.checked_sub(1)))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    recorded_entries(client, tenant, Some(&wanted)).await
}

/// The content hash readers present for a row: none if it is in no log (`sealed` false);
/// else the one stored with it (rows sealed before migration 0010), else the log's entry
/// for its leaf (from [`entries_around`]), else — that entry lost, as a crash between the
/// row's part and the view's can leave it — the hash of its payload, the very bytes the
/// writer hashed.
pub fn sealed_hash(
    sealed: bool,
    stored: &[u8],
    leaf: u64,
    payload: &[u8],
    entries: &std::collections::BTreeMap<u64, Hash>,
) -> Vec<u8> {
    if !sealed {
        return Vec::new();
    }
    if !stored.is_empty() {
        return stored.to_vec();
    }
    match entries.get(&leaf) {
        Some(entry) => entry.to_vec(),
        None => chaukas_audit::content::hash_canonical(payload).to_vec(),
    }
}

/// Leaves `start..end` of `tenant`'s log, each exactly once.
pub async fn leaves(
    client: &clickhouse::Client,
    tenant: &str,
    start: u64,
    end: u64,
) -> Result<Vec<Leaf>, StoreError> {
    let sql = "SELECT leaf_index, content_hash, event_id FROM log_leaves \
               WHERE tenant_id = ? AND leaf_index >= ? AND leaf_index < ? \
               ORDER BY leaf_index";
    let rows: Vec<LeafRow> = client
        .query(sql)
        .bind(tenant)
        .bind(start)
        .bind(end)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    let mut out: Vec<Leaf> = Vec::with_capacity(rows.len());
    for row in rows {
        let content_hash: Hash =
            row.content_hash
                .as_slice()
                .try_into()
                .map_err(|_| LogDamage::Malformed {
                    tenant: tenant.to_owned(),
                    index: row.leaf_index,
                })?;
        if let Some(last) = out.last()
            && last.index == row.leaf_index
        {
            // The same leaf twice: harmless if identical (a replayed insert), a fork if not.
            if last.content_hash != content_hash || last.event_id != row.event_id {
                return Err(LogDamage::Forked {
                    tenant: tenant.to_owned(),
                    index: row.leaf_index,
                }
                .into());
            }
            continue;
        }
        let expected = start + out.len() as u64;
        if row.leaf_index != expected {
            return Err(LogDamage::Missing {
                tenant: tenant.to_owned(),
                index: expected,
            }
            .into());
        }
        out.push(Leaf {
            index: row.leaf_index,
            content_hash,
            event_id: row.event_id,
        });
    }
    if (out.len() as u64) < end - start {
        return Err(LogDamage::Missing {
            tenant: tenant.to_owned(),
            index: start + out.len() as u64,
        }
        .into());
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
struct TileRow {
    tenant_id: String,
    level: u8,
    tile_index: u64,
    #[serde(with = "serde_bytes")]
    hashes: Vec<u8>,
}

/// Caches full tiles of level 1 and up (others are refused: they are computed).
pub async fn save_tiles(
    client: &clickhouse::Client,
    tenant: &str,
    tiles: &[(TileId, Vec<Hash>)],
) -> Result<(), StoreError> {
    let cacheable: Vec<&(TileId, Vec<Hash>)> = tiles
        .iter()
        .filter(|(tile, hashes)| tile.level > 0 && tile.is_full() && hashes.len() == 256)
        .collect();
    if cacheable.is_empty() {
        return Ok(());
    }
    let rows: Vec<TileRow> = cacheable
        .into_iter()
        .map(|(tile, hashes)| TileRow {
            tenant_id: tenant.to_owned(),
            level: tile.level,
            tile_index: tile.index,
            hashes: hashes.concat(),
        })
        .collect();
    crate::events::insert_rows(client, "log_tiles", rows.iter()).await
}

async fn cached_tile(
    client: &clickhouse::Client,
    tenant: &str,
    tile: TileId,
) -> Result<Option<Vec<Hash>>, StoreError> {
    let sql = "SELECT ?fields FROM log_tiles \
               WHERE tenant_id = ? AND level = ? AND tile_index = ? LIMIT 1";
    let row: Option<TileRow> = client
        .query(sql)
        .bind(tenant)
        .bind(tile.level)
        .bind(tile.index)
        .fetch_optional()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    Ok(row.and_then(|row| chaukas_audit::tiles::tile_hashes(&row.hashes)))
        .map(|hashes| hashes.filter(|h| h.len() == 256))
}

/// The hashes of `tile` of `tenant`'s log: level 0 from the leaves, higher levels from
/// the cache or, failing that, from the tiles below (full ones are then cached).
pub fn tile<'a>(
    client: &'a clickhouse::Client,
    tenant: &'a str,
    tile: TileId,
) -> Pin<Box<dyn Future<Output = Result<Vec<Hash>, StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let width = u64::from(tile.width);
        if tile.level == 0 {
            let start = tile.index * TILE_WIDTH;
            let leaves = leaves(client, tenant, start, start + width).await?;
            return Ok(leaves
                .iter()
                .map(|leaf| leaf_hash(&leaf.content_hash))
                .collect());
        }
        if tile.is_full()
            && let Some(hashes) = cached_tile(client, tenant, tile).await?
        {
            return Ok(hashes);
        }
        let mut hashes = Vec::with_capacity(usize::from(tile.width));
        for k in 0..width {
            let below = TileId {
                level: tile.level - 1,
                index: tile.index * TILE_WIDTH + k,
                width: 256,
            };
            hashes.push(perfect_root(&self::tile(client, tenant, below).await?));
        }
        if tile.is_full() {
            // Best effort: a tile not cached is computed again next time.
            if let Err(error) = save_tiles(client, tenant, &[(tile, hashes.clone())]).await {
                tracing::debug!(%error, "tile not cached");
            }
        }
        Ok(hashes)
    })
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct CheckpointRow {
    /// The tenant.
    pub tenant_id: String,
    /// Leaves covered.
    pub tree_size: u64,
    /// The root, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub root_hash: Vec<u8>,
    /// The signed note, verbatim.
    pub note: String,
    /// When it was signed, ns since the epoch.
    pub signed_at_ns: i64,
}

/// Stores signed checkpoints.
pub async fn save_checkpoints(
    client: &clickhouse::Client,
    checkpoints: &[CheckpointRow],
) -> Result<(), StoreError> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    crate::events::insert_rows(client, "log_checkpoints", checkpoints.iter()).await
}

/// The newest signed checkpoint of `tenant`, if any.
pub async fn latest_checkpoint(
    client: &clickhouse::Client,
    tenant: &str,
) -> Result<Option<CheckpointRow>, StoreError> {
    let sql = "SELECT ?fields FROM log_checkpoints WHERE tenant_id = ? \
               ORDER BY tree_size DESC, signed_at_ns DESC LIMIT 1";
    client
        .query(sql)
        .bind(tenant)
        .fetch_optional()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct SealedRow {
    event_id: String,
    leaf_index: u64,
    sealed: u8,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

/// Every stored row of `tenant`, as the audit reads it (`chaukas verify`); the whole
/// tenant is held in memory.
pub async fn sealed_events(
    client: &clickhouse::Client,
    tenant: &str,
) -> Result<Vec<chaukas_audit::verify::StoredEvent>, StoreError> {
    sealed_events_of(client, tenant, None).await
}

/// The stored rows of `tenant`, of one session if given (`chaukas export`).
pub async fn sealed_events_of(
    client: &clickhouse::Client,
    tenant: &str,
    session: Option<&str>,
) -> Result<Vec<chaukas_audit::verify::StoredEvent>, StoreError> {
    let sql = match session {
        Some(_) => {
            "SELECT event_id, leaf_index, sealed, content_hash, payload FROM events \
                    WHERE tenant_id = ? AND session_id = ?"
        }
        None => {
            "SELECT event_id, leaf_index, sealed, content_hash, payload FROM events \
                 WHERE tenant_id = ?"
        }
    };
    let mut query = client.query(sql).bind(tenant);
    if let Some(session) = session {
        query = query.bind(session);
    }
    let rows: Vec<SealedRow> = query
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    Ok(rows
        .into_iter()
        .map(|row| chaukas_audit::verify::StoredEvent {
            event_id: row.event_id,
            leaf_index: row.leaf_index,
            sealed: row.sealed != 0,
            content_hash: row.content_hash,
            payload: row.payload,
        })
        .collect())
}
