//! Shard leases: each shard of the event stream is written by exactly one writer at a time.
//!
//! Deduplication in the writer ("has this key been claimed?", then "claim it") is only
//! race-free if no other writer handles the same key meanwhile. Every key belongs to one
//! shard (its tenant's), so it is enough that each shard has one owner. Owners are
//! recorded in a JetStream key-value bucket, already part of the deployment:
//!
//! * `shards.<n>` holds the owner's id; created with `create` (fails if taken) and renewed
//!   with `update` at the last revision (fails if anyone else wrote it). The bucket's
//!   `max_age` is the lease TTL, so a dead writer's leases vanish on their own.
//! * `members.<id>` is each live writer's heartbeat; owners aim for an even share
//!   (`ceil(shards / members)`), taking free shards and handing back extras.
//!
//! Fencing: a writer writes a shard only within [`WriterSettings::fencing_margin`] of its
//! last successful renewal (timed from before the renewal was sent), and every statement is
//! bounded by the statement timeout, so its writes end before the lease can expire and
//! another writer can take the shard.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::WriterSettings;

/// What the lease keeper tells the writer loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The shard is ours, under a new lease term: start consuming it.
    Acquired { shard: u16, term: u64 },
    /// The shard is no longer ours: stop at once, hand back what is held.
    Lost(u16),
    /// We hold more than our share: stop consuming, hand back what is held, then confirm
    /// with [`LeaseKeeper::released`] so the lease is deleted.
    Release(u16),
}

/// When each owned shard's lease was last renewed, and under which term, shared with the
/// writer loop.
///
/// A term is one unbroken holding of a lease: every acquisition starts a new one. Work is
/// checked against the term it started under, not only the shard: a writer paused past its
/// lease that gets the shard back before an old insert task notices the loss must not let
/// that task write (a chaos seed stored 101 events twice that way: the new owner had stored
/// them meanwhile).
#[derive(Debug, Default)]
pub struct LeaseTable {
    renewed: Mutex<HashMap<u16, (Instant, u64)>>,
    terms: std::sync::atomic::AtomicU64,
}

impl LeaseTable {
    /// Whether a statement writing `shard` for work of lease term `term` may start now.
    pub fn may_write(&self, shard: u16, term: u64, margin: Duration) -> bool {
        self.renewed
            .lock()
            .expect("lease table lock")
            .get(&shard)
            .is_some_and(|(renewed, current)| *current == term && renewed.elapsed() < margin)
    }

    /// Whether this writer still holds `shard`'s lease under `term`, fresh or not:
    /// renewals may be failing for a while (NATS away) without the lease being lost. Only a
    /// failed renewal at the server (taken over or expired) or a release ends it.
    pub fn owns(&self, shard: u16, term: u64) -> bool {
        self.renewed
            .lock()
            .expect("lease table lock")
            .get(&shard)
            .is_some_and(|(_, current)| *current == term)
    }

    /// The current term of `shard` and how long ago it was last renewed, for diagnostics.
    pub fn describe(&self, shard: u16) -> Option<(u64, Duration)> {
        self.renewed
            .lock()
            .expect("lease table lock")
            .get(&shard)
            .map(|(renewed, term)| (*term, renewed.elapsed()))
    }

    /// Records a new acquisition of `shard`; returns its term.
    fn acquired(&self, shard: u16, renewed: Instant) -> u64 {
        let term = self
            .terms
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.renewed
            .lock()
            .expect("lease table lock")
            .insert(shard, (renewed, term));
        term
    }

    /// Records a successful renewal within the current term.
    fn renewed(&self, shard: u16, renewed: Instant) {
        if let Some((last, _)) = self
            .renewed
            .lock()
            .expect("lease table lock")
            .get_mut(&shard)
        {
            *last = renewed;
        }
    }

    fn remove(&self, shard: u16) {
        self.renewed
            .lock()
            .expect("lease table lock")
            .remove(&shard);
    }
}

/// Name of the lease bucket of an event stream.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_WRITER_LEASES")
}

/// The lease bucket as `chaukas migrate` creates it: a lease vanishes `ttl` after its
/// last renewal.
pub fn bucket_spec(stream: &str, ttl: Duration, replicas: usize) -> chaukas_bus::kv::BucketSpec {
    chaukas_bus::kv::BucketSpec {
        name: bucket_name(stream),
        description: "which chaukas writer owns each shard".into(),
        max_age: ttl,
        replicas,
    }
}

/// Acquires, renews, rebalances and releases this writer's shard leases.
pub struct LeaseKeeper {
    kv: kv::Store,
    me: String,
    shards: u16,
    renew_every: Duration,
    owned: BTreeMap<u16, u64>,
    releasing: BTreeSet<u16>,
    table: Arc<LeaseTable>,
    events: mpsc::UnboundedSender<LeaseEvent>,
    released: mpsc::UnboundedReceiver<u16>,
    released_sender: mpsc::UnboundedSender<u16>,
}

fn shard_key(shard: u16) -> String {
    format!("shards.{shard}")
}

impl LeaseKeeper {
    /// A keeper for writer `me`; lease events arrive on the returned receiver.
    pub fn new(
        kv: kv::Store,
        me: String,
        shards: u16,
        settings: &WriterSettings,
    ) -> (Self, Arc<LeaseTable>, mpsc::UnboundedReceiver<LeaseEvent>) {
        let table = Arc::new(LeaseTable::default());
        let (events, receiver) = mpsc::unbounded_channel();
        let (released_sender, released) = mpsc::unbounded_channel();
        let keeper = Self {
            kv,
            me,
            shards,
            renew_every: Duration::from_millis(settings.lease_renew_ms),
            owned: BTreeMap::new(),
            releasing: BTreeSet::new(),
            table: table.clone(),
            events,
            released,
            released_sender,
        };
        (keeper, table, receiver)
    }

    /// Where the writer loop confirms that it stopped writing a shard.
    pub fn released(&self) -> mpsc::UnboundedSender<u16> {
        self.released_sender.clone()
    }

    /// Runs until `stop`, then deletes every lease confirmed released and the heartbeat.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            // Bounded: a NATS request lost with a restart must not stop renewals for good.
            let bound = self.renew_every.max(Duration::from_secs(2)) * 5;
            if tokio::time::timeout(bound, self.tick()).await.is_err() {
                tracing::warn!("lease renewal round got no answer from NATS in time");
            }
            let deadline = tokio::time::sleep(self.renew_every);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = stop.cancelled() => {
                        self.shutdown().await;
                        return;
                    }
                    () = &mut deadline => break,
                    Some(shard) = self.released.recv() => self.delete(shard).await,
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        while let Ok(shard) = self.released.try_recv() {
            self.delete(shard).await;
        }
        if let Err(error) = self.kv.delete(format!("members.{}", self.me)).await {
            tracing::debug!(%error, "cannot delete writer heartbeat");
        }
    }

    async fn delete(&mut self, shard: u16) {
        self.table.remove(shard);
        self.releasing.remove(&shard);
        if let Some(revision) = self.owned.remove(&shard) {
            match self
                .kv
                .delete_expect_revision(shard_key(shard), Some(revision))
                .await
            {
                Ok(()) => tracing::info!(shard, "released shard lease"),
                Err(error) => {
                    tracing::warn!(shard, %error, "cannot delete released lease; it expires on its own")
                }
            }
        }
    }

    async fn tick(&mut self) {
        if let Err(error) = self
            .kv
            .put(format!("members.{}", self.me), Bytes::new())
            .await
        {
            tracing::warn!(%error, "cannot write writer heartbeat");
            return;
        }
        self.renew().await;
        let members = match self.count_members().await {
            Ok(count) => count.max(1),
            Err(error) => {
                tracing::warn!(%error, "cannot list writers");
                return;
            }
        };
        let fair_share = usize::from(self.shards).div_ceil(members);
        let active = self.owned.len() - self.releasing.len();
        if active < fair_share {
            self.acquire(fair_share - active).await;
        } else if active > fair_share {
            let extras: Vec<u16> = self
                .owned
                .keys()
                .rev()
                .filter(|shard| !self.releasing.contains(shard))
                .take(active - fair_share)
                .copied()
                .collect();
            for shard in extras {
                tracing::info!(shard, members, "handing a shard back to rebalance");
                self.releasing.insert(shard);
                let _ = self.events.send(LeaseEvent::Release(shard));
            }
        }
    }

    async fn renew(&mut self) {
        let owned: Vec<(u16, u64)> = self.owned.iter().map(|(s, r)| (*s, *r)).collect();
        for (shard, revision) in owned {
            let started = Instant::now();
            match self
                .kv
                .update(shard_key(shard), Bytes::from(self.me.clone()), revision)
                .await
            {
                Ok(revision) => {
                    self.owned.insert(shard, revision);
                    self.table.renewed(shard, started);
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(shard, "shard lease lost (expired or taken over)");
                    self.owned.remove(&shard);
                    self.releasing.remove(&shard);
                    self.table.remove(shard);
                    let _ = self.events.send(LeaseEvent::Lost(shard));
                }
                Err(error) => tracing::warn!(shard, %error, "cannot renew shard lease"),
            }
        }
    }

    async fn count_members(&self) -> Result<usize, String> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|error| error.to_string())?
            .try_collect()
            .await
            .map_err(|error| error.to_string())?;
        // A listing interrupted by a NATS restart can repeat keys: count each once.
        let members: std::collections::HashSet<&String> = keys
            .iter()
            .filter(|key| key.starts_with("members."))
            .collect();
        Ok(members.len())
    }

    async fn acquire(&mut self, wanted: usize) {
        let mut acquired = 0;
        let offset = usize::from(chaukas_bus::shard_of(&self.me, self.shards));
        for step in 0..usize::from(self.shards) {
            if acquired == wanted {
                break;
            }
            let shard = u16::try_from((offset + step) % usize::from(self.shards))
                .expect("a shard number fits in u16");
            if self.owned.contains_key(&shard) {
                continue;
            }
            let started = Instant::now();
            match self
                .kv
                .create(shard_key(shard), Bytes::from(self.me.clone()))
                .await
            {
                Ok(revision) => {
                    tracing::info!(shard, "acquired shard lease");
                    self.owned.insert(shard, revision);
                    let term = self.table.acquired(shard, started);
                    let _ = self.events.send(LeaseEvent::Acquired { shard, term });
                    acquired += 1;
                }
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(error) => {
                    tracing::warn!(shard, %error, "cannot acquire shard lease");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_of_an_earlier_term_may_not_write_after_the_shard_comes_back() {
        let table = LeaseTable::default();
        let margin = Duration::from_secs(60);
        let first = table.acquired(3, Instant::now());
        assert!(table.may_write(3, first, margin) && table.owns(3, first));
        table.remove(3);
        assert!(!table.owns(3, first));
        // Lost, then acquired again before the old task looked: its term is over.
        let second = table.acquired(3, Instant::now());
        assert_ne!(first, second);
        assert!(!table.may_write(3, first, margin) && !table.owns(3, first));
        assert!(table.may_write(3, second, margin));
        table.renewed(3, Instant::now());
        assert!(table.owns(3, second) && !table.owns(3, first));
        assert!(!table.may_write(3, second, Duration::ZERO));
    }
}
