//! One task per owned shard: takes the shard's durable consumer over, then pulls the shard's
//! messages and hands them to the writer loop, until told to stop.
//!
//! Taking over is what keeps "the copy JetStream accepted first is stored" true across
//! handovers (issue #13): the previous owner may have died or paused holding messages, which
//! JetStream would hand out again only after `ack_wait`, while the next owner stored later
//! copies of the same keys first. So a new owner deletes the shard's consumer and creates it
//! afresh: the event stream is a work queue, so the new consumer starts at the shard's first
//! unstored message and delivers every unstored message in stream order, the previous
//! owner's included. Before pulling it drops the previous owner's insert stages for the
//! shard (see [`crate::staging`]): a previous owner paused past its lease cannot move rows
//! into `events` afterwards, and what it moved before is visible to the new owner's checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use chaukas_bus::NatsConfig;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::WriterSettings;
use crate::leases::LeaseTable;
use crate::metrics::{ShardLabel, WriterMetrics};
use crate::staging::Staging;

/// Messages pulled per request from JetStream.
const PULL_BATCH: usize = 128;
/// Bytes pulled per request: with one request at a time per shard and a bounded inbox, a
/// slow writer is never cut off by the server as a slow consumer (observed with unbounded
/// pulls of 256 messages x 8 shards of ~60 KB each). Raised to fit the largest message
/// (see [`pull_bytes`]).
const PULL_BYTES: usize = 2 * 1024 * 1024;
/// Room for a message's subject and headers on top of its payload.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// Bytes one pull may bring: at least one whole message of the largest size gateways
/// publish (`nats.max_message_bytes`). JetStream never delivers a message larger than a
/// pull's `max_bytes`, so a smaller limit would leave such a message, and every message of
/// its shard behind it, undelivered for good.
fn pull_bytes(max_message_bytes: usize) -> usize {
    PULL_BYTES.max(max_message_bytes.saturating_add(MESSAGE_OVERHEAD))
}
/// How long a pull request waits for messages on a quiet shard.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// How often a consumer's backlog is read for the lag metric.
const LAG_EVERY: Duration = Duration::from_secs(10);
/// Longest wait for NATS to answer a call of a shard task: a request lost with a NATS
/// restart must not hang the shard.
const NATS_CALL: Duration = Duration::from_secs(10);
/// How long a shard task waits for a fresh lease before saying so (and again after as long).
pub const STALE_WARNING: Duration = Duration::from_secs(15);
/// How long a shard task waits, with the consumer holding undelivered messages and every
/// pull coming back empty, before it re-creates the consumer.
const STUCK_AFTER: Duration = Duration::from_secs(30);
/// Pause before retrying after an error (NATS down, stream missing) or a stale lease.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A message and the shard it came from.
pub struct ShardMessage {
    /// Shard of the message.
    pub shard: u16,
    /// The lease term of the task that pulled it: a task outliving its lease (cancelled,
    /// not yet stopped) must not feed the next one's batch, and no write of it may start
    /// once that term is over.
    pub term: u64,
    /// The message itself, acked by the writer loop once stored.
    pub message: jetstream::Message,
}

/// What a shard task tells the writer loop.
#[allow(
    clippy::large_enum_variant,
    reason = "messages outnumber rewinds by far; boxing would allocate per message"
)]
pub enum FromShard {
    /// The next message of the shard, in stream order.
    Message(ShardMessage),
    /// A delivery of this shard went astray (a pull request lost with a NATS restart: the
    /// server delivered into a subscription nobody reads). Storing what came after it would
    /// store later copies first, so the loop drops what it holds of the shard and the task
    /// re-creates the consumer, which starts again at the shard's first unstored message.
    Rewind {
        /// The shard.
        shard: u16,
        /// The task that saw the gap.
        term: u64,
    },
}

/// Why pulling stopped.
enum Pulled {
    Stopped,
    Rewind,
}

/// Name of a shard's durable consumer: stable, so operators and metrics find it.
pub fn consumer_name(shard: u16) -> String {
    format!("chaukas-writer-shard-{shard}")
}

/// What every shard task shares.
#[derive(Clone)]
pub struct ShardContext {
    /// The event stream's JetStream.
    pub jetstream: jetstream::Context,
    /// ClickHouse, to fence the previous owner's inserts.
    pub clickhouse: clickhouse::Client,
    /// Stream layout.
    pub nats: NatsConfig,
    /// Timeouts.
    pub settings: WriterSettings,
    /// Lease renewals: pull only while the lease is fresh.
    pub leases: Arc<LeaseTable>,
    /// Stages of inserts: a new owner fences the previous owner's.
    pub staging: Arc<Staging>,
    /// Where to count.
    pub metrics: Arc<WriterMetrics>,
}

/// Takes shard `shard` over and pulls it into `sink` until `stop` fires.
pub async fn consume(
    context: ShardContext,
    shard: u16,
    term: u64,
    sink: mpsc::Sender<FromShard>,
    stop: CancellationToken,
) {
    let task = async {
        loop {
            let consumer = take_over(&context, shard).await;
            match pull(&context, shard, term, &consumer, &sink).await {
                Pulled::Stopped => return,
                Pulled::Rewind => {
                    if !forward(&sink, FromShard::Rewind { shard, term }, shard).await {
                        return;
                    }
                }
            }
        }
    };
    // Every await of the task ends with the stop, wherever it is.
    tokio::select! {
        () = stop.cancelled() => {}
        () = task => {}
    }
}

/// Pulls from a freshly created consumer until stopped or until a delivery is missing.
/// Every delivery of a consumer has the next consumer sequence, starting at 1, and only
/// this writer pulls it: a gap means a delivery went elsewhere.
async fn pull(
    context: &ShardContext,
    shard: u16,
    term: u64,
    consumer: &jetstream::consumer::PullConsumer,
    sink: &mpsc::Sender<FromShard>,
) -> Pulled {
    let margin = context
        .settings
        .fencing_margin()
        .expect("validated when the writer started");
    let label = [("shard", shard.to_string())];
    let mut lag_read = Instant::now() - LAG_EVERY;
    let mut expected = 1;
    let mut forwarded = 0u64;
    let mut last_forward = Instant::now();
    let mut stale_since: Option<Instant> = None;
    loop {
        // A writer that was paused past its lease must not pull from the new owner's
        // consumer: it pulls only while its lease is fresh.
        if !context.leases.may_write(shard, term, margin) {
            let since = *stale_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STALE_WARNING {
                tracing::warn!(shard, term, lease = ?context.leases.describe(shard), "not pulling: the lease has not been fresh for a while");
                stale_since = Some(Instant::now());
            }
            tokio::time::sleep(RETRY_EVERY).await;
            continue;
        }
        stale_since = None;
        if lag_read.elapsed() >= LAG_EVERY {
            lag_read = Instant::now();
            let pending = record_lag(context, consumer, &label, forwarded).await;
            // The server holds undelivered messages, yet every pull for a while came back
            // empty: whatever the cause (seen after NATS restarts, 1 chaos seed in ~100),
            // waiting longer would stall the shard for good. A fresh consumer starts again at
            // the first unstored message.
            if pending.is_some_and(|pending| pending > 0) && last_forward.elapsed() >= STUCK_AFTER {
                tracing::warn!(
                    shard,
                    pending,
                    idle = ?last_forward.elapsed(),
                    "the shard consumer holds messages but delivers none; taking the shard over again"
                );
                return Pulled::Rewind;
            }
        }
        let pulled = tokio::time::timeout(
            NATS_CALL,
            consumer
                .batch()
                .max_messages(PULL_BATCH)
                .max_bytes(pull_bytes(context.nats.max_message_bytes))
                .expires(PULL_EXPIRES)
                .messages(),
        )
        .await;
        let mut messages = match pulled {
            Ok(Ok(messages)) => messages,
            Ok(Err(error)) => {
                // The consumer may be gone (deleted by hand, lost by NATS): take the shard
                // over again, which re-creates it and starts at the first unstored message.
                tracing::warn!(shard, %error, "cannot pull from shard consumer; taking the shard over again");
                tokio::time::sleep(RETRY_EVERY).await;
                return Pulled::Rewind;
            }
            Err(_) => {
                tracing::warn!(
                    shard,
                    "no answer to a pull request; taking the shard over again"
                );
                return Pulled::Rewind;
            }
        };
        loop {
            // The server ends a pull request after `PULL_EXPIRES`. A request lost with the
            // server (a NATS restart) or sent to a consumer that is gone (deleted by hand,
            // lost by NATS: nobody listens on its subject) is never answered, and pulling the
            // same consumer again would never be either: the shard would stall for good. So
            // the task takes the shard over again, which re-creates the consumer.
            let next = next_delivery(consumer, &mut messages).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                // The next message would pass the request's byte limit: this pull is done.
                Ok(Some(Err(error))) if error.to_string().contains("Exceeds MaxBytes") => break,
                Ok(Some(Err(error))) => {
                    // The server refused the pull (consumer deleted or lost, server going
                    // down): take the shard over again once it answers.
                    tracing::warn!(shard, %error, "pull failed; taking the shard over again");
                    tokio::time::sleep(RETRY_EVERY).await;
                    return Pulled::Rewind;
                }
                Ok(None) => break,
                Err(waited) => {
                    tracing::warn!(
                        shard,
                        ?waited,
                        "pull request unanswered; taking the shard over again"
                    );
                    return Pulled::Rewind;
                }
            };
            let sequence = message
                .info()
                .map_or(expected, |info| info.consumer_sequence);
            if sequence != expected {
                tracing::warn!(
                    shard,
                    expected,
                    sequence,
                    "a delivery went astray; rewinding the shard to keep stream order"
                );
                return Pulled::Rewind;
            }
            expected = sequence + 1;
            let delivery = FromShard::Message(ShardMessage {
                shard,
                term,
                message,
            });
            if !forward(sink, delivery, shard).await {
                return Pulled::Stopped;
            }
            forwarded += 1;
            last_forward = Instant::now();
        }
    }
}

/// The next delivery of a pull request, or Err with how long it waited in vain. The server
/// answers a request within [`PULL_EXPIRES`] (a message, or a status ending it), so silence
/// past three times that means the request is lost (a NATS restart) — or that a busy server
/// is late (seen under load on 2 cores, where rewinding cost the shard's events seconds).
/// Which one, the consumer says: while our request is still among its waiting ones, keep
/// waiting, up to [`STUCK_AFTER`].
async fn next_delivery<S, T>(
    consumer: &jetstream::consumer::PullConsumer,
    messages: &mut S,
) -> Result<Option<T>, Duration>
where
    S: futures_util::Stream<Item = T> + Unpin,
{
    let started = Instant::now();
    loop {
        if let Ok(next) = tokio::time::timeout(PULL_EXPIRES * 3, messages.next()).await {
            return Ok(next);
        }
        let mut consumer = consumer.clone();
        let registered = tokio::time::timeout(NATS_CALL, consumer.info())
            .await
            .is_ok_and(|info| info.is_ok_and(|info| info.num_waiting > 0));
        if !registered || started.elapsed() >= STUCK_AFTER {
            return Err(started.elapsed());
        }
        tracing::debug!(waited = ?started.elapsed(), "pull request still waiting at the server");
    }
}

/// Hands `item` to the writer loop; false once the loop is gone. The wait is unbounded —
/// the loop may be busy storing a batch, which is backpressure working — but a wait past
/// [`STALE_WARNING`] is said, again and again: a shard stuck here would stall silently.
async fn forward(sink: &mpsc::Sender<FromShard>, item: FromShard, shard: u16) -> bool {
    let started = Instant::now();
    let mut sending = std::pin::pin!(sink.send(item));
    loop {
        match tokio::time::timeout(STALE_WARNING, &mut sending).await {
            Ok(sent) => return sent.is_ok(),
            Err(_) => tracing::warn!(
                shard,
                waited = ?started.elapsed(),
                "the writer loop has not taken this shard's next message for a while"
            ),
        }
    }
}

/// Exports how many messages of the shard wait to be delivered, and says at debug level
/// what the consumer holds against what this task forwarded (what a stalled shard's
/// diagnosis needs: is it pulling, and is the server delivering). Returns that number,
/// when NATS answered.
async fn record_lag(
    context: &ShardContext,
    consumer: &jetstream::consumer::PullConsumer,
    label: &ShardLabel,
    forwarded: u64,
) -> Option<u64> {
    let mut consumer = consumer.clone();
    let Ok(Ok(info)) = tokio::time::timeout(NATS_CALL, consumer.info()).await else {
        return None;
    };
    tracing::debug!(
        shard = %label[0].1,
        pending = info.num_pending,
        ack_pending = info.num_ack_pending,
        waiting = info.num_waiting,
        redelivered = info.num_redelivered,
        delivered = info.delivered.consumer_sequence,
        forwarded,
        "shard consumer"
    );
    context
        .metrics
        .consumer_pending
        .get_or_create(label)
        .set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
    Some(info.num_pending)
}

/// Fences the previous owner's inserts and re-creates the shard's consumer, retrying until
/// ClickHouse and NATS answer: a shard is never pulled unfenced.
async fn take_over(context: &ShardContext, shard: u16) -> jetstream::consumer::PullConsumer {
    loop {
        let fenced = context.staging.fence_others(shard).await;
        let taken = match fenced {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::info!(shard, dropped, "dropped the previous owner's insert stages");
                }
                // Bounded: a request lost with a NATS restart must not hang the shard.
                tokio::time::timeout(NATS_CALL, recreate(context, shard))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer from NATS in {NATS_CALL:?}")))
            }
            Err(error) => Err(error),
        };
        match taken {
            Ok(consumer) => {
                tracing::debug!(shard, "shard consumer taken over");
                return consumer;
            }
            Err(error) => {
                tracing::warn!(shard, %error, "cannot take the shard over yet, retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

async fn recreate(
    context: &ShardContext,
    shard: u16,
) -> Result<jetstream::consumer::PullConsumer, String> {
    let stream = context
        .jetstream
        .get_stream(&context.nats.stream)
        .await
        .map_err(|error| error.to_string())?;
    let name = consumer_name(shard);
    if stream.consumer_info(&name).await.is_ok() {
        stream
            .delete_consumer(&name)
            .await
            .map_err(|error| error.to_string())?;
    }
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("chaukas writers, shard {shard}")),
            filter_subject: context.nats.shard_subject(shard),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(context.settings.ack_wait_secs),
            // Never give up on a message: undecodable ones go to the dead-letter stream,
            // everything else is retried until storage takes it.
            max_deliver: -1,
            max_ack_pending: 200_000,
            ..Default::default()
        })
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_fits_the_largest_message() {
        assert_eq!(pull_bytes(900 * 1024), PULL_BYTES);
        let large = 6 * 1024 * 1024;
        assert!(pull_bytes(large) >= large + MESSAGE_OVERHEAD);
        assert_eq!(pull_bytes(usize::MAX), usize::MAX);
    }
}
