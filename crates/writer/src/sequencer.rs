//! Each tenant's audit log (docs/audit.md): the writer owning a tenant's shard is its only
//! sequencer.
//!
//! Before a batch is staged, its rows are sealed: each gets the next leaf index of its
//! tenant's log and its content hash, in the order the rows will be stored
//! (partition by partition, see `scratch::move_stage`). The rows are retried in place with
//! those same leaves until stored, so the leaves that reach `events` (and, through the
//! materialized view, `log_leaves`) are always a prefix of what was assigned. A tenant's head
//! — its tree's right edge — advances only once the rows are stored,
//! and is trusted only within the lease term it was loaded under: after any handover it is
//! read back from ClickHouse, where the previous owner left the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaukas_audit::content::hash_canonical;
use chaukas_audit::note::sign_note;
use chaukas_audit::tree::right_edge;
use chaukas_audit::{Checkpoint, Hash, SignerKey, TileId, TreeEdge, leaf_hash};
use chaukas_store::log::{self as stored_log, CheckpointRow};
use chaukas_store::{EventRow, StoreError};

/// A tenant's head whose checkpoint is signed and that nothing touched for this long is
/// dropped from memory (read back when the tenant writes again).
const IDLE_HEAD: Duration = Duration::from_secs(600);

/// Storing a round of checkpoints slower than this is logged.
const SLOW_CHECKPOINT_STORE: Duration = Duration::from_millis(500);

/// One tenant's log as its sequencer holds it.
struct Head {
    /// The lease it was loaded under: valid only while that holding lasts.
    shard: u16,
    term: u64,
    edge: TreeEdge,
    /// Tree size of the newest signed checkpoint.
    signed: u64,
    touched: Instant,
}

/// The logs of the tenants this writer sequences.
pub struct Sequencer {
    heads: Mutex<HashMap<String, Head>>,
    /// Wakes the checkpoint loop when stored rows grew a log.
    grown: tokio::sync::Notify,
    log_name: String,
    signers: Vec<SignerKey>,
    /// `log.enabled`: off, rows are stored unsealed and no log grows.
    sealing: bool,
}

/// The lease under which a tenant's rows are written.
pub type TenantLease = (u16, u64);

/// Full tiles completed by a stored batch, per tenant.
pub type CompletedTiles = Vec<(String, Vec<(TileId, Vec<Hash>)>)>;

impl Sequencer {
    /// A sequencer for log `log_name`, signing with `signers` (none: no checkpoints); one
    /// that is not `sealing` leaves rows as they are and signs nothing.
    pub fn new(log_name: String, signers: Vec<SignerKey>, sealing: bool) -> Self {
        Self {
            heads: Mutex::new(HashMap::new()),
            grown: tokio::sync::Notify::new(),
            log_name,
            signers,
            sealing,
        }
    }

    /// Whether stored rows are sealed into their tenants' logs (`log.enabled`).
    pub fn sealing(&self) -> bool {
        self.sealing
    }

    /// Seals `rows` (already in storage order): assigns leaves after each tenant's stored
    /// head, fills content hashes and log fields. Heads not valid under the tenants' leases
    /// are read back from ClickHouse first.
    pub async fn seal(
        &self,
        clickhouse: &clickhouse::Client,
        rows: &mut [EventRow],
        leases: &HashMap<String, TenantLease>,
    ) -> Result<(), StoreError> {
        if !self.sealing {
            return Ok(());
        }
        for (tenant, &(shard, term)) in leases {
            // Touched now, so the checkpoint loop cannot drop it as idle before it is used.
            let valid = self
                .heads
                .lock()
                .expect("heads lock")
                .get_mut(tenant)
                .filter(|head| head.shard == shard && head.term == term)
                .map(|head| head.touched = Instant::now())
                .is_some();
            if !valid {
                let edge = load(clickhouse, tenant).await?;
                self.heads.lock().expect("heads lock").insert(
                    tenant.clone(),
                    Head {
                        shard,
                        term,
                        signed: 0,
                        edge,
                        touched: Instant::now(),
                    },
                );
            }
        }
        let heads = self.heads.lock().expect("heads lock");
        let mut next: HashMap<&str, u64> = HashMap::new();
        for row in rows.iter_mut() {
            let head = heads
                .get(&row.tenant_id)
                .expect("every tenant's head was loaded above");
            let leaf_index = next
                .get(row.tenant_id.as_str())
                .copied()
                .unwrap_or(head.edge.size());
            // The row's payload is the event's canonical encoding (EventRow::new) and is stored
            // as it is: the log fields are derived from the hash and leaf columns when read.
            let hash = hash_canonical(&row.payload);
            row.leaf_index = leaf_index;
            row.content_hash = hash.to_vec();
            row.sealed = 1;
            let tenant = heads
                .get_key_value(&row.tenant_id)
                .map(|(tenant, _)| tenant.as_str())
                .expect("present");
            next.insert(tenant, leaf_index + 1);
        }
        Ok(())
    }

    /// Advances the heads over stored `rows`; returns the full tiles this completed, per
    /// tenant, for the tile cache.
    pub fn stored(&self, rows: &[EventRow]) -> CompletedTiles {
        if !self.sealing {
            return Vec::new();
        }
        let mut by_tenant: HashMap<&str, Vec<&EventRow>> = HashMap::new();
        for row in rows {
            by_tenant.entry(&row.tenant_id).or_default().push(row);
        }
        let mut heads = self.heads.lock().expect("heads lock");
        let mut completed = Vec::new();
        for (tenant, mut rows) in by_tenant {
            rows.sort_by_key(|row| row.leaf_index);
            let Some(head) = heads.get_mut(tenant) else {
                continue;
            };
            let mut tiles = Vec::new();
            let mut out_of_sequence = false;
            for row in rows {
                let Ok(hash) = Hash::try_from(row.content_hash.as_slice()) else {
                    continue;
                };
                if row.leaf_index != head.edge.size() {
                    // Cannot happen while one writer holds the lease; never build on it.
                    tracing::error!(
                        tenant,
                        leaf = row.leaf_index,
                        size = head.edge.size(),
                        "stored leaf out of sequence; reading the log back"
                    );
                    out_of_sequence = true;
                    break;
                }
                tiles.extend(head.edge.append(leaf_hash(&hash)));
                head.touched = Instant::now();
            }
            if out_of_sequence {
                heads.remove(tenant);
            }
            if !tiles.is_empty() {
                completed.push((tenant.to_owned(), tiles));
            }
        }
        drop(heads);
        if !rows.is_empty() {
            self.grown.notify_one();
        }
        completed
    }

    /// Drops the heads of `tenants` (their rows were handed back, maybe partly stored):
    /// they are read back from ClickHouse when next needed.
    pub fn forget<'a>(&self, tenants: impl IntoIterator<Item = &'a str>) {
        let mut heads = self.heads.lock().expect("heads lock");
        for tenant in tenants {
            heads.remove(tenant);
        }
    }

    /// Signed checkpoints for every tenant whose log grew since its last one, and drops
    /// heads idle for long. Nothing when no key is configured.
    pub fn checkpoints_due(&self) -> Vec<CheckpointRow> {
        let mut heads = self.heads.lock().expect("heads lock");
        heads
            .retain(|_, head| head.signed < head.edge.size() || head.touched.elapsed() < IDLE_HEAD);
        if self.signers.is_empty() {
            return Vec::new();
        }
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
            });
        heads
            .iter()
            .filter(|(_, head)| head.signed < head.edge.size())
            .filter_map(|(tenant, head)| {
                if tenant.chars().any(char::is_control) {
                    // Gateways refuse such tenants; a checkpoint's origin line must be one line.
                    tracing::error!(tenant, "not signing: the tenant id has control characters");
                    return None;
                }
                let checkpoint = Checkpoint {
                    origin: chaukas_audit::origin(&self.log_name, tenant),
                    size: head.edge.size(),
                    root: head.edge.root(),
                };
                let note = sign_note(&checkpoint.to_text(), &self.signers)
                    .map_err(|error| tracing::error!(tenant, %error, "cannot sign a checkpoint"))
                    .ok()?;
                Some(CheckpointRow {
                    tenant_id: tenant.clone(),
                    tree_size: checkpoint.size,
                    root_hash: checkpoint.root.to_vec(),
                    note,
                    signed_at_ns: now_ns,
                })
            })
            .collect()
    }

    /// Records that `checkpoints` are stored.
    pub fn signed(&self, checkpoints: &[CheckpointRow]) {
        let mut heads = self.heads.lock().expect("heads lock");
        for checkpoint in checkpoints {
            if let Some(head) = heads.get_mut(&checkpoint.tenant_id) {
                head.signed = head.signed.max(checkpoint.tree_size);
            }
        }
    }
}

/// Reads a tenant's head back: its size and the partial tiles of its right edge.
async fn load(clickhouse: &clickhouse::Client, tenant: &str) -> Result<TreeEdge, StoreError> {
    let stored = stored_log::stored_size(clickhouse, tenant).await?;
    let size = stored.size;
    let top = usize::try_from(64 - size.leading_zeros())
        .expect("≤ 64")
        .div_ceil(8);
    let mut levels = vec![Vec::new(); top];
    for tile in right_edge(size) {
        levels[usize::from(tile.level)] = stored_log::tile(clickhouse, tenant, tile).await?;
    }
    let edge = TreeEdge::from_partial_tiles(size, levels).map_err(|error| {
        StoreError::LogDamaged(chaukas_store::LogDamage::Missing {
            tenant: format!("{tenant} ({error})"),
            index: size,
        })
    })?;
    Ok(edge)
}

/// Signs and stores checkpoints as soon as stored rows grow a log, at most once per
/// `spacing` (which bounds the inserts into `log_checkpoints`), until the writer stops. A
/// round that failed is retried after `spacing` even if nothing more is stored.
pub async fn checkpoint_loop(
    sequencer: std::sync::Arc<Sequencer>,
    clickhouse: clickhouse::Client,
    spacing: Duration,
) {
    loop {
        tokio::select! {
            () = sequencer.grown.notified() => {}
            () = tokio::time::sleep(spacing) => {}
        }
        sign_due(&sequencer, &clickhouse, spacing * 20).await;
        tokio::time::sleep(spacing).await;
    }
}

/// Signs a checkpoint for every tenant whose log grew and stores them, within `limit`;
/// what fails is signed again next time.
pub async fn sign_due(sequencer: &Sequencer, clickhouse: &clickhouse::Client, limit: Duration) {
    let due = sequencer.checkpoints_due();
    if due.is_empty() {
        return;
    }
    let started = Instant::now();
    match tokio::time::timeout(limit, stored_log::save_checkpoints(clickhouse, &due)).await {
        Ok(Ok(())) => {
            sequencer.signed(&due);
            // A slow store delays every tenant's checkpoint: worth a line in the log.
            if started.elapsed() > SLOW_CHECKPOINT_STORE {
                tracing::info!(elapsed = ?started.elapsed(), tenants = due.len(), "checkpoints stored slowly");
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "checkpoints not stored; retrying"),
        Err(_) => tracing::warn!("checkpoints not stored in time; retrying"),
    }
}
