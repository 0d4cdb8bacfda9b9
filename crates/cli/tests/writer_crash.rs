//! The writer as its own process, killed with SIGKILL mid-stream: every event the gateway
//! acknowledged is stored exactly once.

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chaukas_proto::server::v1 as server;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request};

const EVENTS: u64 = 100_000;
const PER_BATCH: u64 = 500;
const SENDERS: u64 = 4;

fn spawn_writer(pipeline: &Pipeline) -> Child {
    chaukas_tests::role_command(env!("CARGO_BIN_EXE_chaukas"), pipeline, "writer")
        .spawn()
        .expect("the chaukas binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_stream_loses_and_duplicates_nothing() {
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let mut writer = spawn_writer(&pipeline);
    let acked = Arc::new(AtomicU64::new(0));

    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let acked = acked.clone();
            let grpc = pipeline.grpc;
            tokio::spawn(async move {
                let mut client =
                    server::chaukas_server_service_client::ChaukasServerServiceClient::new(
                        chaukas_tests::channel(grpc).await,
                    );
                let batches = EVENTS / PER_BATCH / SENDERS;
                for batch in 0..batches {
                    let events = (0..PER_BATCH)
                        .map(|i| {
                            simple_event(
                                &format!("tenant-{}", i % 7),
                                &format!("s{sender}-b{batch}-e{i}"),
                            )
                        })
                        .collect();
                    let response = client
                        .ingest_event_batch(batch_request(events))
                        .await
                        .expect("the gateway accepts while writers die");
                    let accepted = response.into_inner().accepted_count;
                    acked.fetch_add(u64::try_from(accepted).unwrap(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();

    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        writer.kill().expect("SIGKILL the writer");
        writer.wait().unwrap();
        writer = spawn_writer(&pipeline);
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let total = acked.load(Ordering::Relaxed);
    assert_eq!(total, EVENTS);
    let stored = pipeline
        .wait_for_rows(total, Duration::from_secs(180))
        .await;
    writer.kill().unwrap();
    writer.wait().unwrap();
    let distinct = pipeline.distinct_keys().await;
    let claims: u64 = pipeline
        .clickhouse_client()
        .query("SELECT count() FROM event_claims")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (stored, distinct, claims),
        (total, total, total),
        "rows, distinct ids and claims must all equal the acked count"
    );
    pipeline.stop().await;
}

/// The in-process writer's `chaukas_writer_shards_owned` gauge.
async fn shards_owned(pipeline: &Pipeline) -> Option<u64> {
    let addr = pipeline.writer_http.expect("an in-process writer");
    let (_, metrics) = chaukas_tests::http_get(addr, "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("chaukas_writer_shards_owned "))
        .and_then(|value| value.trim().parse().ok())
}

async fn wait_for_shards(pipeline: &Pipeline, wanted: u64) {
    for _ in 0..300 {
        if shards_owned(pipeline).await == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the writer never settled on {wanted} shards (has {:?})",
        shards_owned(pipeline).await
    );
}

async fn send(pipeline: &Pipeline, prefix: &str, batches: u64) {
    let mut client = pipeline.server_client().await;
    for batch in 0..batches {
        let events = (0..PER_BATCH)
            .map(|i| {
                simple_event(
                    &format!("tenant-{}", i % 13),
                    &format!("{prefix}-{batch}-{i}"),
                )
            })
            .collect();
        client
            .ingest_event_batch(batch_request(events))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_split_the_shards_and_the_survivor_takes_them_all() {
    let pipeline = Pipeline::start().await;
    wait_for_shards(&pipeline, 8).await;
    let mut second = spawn_writer(&pipeline);
    wait_for_shards(&pipeline, 4).await;

    send(&pipeline, "shared", 40).await;
    assert_eq!(
        pipeline
            .wait_for_rows(20_000, Duration::from_secs(60))
            .await,
        20_000
    );

    second.kill().unwrap();
    second.wait().unwrap();
    send(&pipeline, "survivor", 40).await;
    wait_for_shards(&pipeline, 8).await;
    assert_eq!(
        pipeline
            .wait_for_rows(40_000, Duration::from_secs(60))
            .await,
        40_000
    );
    let distinct = pipeline.distinct_keys().await;
    assert_eq!(distinct, 40_000);
    pipeline.stop().await;
}
