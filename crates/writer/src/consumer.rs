//! One task per owned shard: pulls the shard's messages from its durable consumer and hands
//! them to the writer loop, until told to stop.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use chaukas_bus::NatsConfig;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::WriterSettings;
use crate::metrics::WriterMetrics;

/// Messages pulled per request from JetStream.
const PULL_BATCH: usize = 128;
/// Bytes pulled per request. The client asks for the next batch when half of this one is
/// taken, so a shard has at most about twice this in flight; with a bounded inbox this keeps
/// a slow writer from being cut off by the server as a slow consumer (observed with 256
/// unbounded messages x 8 shards of ~60 KB each: the connection was dropped and every
/// message in flight waited out `ack_wait` before redelivery).
const PULL_BYTES: usize = 2 * 1024 * 1024;
/// How often a consumer's backlog is read for the lag metric.
const LAG_EVERY: Duration = Duration::from_secs(10);
/// Pause before re-creating a consumer after an error (NATS down, stream missing).
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A message and the shard it came from.
pub struct ShardMessage {
    /// Shard of the message.
    pub shard: u16,
    /// The message itself, acked by the writer loop once stored.
    pub message: jetstream::Message,
}

/// Name of a shard's durable consumer: stable, so a new owner continues where the last
/// one stopped and messages the last one held are redelivered to it.
pub fn consumer_name(shard: u16) -> String {
    format!("chaukas-writer-shard-{shard}")
}

/// Pulls shard `shard` into `sink` until `stop` fires.
pub async fn consume(
    jetstream: jetstream::Context,
    nats: NatsConfig,
    settings: WriterSettings,
    shard: u16,
    sink: mpsc::Sender<ShardMessage>,
    stop: CancellationToken,
    metrics: Arc<WriterMetrics>,
) {
    let label = [("shard", shard.to_string())];
    while !stop.is_cancelled() {
        let consumer = match open(&jetstream, &nats, &settings, shard).await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(shard, %error, "cannot open shard consumer, retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RETRY_EVERY) => continue,
                }
            }
        };
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .max_bytes_per_batch(PULL_BYTES)
            .expires(Duration::from_secs(5))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(shard, %error, "cannot pull from shard consumer, retrying");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        let mut lag = tokio::time::interval(LAG_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = lag.tick() => {
                    let mut consumer = consumer.clone();
                    if let Ok(info) = consumer.info().await {
                        let pending = i64::try_from(info.num_pending).unwrap_or(i64::MAX);
                        metrics.consumer_pending.get_or_create(&label).set(pending);
                    }
                }
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        let delivery = ShardMessage { shard, message };
                        tokio::select! {
                            () = stop.cancelled() => return,
                            sent = sink.send(delivery) => if sent.is_err() { return },
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(shard, %error, "pull failed, reopening consumer");
                        tokio::time::sleep(RETRY_EVERY).await;
                        break;
                    }
                    None => break,
                },
            }
        }
    }
}

async fn open(
    jetstream: &jetstream::Context,
    nats: &NatsConfig,
    settings: &WriterSettings,
    shard: u16,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let stream = jetstream
        .get_stream(&nats.stream)
        .await
        .map_err(|error| error.to_string())?;
    let name = consumer_name(shard);
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("chaukas writers, shard {shard}")),
                filter_subject: nats.shard_subject(shard),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(settings.ack_wait_secs),
                // Never give up on a message: undecodable ones go to the dead-letter stream,
                // everything else is retried until storage takes it.
                max_deliver: -1,
                max_ack_pending: 200_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|error| error.to_string())
}
