//! The raw limits of the bus and the store, measured with the same event bytes: what
//! JetStream takes when a client publishes straight to it, and what ClickHouse takes when the
//! same rows are inserted with the same client crate, no Chaukas service in between.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use chaukas_bus::NatsConfig;
use chaukas_proto::common::v1::Event;
use chaukas_store::{ClickHouseConfig, EventRow};
use prost::Message;

/// Publishes in flight at once: enough to keep JetStream busy without unbounded memory.
const PUBLISH_WINDOW: usize = 4096;
/// Rows per ClickHouse insert, as the writer's default batch.
const INSERT_ROWS: usize = 20_000;

/// A stream configured as the stack's, under names of this run.
fn scratch_stream(base: &NatsConfig, run: &str, label: &str) -> NatsConfig {
    let name = format!("BENCH_{}_{}", label, run.replace('-', "_")).to_ascii_uppercase();
    NatsConfig {
        stream: name.clone(),
        subject_prefix: format!("bench.{label}.{run}"),
        dead_letter_stream: format!("{name}_DLQ"),
        dead_letter_subject: format!("benchdlq.{label}.{run}"),
        ..base.clone()
    }
}

async fn drop_streams(js: &jetstream::Context, config: &NatsConfig) {
    let _ = js.delete_stream(&config.stream).await;
    let _ = js.delete_stream(&config.dead_letter_stream).await;
}

/// Publishes `messages` (subject, message id, payload) pipelined; seconds taken.
async fn publish_pipelined(
    js: &jetstream::Context,
    messages: Vec<(String, String, Bytes)>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut pending: VecDeque<PublishAckFuture> = VecDeque::with_capacity(PUBLISH_WINDOW);
    for (subject, id, payload) in messages {
        if pending.len() >= PUBLISH_WINDOW
            && let Some(oldest) = pending.pop_front()
        {
            oldest.await?;
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(id);
        pending.push_back(js.send_publish(subject, publish).await?);
    }
    for ack in pending {
        ack.await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// (a) one JetStream message per event (what a naive gateway would do): events/s.
pub async fn jetstream_per_event(
    nats: &async_nats::Client,
    base: &NatsConfig,
    run: &str,
    events: &[Event],
) -> anyhow::Result<f64> {
    let js = jetstream::new(nats.clone());
    let config = scratch_stream(base, run, "raw1");
    config.apply_streams(&js).await?;
    let messages = events
        .iter()
        .map(|event| {
            let shard = chaukas_bus::shard_of(&event.tenant_id, config.shards);
            (
                config.shard_subject(shard),
                format!("{}/{}", event.tenant_id, event.event_id),
                Bytes::from(event.encode_to_vec()),
            )
        })
        .collect();
    let seconds = publish_pipelined(&js, messages).await;
    drop_streams(&js, &config).await;
    #[allow(clippy::cast_precision_loss)]
    Ok(events.len() as f64 / seconds?)
}

/// (a') the gateway's message layout (events packed per shard and request, `batch` events per
/// request) published straight to JetStream: events/s. The bus's limit for our layout.
pub async fn jetstream_packed(
    nats: &async_nats::Client,
    base: &NatsConfig,
    run: &str,
    events: &[Event],
    batch: usize,
) -> anyhow::Result<f64> {
    let js = jetstream::new(nats.clone());
    let config = scratch_stream(base, run, "rawpacked");
    config.apply_streams(&js).await?;
    let messages = events
        .chunks(batch)
        .flat_map(|chunk| chaukas_bus::pack(chunk, config.shards, config.max_message_bytes))
        .map(|chunk| {
            (
                config.shard_subject(chunk.shard),
                chunk.message_id,
                chunk.payload,
            )
        })
        .collect();
    let seconds = publish_pipelined(&js, messages).await;
    drop_streams(&js, &config).await;
    #[allow(clippy::cast_precision_loss)]
    Ok(events.len() as f64 / seconds?)
}

/// (b) the same rows inserted into a scratch database with the stack's schema (materialized
/// views included), one insert stream, `INSERT_ROWS` rows per insert: rows/s.
pub async fn clickhouse_insert(
    base: &ClickHouseConfig,
    run: &str,
    events: &[Event],
) -> anyhow::Result<f64> {
    let config = ClickHouseConfig {
        database: format!("bench_raw_{}", run.replace('-', "_")),
        ..base.clone()
    };
    chaukas_store::migrations::migrate(&config).await?;
    let ingest_time_ns = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos(),
    )?;
    let rows: Vec<EventRow> = events
        .iter()
        .map(|event| EventRow::new(event, ingest_time_ns))
        .collect();
    let client = config.client()?;
    let started = Instant::now();
    for chunk in rows.chunks(INSERT_ROWS) {
        let refs: Vec<&EventRow> = chunk.iter().collect();
        chaukas_store::events::insert_events(&client, &refs).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = client
        .query(&format!("DROP DATABASE IF EXISTS {}", config.database))
        .execute()
        .await;
    #[allow(clippy::cast_precision_loss)]
    Ok(rows.len() as f64 / seconds)
}
