//! A quick ingestion load against a running stack (`make up`): sends batches over gRPC,
//! reports acknowledged events/s, then waits until ClickHouse holds them and reports the
//! end-to-end rate. The full benchmark suite (open-loop rates, latencies, baselines) is the
//! bench crate's job; this is the smoke-sized measurement.
//!
//! cargo run --release -p chaukas --example ingest_load -- --events 200000

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaukas_proto::common::v1::{Event, EventBatch, EventType, MessageContent, event::Content};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Gateway gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// ClickHouse HTTP endpoint, to wait for the rows.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse: String,
    /// ClickHouse database.
    #[arg(long, default_value = "chaukas")]
    database: String,
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events per batch request.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
    /// Distinct tenants.
    #[arg(long, default_value_t = 50)]
    tenants: u64,
}

fn event(run: u64, index: u64, tenants: u64) -> Event {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Event {
        event_id: format!("load-{run}-{index}"),
        tenant_id: format!("tenant-{}", (index / 1000) % tenants),
        project_id: "load".into(),
        session_id: format!("session-{}", index / 50),
        trace_id: format!("trace-{}", index / 10),
        r#type: EventType::OutputEmitted as i32,
        timestamp: Some(prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap(),
            nanos: i32::try_from(now.subsec_nanos()).unwrap(),
        }),
        content: Some(Content::Message(MessageContent {
            role: "assistant".into(),
            text: "x".repeat(900),
            metadata: None,
        })),
        ..Event::default()
    }
}

async fn stored_rows(client: &clickhouse::Client) -> u64 {
    client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let clickhouse = clickhouse::Client::default()
        .with_url(&args.clickhouse)
        .with_database(&args.database)
        .with_validation(false);
    let rows_before = stored_rows(&clickhouse).await;
    let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())?
        .connect()
        .await?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let mut client = ChaukasServerServiceClient::new(channel.clone())
            .max_decoding_message_size(64 * 1024 * 1024);
        let (next, events, batch, tenants) = (next.clone(), args.events, args.batch, args.tenants);
        workers.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= events {
                    return Ok::<(), tonic::Status>(());
                }
                let last = (first + batch).min(events);
                let request = server::IngestEventBatchRequest {
                    event_batch: Some(EventBatch {
                        events: (first..last).map(|i| event(run, i, tenants)).collect(),
                        ..EventBatch::default()
                    }),
                };
                client.ingest_event_batch(request).await?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let acked_in = started.elapsed();
    let target = rows_before + args.events;
    while stored_rows(&clickhouse).await < target {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored_in = started.elapsed();
    let rate = |elapsed: Duration| args.events as f64 / elapsed.as_secs_f64();
    println!(
        "{} events (~1 KB) in batches of {} x{} concurrent: acked in {:.2}s ({:.0} events/s), stored in {:.2}s ({:.0} events/s end to end)",
        args.events,
        args.batch,
        args.concurrency,
        acked_in.as_secs_f64(),
        rate(acked_in),
        stored_in.as_secs_f64(),
        rate(stored_in)
    );
    Ok(())
}
