//! A batch of held messages, and storing it exactly once.
//!
//! The rule, per (tenant, event id), is "the first copy stored wins": the copy carried by
//! the message that claimed the key in `event_claims` first. For every event of a batch:
//!
//! * a later copy of a key earlier in the same batch is dropped (stream order);
//! * no claim yet: claim it with this message's stream sequence, then insert the row;
//! * claimed by this very message (a redelivery after a crash or a failed flush): insert
//!   the row unless `events` already has it, matched on its full sort key, which a
//!   redelivery reproduces exactly because the gateway stamped the ingest time;
//! * claimed by another message: a duplicate, skipped.
//!
//! Claims are written before rows, so a crash between the two leaves a claim whose message
//! is redelivered and completes the insert. Messages are acked only after both inserts
//! succeeded. A failure is retried in place (the claim step by the writer loop, the row
//! insert by its task, see `insert`), so a shard's messages are stored in stream order;
//! messages go back to JetStream only when their shard is no longer this writer's. Shard
//! leases make the check-then-claim race-free (see `leases`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use chaukas_bus::NatsConfig;
use chaukas_store::EventRow;
use chaukas_store::events::{self, ClaimRow, EventKey};

use crate::WriterSettings;
pub use crate::batch::{Batch, Held, nak};
use crate::choose::{self, KeyCopy};
use crate::insert::Claimed;
use crate::leases::LeaseTable;
use crate::metrics::WriterMetrics;
use crate::sequencer::Sequencer;
use crate::staging::Staging;

/// Header naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = chaukas_bus::dead_letters::REASON_HEADER;
/// Header with the subject a dead letter was first published to.
pub const DEAD_LETTER_SUBJECT_HEADER: &str = chaukas_bus::dead_letters::SUBJECT_HEADER;
/// Header with the stream sequence a dead letter had.
pub const DEAD_LETTER_SEQUENCE_HEADER: &str = chaukas_bus::dead_letters::SEQUENCE_HEADER;

/// The row a copy points at.
fn row_of<'a>(held: &'a [Held], copy: &KeyCopy) -> Option<&'a EventRow> {
    held.get(copy.message)?.content.as_ref().ok()?.get(copy.row)
}

/// What storing needs. Cheap to clone: the row insert of one batch runs as a task of its own
/// while the next batch is being claimed.
#[derive(Clone)]
pub struct Flusher {
    /// ClickHouse, bound to the Chaukas database.
    pub clickhouse: clickhouse::Client,
    /// For dead letters.
    pub jetstream: jetstream::Context,
    /// Stream layout.
    pub nats: NatsConfig,
    /// Timeouts and retry policy.
    pub settings: WriterSettings,
    /// Lease renewals, for fencing.
    pub leases: Arc<LeaseTable>,
    /// Stages of inserts, and their fences.
    pub staging: Arc<Staging>,
    /// Where to count.
    pub metrics: Arc<WriterMetrics>,
    /// The tenants' audit logs.
    pub sequencer: Arc<Sequencer>,
}

/// Why a flush handed its batch back.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// ClickHouse failed or was too slow.
    #[error(transparent)]
    Store(#[from] chaukas_store::StoreError),
    /// A shard's lease is not fresh enough to start a write: this writer may be about to
    /// lose it, so the batch goes back to whoever owns the shard next.
    #[error("shard {shard} lease is not fresh enough to start a write")]
    Fenced {
        /// The shard.
        shard: u16,
    },
    /// A failed attempt's stage could not be dropped yet.
    #[error("cannot drop an insert stage: {0}")]
    Stage(String),
    /// A statement exceeded the statement timeout.
    #[error("clickhouse statement exceeded {0:?}")]
    Timeout(Duration),
}

/// A claimed batch whose rows are being inserted.
///
/// Pipelining: batch N's rows are inserted while batch N+1 is deduplicated and claimed. That
/// keeps exactly-once: N's claims are in `event_claims` before N+1 looks its keys up, and if
/// N's row insert fails its messages come back and find their own claims (the redelivery
/// case). At most one insert is in flight, so memory stays bounded by two batches.
#[derive(Default)]
pub struct InFlight(Option<tokio::task::JoinHandle<bool>>);

impl InFlight {
    /// Waits for the insert in flight, if any; false when it failed.
    pub async fn finish(&mut self) -> bool {
        match self.0.take() {
            Some(task) => task.await.unwrap_or(false),
            None => true,
        }
    }
}

impl Flusher {
    /// Claims `batch` and starts inserting its rows in the background, after the previous
    /// insert has finished. Returns false when this batch's claim step failed (its messages
    /// are back in `batch`, to be retried after a pause) or the previous insert gave its
    /// batch back.
    #[tracing::instrument(name = "flush", skip_all, fields(messages = batch.messages(), events = batch.events()))]
    pub async fn flush(&self, batch: &mut Batch, in_flight: &mut InFlight) -> bool {
        let held = self.writable(batch).await;
        if held.is_empty() {
            return in_flight.finish().await;
        }
        let keep_alive = self.keep_alive(&held);
        let claiming = Instant::now();
        let mut previous_ok = None;
        let claimed = self.claim(&held, in_flight, &mut previous_ok).await;
        self.metrics
            .claim_seconds
            .observe(claiming.elapsed().as_secs_f64());
        let previous_ok = match previous_ok {
            Some(ok) => ok,
            None => in_flight.finish().await,
        };
        match claimed {
            Ok(claimed) => {
                let flusher = self.clone();
                in_flight.0 = Some(tokio::spawn(async move {
                    let stored = flusher.insert(held, claimed).await;
                    keep_alive.abort();
                    stored
                }));
                previous_ok
            }
            Err(error) => {
                keep_alive.abort();
                self.metrics.flush_failures.inc();
                tracing::warn!(%error, messages = held.len(), "claim step failed; retrying in place");
                batch.restore(held);
                false
            }
        }
    }

    /// Splits off the messages of shards this writer may write now. Those of shards it
    /// still owns but may not write yet (renewals failing) go back into `batch`, in order;
    /// those of shards it lost go back to JetStream for their next owner.
    async fn writable(&self, batch: &mut Batch) -> Vec<Held> {
        let margin = self
            .settings
            .fencing_margin()
            .expect("validated when the writer started");
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for item in batch.take() {
            if self.leases.may_write(item.shard, item.term, margin) {
                ready.push(item);
            } else if self.leases.owns(item.shard, item.term) {
                waiting.push(item);
            } else {
                nak(&item.message, None).await;
            }
        }
        batch.restore(waiting);
        ready
    }

    /// Claims: looks the batch's keys up, chooses one copy per key (see `choose`), and
    /// records claims for what it will store. Messages of shards this writer may not write
    /// any more are handed back here and left out. When a copy's key may already be stored,
    /// the insert still in flight is waited for first (`previous_ok` gets its outcome), so
    /// the check cannot miss a row being written (issue #13, interleaving 2).
    async fn claim(
        &self,
        held: &[Held],
        in_flight: &mut InFlight,
        previous_ok: &mut Option<bool>,
    ) -> Result<Claimed, FlushError> {
        let margin = self
            .settings
            .fencing_margin()
            .expect("validated when the writer started");
        let mut to_ack = Vec::with_capacity(held.len());
        let mut copies: Vec<((&str, &str), KeyCopy)> = Vec::new();
        let mut shards: HashSet<u16> = HashSet::new();
        let mut leases: HashSet<(u16, u64)> = HashSet::new();
        for (index, item) in held.iter().enumerate() {
            shards.insert(item.shard);
            leases.insert((item.shard, item.term));
            if item.delivered > 1 {
                self.metrics.redeliveries.inc();
            }
            match &item.content {
                Ok(events) => copies.extend(events.iter().enumerate().map(|(row, event)| {
                    let key = (event.tenant_id.as_str(), event.event_id.as_str());
                    let copy = KeyCopy {
                        message: index,
                        row,
                        seq: item.stream_seq,
                    };
                    (key, copy)
                })),
                Err(reason) => {
                    if self.dead_letter(item, reason).await {
                        to_ack.push(index);
                    } else {
                        nak(
                            &item.message,
                            Some(self.settings.retry_delay(item.delivered)),
                        )
                        .await;
                    }
                    continue;
                }
            }
            to_ack.push(index);
        }

        // Keys stay borrowed from the held rows; only the lookup needs owned ones.
        let groups = choose::group(copies);
        let keys: Vec<EventKey> = groups
            .keys()
            .map(|(tenant, event)| ((*tenant).to_owned(), (*event).to_owned()))
            .collect();
        let found = self
            .bounded(self.staging.claims(&self.clickhouse, &keys))
            .await?;
        let claims = found
            .iter()
            .map(|((tenant, event), seq)| ((tenant.as_str(), event.as_str()), *seq))
            .collect();
        let choice = choose::choose(groups, &claims);
        let mut duplicates = choice.duplicates;
        let mut to_claim = choice.fresh;
        let mut to_store = Vec::new();
        let checked: Vec<(KeyCopy, bool)> = choice
            .take_over
            .into_iter()
            .map(|copy| (copy, true))
            .chain(choice.reclaim.into_iter().map(|copy| (copy, false)))
            .collect();
        if !checked.is_empty() {
            *previous_ok = Some(in_flight.finish().await);
            let candidates: Vec<&EventRow> = checked
                .iter()
                .filter_map(|(copy, _)| row_of(held, copy))
                .collect();
            let already_stored = self
                .bounded(events::stored(&self.clickhouse, &candidates))
                .await?;
            for (copy, take_over) in checked {
                let stored = row_of(held, &copy).is_none_or(|row| {
                    already_stored.contains(&(row.tenant_id.clone(), row.event_id.clone()))
                });
                match (stored, take_over) {
                    (true, _) => duplicates += 1,
                    (false, true) => to_claim.push(copy),
                    (false, false) => to_store.push(copy),
                }
            }
        }

        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
            });
        let claim_rows: Vec<ClaimRow> = to_claim
            .iter()
            .filter_map(|copy| {
                let row = row_of(held, copy)?;
                Some(ClaimRow {
                    tenant_id: row.tenant_id.clone(),
                    event_id: row.event_id.clone(),
                    stream_seq: copy.seq,
                    claimed_at_ns: now_ns,
                })
            })
            .collect();
        self.fence(&leases, margin)?;
        self.bounded(events::insert_claims(&self.clickhouse, &claim_rows))
            .await?;
        let inserts = to_claim
            .into_iter()
            .chain(to_store)
            .map(|copy| (copy.message, copy.row))
            .collect();
        Ok(Claimed {
            to_ack,
            inserts,
            shards,
            leases,
            duplicates,
        })
    }

    /// Refuses to start a write if any shard's lease might expire before it ends.
    pub(crate) fn fence(
        &self,
        leases: &HashSet<(u16, u64)>,
        margin: Duration,
    ) -> Result<(), FlushError> {
        match leases
            .iter()
            .find(|(shard, term)| !self.leases.may_write(*shard, *term, margin))
        {
            None => Ok(()),
            Some((shard, _)) => Err(FlushError::Fenced { shard: *shard }),
        }
    }

    /// Bounds a step of several statements (a head read back: size, tiles, last leaf).
    pub(crate) async fn bounded_steps<T>(
        &self,
        steps: impl Future<Output = Result<T, chaukas_store::StoreError>>,
    ) -> Result<T, FlushError> {
        let timeout = Duration::from_millis(self.settings.statement_timeout_ms * 4);
        match tokio::time::timeout(timeout, steps).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(FlushError::Timeout(timeout)),
        }
    }

    pub(crate) async fn bounded<T>(
        &self,
        statement: impl Future<Output = Result<T, chaukas_store::StoreError>>,
    ) -> Result<T, FlushError> {
        let timeout = Duration::from_millis(self.settings.statement_timeout_ms);
        match tokio::time::timeout(timeout, statement).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(FlushError::Timeout(timeout)),
        }
    }

    /// Moves an undecodable message to the dead-letter stream with the reason; true once
    /// JetStream has it (only then is the original acked).
    async fn dead_letter(&self, held: &Held, reason: &str) -> bool {
        let mut headers = held.message.headers.clone().unwrap_or_default();
        headers.insert(DEAD_LETTER_REASON_HEADER, reason);
        headers.insert(DEAD_LETTER_SUBJECT_HEADER, held.message.subject.as_str());
        headers.insert(
            DEAD_LETTER_SEQUENCE_HEADER,
            held.stream_seq.to_string().as_str(),
        );
        // A message dead-lettered again (its ack was lost) collapses into the first letter
        // inside the duplicate window.
        headers.insert(
            "Nats-Msg-Id",
            format!("dead-letter-{}-{}", self.nats.stream, held.stream_seq).as_str(),
        );
        let published = self
            .jetstream
            .publish_with_headers(
                self.nats.dead_letter_subject.clone(),
                headers,
                held.message.payload.clone(),
            )
            .await;
        let stored = match published {
            Ok(ack) => ack.await.map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match stored {
            Ok(_) => {
                self.metrics.dead_lettered.inc();
                tracing::error!(
                    sequence = held.stream_seq,
                    reason,
                    "message moved to the dead-letter stream"
                );
                true
            }
            Err(error) => {
                // Nothing is dropped: the message stays in the event stream and comes back.
                tracing::warn!(
                    sequence = held.stream_seq,
                    %error,
                    "dead-letter publish failed (a full dead-letter stream refuses new \
                     letters: replay or remove some with `chaukas dead-letters`); the \
                     message stays in the event stream and is retried"
                );
                false
            }
        }
    }
}
