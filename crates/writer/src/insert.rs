//! The row insert of a claimed batch, retried in place until it is stored or the shard is
//! no longer ours.
//!
//! Retrying in place, instead of handing the batch back to JetStream with a delay, is what
//! keeps a shard's messages stored in stream order: a message handed back would be
//! redelivered after later messages, which could then store a later copy of its key first
//! (issue #13). Each attempt stages its rows and moves them into `events` (see `staging`);
//! before a retry the failed attempt's stage is dropped, so it cannot commit any more (a
//! timeout only stops the client), and the rows it did commit are left out.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chaukas_store::EventRow;
use chaukas_store::{events, scratch};

use crate::batch::{Held, nak};
use crate::flush::{FlushError, Flusher};
use crate::sequencer::{CompletedTiles, TenantLease};
use crate::staging::Staging;

/// What the claim step decided, as indices into the held messages (the insert task owns
/// them).
pub struct Claimed {
    /// Messages to ack once the rows are in: `held` indices.
    pub to_ack: Vec<usize>,
    /// Rows to insert: (`held` index, row index).
    pub inserts: Vec<(usize, usize)>,
    /// Shards the batch writes.
    pub shards: HashSet<u16>,
    /// Those shards with the lease terms their messages were pulled under.
    pub leases: HashSet<(u16, u64)>,
    /// Copies skipped as duplicates.
    pub duplicates: usize,
}

/// Where a retried insert stands.
enum Step {
    /// Give the rows their leaves in their tenants' logs (once).
    Seal,
    /// Drop the failed attempt's stage: then it can no longer commit.
    Settle(String),
    /// Find out which rows the failed attempt stored anyway.
    Verify,
    /// Send the rows.
    Insert,
}

/// The rows to store, moved out of the held messages in storage order (partition by
/// partition, see `scratch::move_stage`), with the lease each tenant is written under.
fn take_rows(
    held: &mut [Held],
    inserts: &[(usize, usize)],
) -> (Vec<EventRow>, HashMap<String, TenantLease>) {
    let mut contents: HashMap<usize, Vec<Option<EventRow>>> = HashMap::new();
    let mut rows = Vec::with_capacity(inserts.len());
    let mut leases = HashMap::new();
    // Held messages are in stream order: leaves follow it within each partition.
    let mut inserts = inserts.to_vec();
    inserts.sort_unstable();
    for (message, row) in inserts {
        let content = contents.entry(message).or_insert_with(|| {
            let rows = held[message].content.as_mut().map(std::mem::take);
            rows.unwrap_or_default().into_iter().map(Some).collect()
        });
        if let Some(taken) = content.get_mut(row).and_then(Option::take) {
            leases.insert(
                taken.tenant_id.clone(),
                (held[message].shard, held[message].term),
            );
            rows.push(taken);
        }
    }
    rows.sort_by_key(EventRow::partition);
    (rows, leases)
}

impl Flusher {
    /// Seals and inserts the claimed rows and acks; retries in place while this writer may
    /// write the batch's shards, and hands every message back once it may not.
    pub(crate) async fn insert(self, mut held: Vec<Held>, claimed: Claimed) -> bool {
        let margin = self
            .settings
            .fencing_margin()
            .expect("validated when the writer started");
        let (mut rows, tenants) = take_rows(&mut held, &claimed.inserts);
        let mut pending: Vec<usize> = (0..rows.len()).collect();
        let started = Instant::now();
        let mut step = Step::Seal;
        let mut failures: i64 = 0;
        let mut waiting_since: Option<Instant> = None;
        loop {
            if let Err(error) = self.fence(&claimed.leases, margin) {
                if claimed
                    .leases
                    .iter()
                    .all(|(shard, term)| self.leases.owns(*shard, *term))
                {
                    // Renewals are failing but the leases are not lost: wait. Handing the
                    // messages back now would let later ones of the same shards be stored
                    // before them.
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= crate::consumer::STALE_WARNING {
                        let leases: Vec<_> = claimed
                            .leases
                            .iter()
                            .map(|(shard, term)| (shard, term, self.leases.describe(*shard)))
                            .collect();
                        tracing::warn!(?leases, "insert waiting for a fresh lease for a while");
                        waiting_since = Some(Instant::now());
                    }
                    tokio::time::sleep(self.settings.retry_delay(1)).await;
                    continue;
                }
                self.sequencer.forget(tenants.keys().map(String::as_str));
                self.hand_back(&held, &error).await;
                return false;
            }
            let outcome = match &step {
                Step::Seal => self
                    .bounded_steps(self.sequencer.seal(&self.clickhouse, &mut rows, &tenants))
                    .await
                    .map(|()| None),
                Step::Settle(stage) => self
                    .staging
                    .drop_stage(stage)
                    .await
                    .map(|()| None)
                    .map_err(FlushError::Stage),
                Step::Verify => self
                    .not_yet_stored(&rows, &mut pending)
                    .await
                    .map(|()| None),
                Step::Insert => {
                    let stage = self.staging.stage_name(&claimed.shards);
                    let batch: Vec<&EventRow> = pending.iter().map(|i| &rows[*i]).collect();
                    match self.attempt(&batch, &stage, &claimed.leases, margin).await {
                        Ok(()) => {
                            if let Err(error) = self.staging.drop_stage(&stage).await {
                                tracing::debug!(%error, stage, "stage not dropped; swept later");
                            }
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, rows = batch.len(), "insert failed; retrying in place");
                            Ok(Some(Step::Settle(stage)))
                        }
                    }
                }
            };
            match (outcome, &step) {
                (Ok(Some(next)), _) => {
                    self.metrics.flush_failures.inc();
                    failures += 1;
                    step = next;
                    tokio::time::sleep(self.settings.retry_delay(failures)).await;
                }
                (Ok(None), Step::Settle(_)) => step = Step::Verify,
                (Ok(None), _) => step = Step::Insert,
                (Err(error), _) => {
                    tracing::warn!(%error, "clickhouse unavailable while retrying an insert");
                    failures += 1;
                    tokio::time::sleep(self.settings.retry_delay(failures)).await;
                }
            }
        }
        self.cache_tiles(self.sequencer.stored(&rows)).await;
        self.stored(&held, claimed, rows.len(), started).await;
        true
    }

    /// Caches the full tiles a batch completed; best effort (a missing tile is computed
    /// from the leaves when read).
    async fn cache_tiles(&self, completed: CompletedTiles) {
        for (tenant, tiles) in completed {
            let saving = chaukas_store::log::save_tiles(&self.clickhouse, &tenant, &tiles);
            if let Err(error) = self.bounded(saving).await {
                tracing::debug!(%error, tenant, "tiles not cached; computed when read");
            }
        }
    }

    /// Counts a stored batch and acks its messages.
    async fn stored(&self, held: &[Held], claimed: Claimed, rows: usize, started: Instant) {
        self.metrics
            .insert_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.rows_inserted.inc_by(rows as u64);
        self.metrics
            .duplicates_skipped
            .inc_by(claimed.duplicates as u64);
        self.metrics.batch_events.observe(rows as f64);
        tracing::debug!(rows, duplicates = claimed.duplicates, "flushed");
        for index in claimed.to_ack {
            if let Err(error) = held[index].message.ack().await {
                tracing::warn!(%error, "ack failed; the stored message is redelivered and recognised as a duplicate");
            }
        }
    }

    /// One attempt: stage the rows, then, while the lease allows, move them in one
    /// partition at a time, in storage (leaf) order.
    async fn attempt(
        &self,
        rows: &[&EventRow],
        stage: &str,
        leases: &HashSet<(u16, u64)>,
        margin: Duration,
    ) -> Result<(), FlushError> {
        let area = self.staging.scratch();
        self.bounded(scratch::stage_rows(area, stage, rows)).await?;
        let partitions: BTreeSet<u32> = rows.iter().map(|row| row.partition()).collect();
        for partition in partitions {
            self.fence(leases, margin)?;
            let query_id = Staging::move_query_id(stage, partition);
            self.bounded(scratch::move_stage(
                &self.clickhouse,
                area,
                stage,
                partition,
                &query_id,
            ))
            .await?;
        }
        Ok(())
    }

    /// Drops from `pending` the rows `events` already has: a failed attempt may have
    /// committed before its error reached the client.
    async fn not_yet_stored(
        &self,
        rows: &[EventRow],
        pending: &mut Vec<usize>,
    ) -> Result<(), FlushError> {
        let batch: Vec<&EventRow> = pending.iter().map(|i| &rows[*i]).collect();
        let stored = self
            .bounded(events::stored(&self.clickhouse, &batch))
            .await?;
        pending.retain(|i| {
            let row = &rows[*i];
            !stored.contains(&(row.tenant_id.clone(), row.event_id.clone()))
        });
        Ok(())
    }

    /// Hands every held message back to JetStream for its shard's next owner.
    pub(crate) async fn hand_back(&self, held: &[Held], error: &FlushError) {
        self.metrics.flush_failures.inc();
        tracing::warn!(%error, messages = held.len(), "handing the batch back");
        for held in held {
            nak(&held.message, None).await;
        }
    }

    /// Sends in-progress acks for every held message while a flush runs, so a slow insert
    /// or its retries do not trigger redelivery.
    pub(crate) fn keep_alive(&self, held: &[Held]) -> tokio::task::JoinHandle<()> {
        let messages: Vec<jetstream::Message> = held.iter().map(|h| h.message.clone()).collect();
        let every =
            Duration::from_secs(self.settings.ack_wait_secs / 3).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                for message in &messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        })
    }
}
