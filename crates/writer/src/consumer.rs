//! One task per owned shard: takes the shard's durable consumer over, then pulls the shard's
//! messages and hands them to the writer loop, until told to stop.
//!
//! Taking over is what keeps "the copy JetStream accepted first is stored" true across
//! handovers (issue #13): the previous owner may have died or paused holding messages, which
//! JetStream would hand out again only after `ack_wait`, while the next owner stored later
//! copies of the same keys first. So a new owner deletes the shard's consumer and creates it
//! afresh: the event stream is a work queue, so the new consumer starts at the shard's first
//! unstored message and delivers every unstored message in stream order, the previous
//! owner's included. It also waits until the previous owner's inserts have ended on the
//! server (see [`crate::insert_ids`]) before pulling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use chaukas_bus::NatsConfig;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::WriterSettings;
use crate::insert_ids::InsertIds;
use crate::leases::LeaseTable;
use crate::metrics::WriterMetrics;

/// Messages pulled per request from JetStream.
const PULL_BATCH: usize = 128;
/// Bytes pulled per request: with one request at a time per shard and a bounded inbox, a
/// slow writer is never cut off by the server as a slow consumer (observed with unbounded
/// pulls of 256 messages x 8 shards of ~60 KB each).
const PULL_BYTES: usize = 2 * 1024 * 1024;
/// How long a pull request waits for messages on a quiet shard.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// How often a consumer's backlog is read for the lag metric.
const LAG_EVERY: Duration = Duration::from_secs(10);
/// Pause before retrying after an error (NATS down, stream missing) or a stale lease.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Pause between looks at the server while the previous owner's inserts still run.
const INSERT_POLL: Duration = Duration::from_millis(200);

/// A message and the shard it came from.
pub struct ShardMessage {
    /// Shard of the message.
    pub shard: u16,
    /// The message itself, acked by the writer loop once stored.
    pub message: jetstream::Message,
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
    /// ClickHouse, to see the previous owner's inserts.
    pub clickhouse: clickhouse::Client,
    /// Stream layout.
    pub nats: NatsConfig,
    /// Timeouts.
    pub settings: WriterSettings,
    /// Lease renewals: pull only while the lease is fresh.
    pub leases: Arc<LeaseTable>,
    /// How inserts are named, to tell the previous owner's apart.
    pub insert_ids: Arc<InsertIds>,
    /// Where to count.
    pub metrics: Arc<WriterMetrics>,
}

/// Takes shard `shard` over and pulls it into `sink` until `stop` fires.
pub async fn consume(
    context: ShardContext,
    shard: u16,
    sink: mpsc::Sender<ShardMessage>,
    stop: CancellationToken,
) {
    let consumer = tokio::select! {
        () = stop.cancelled() => return,
        consumer = take_over(&context, shard) => consumer,
    };
    let margin = context
        .settings
        .fencing_margin()
        .expect("validated when the writer started");
    let label = [("shard", shard.to_string())];
    let mut lag_read = Instant::now() - LAG_EVERY;
    while !stop.is_cancelled() {
        // A writer that was paused past its lease must not pull from the new owner's
        // consumer: it pulls only while its lease is fresh.
        if !context.leases.may_write(shard, margin) {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY_EVERY) => continue,
            }
        }
        if lag_read.elapsed() >= LAG_EVERY {
            lag_read = Instant::now();
            if let Ok(info) = consumer.clone().info().await {
                let pending = i64::try_from(info.num_pending).unwrap_or(i64::MAX);
                context
                    .metrics
                    .consumer_pending
                    .get_or_create(&label)
                    .set(pending);
            }
        }
        let pulled = consumer
            .batch()
            .max_messages(PULL_BATCH)
            .max_bytes(PULL_BYTES)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut messages = match pulled {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(shard, %error, "cannot pull from shard consumer, retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RETRY_EVERY) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let delivery = ShardMessage { shard, message };
                    tokio::select! {
                        () = stop.cancelled() => return,
                        sent = sink.send(delivery) => if sent.is_err() { return },
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(shard, %error, "pull failed, pulling again");
                    tokio::time::sleep(RETRY_EVERY).await;
                    break;
                }
                None => break,
            }
        }
    }
}

/// Re-creates the shard's consumer and waits for the previous owner's inserts to end,
/// retrying until NATS answers.
async fn take_over(context: &ShardContext, shard: u16) -> jetstream::consumer::PullConsumer {
    loop {
        match recreate(context, shard).await {
            Ok(consumer) => {
                wait_for_previous_inserts(context, shard).await;
                return consumer;
            }
            Err(error) => {
                tracing::warn!(shard, %error, "cannot take the shard consumer over, retrying");
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

/// Waits until no insert another writer started for `shard` still runs on the server, for
/// at most twice the statement timeout (each is bounded by it on the client, and fenced
/// before it commits).
async fn wait_for_previous_inserts(context: &ShardContext, shard: u16) {
    let deadline = Instant::now()
        + Duration::from_millis(context.settings.statement_timeout_ms.saturating_mul(2));
    loop {
        match context
            .insert_ids
            .others_running(&context.clickhouse, shard)
            .await
        {
            Ok(0) => return,
            Ok(running) if Instant::now() < deadline => {
                tracing::info!(
                    shard,
                    running,
                    "waiting for the previous owner's inserts to end"
                );
                tokio::time::sleep(INSERT_POLL).await;
            }
            Ok(running) => {
                tracing::warn!(
                    shard,
                    running,
                    "previous owner's inserts still run; going on"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(shard, %error, "cannot see running inserts; going on");
                return;
            }
        }
    }
}
