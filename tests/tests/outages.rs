//! Ingestion while the bus or the store is away: nothing accepted is lost or duplicated,
//! and nothing needs a restart to recover.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chaukas_proto::server::v1 as server;
use chaukas_testkit::fault_proxy::{FaultProxy, FaultRate};
use chaukas_testkit::{PrivateClickHouse, PrivateNats};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, SteadyLoad, batch_request};

#[tokio::test]
async fn a_nats_outage_answers_unavailable_in_time_and_ingestion_resumes_on_its_own() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let pipeline = Pipeline::start_with(|gateway, writer| {
        gateway.nats.url = url.clone();
        gateway.gateway.publish_timeout_ms = 2_000;
        writer.nats.url = url.clone();
    })
    .await;
    let mut client = pipeline.server_client().await;
    let ingest = |id: &str| server::IngestEventRequest {
        event: Some(simple_event("tenant-nats", id)),
    };
    client.ingest_event(ingest("before")).await.unwrap();

    nats.stop();
    let started = Instant::now();
    let status = client.ingest_event(ingest("during")).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    assert!(status.metadata().get("retry-after").is_some());
    assert!(status.message().contains("retry"), "{}", status.message());

    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.ingest_event(ingest("during")).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable);
                assert!(
                    Instant::now() < deadline,
                    "gateway did not recover: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    client.ingest_event(ingest("after")).await.unwrap();
    assert_eq!(pipeline.wait_for_rows(3, Duration::from_secs(60)).await, 3);
    pipeline.stop().await;
}

#[tokio::test]
async fn a_clickhouse_outage_is_absorbed_by_the_bus_and_drained_without_loss() {
    let clickhouse = PrivateClickHouse::start();
    let pipeline = Pipeline::start_custom(Some(clickhouse.url()), true, |_, _| {}).await;
    let load = SteadyLoad::start(&pipeline, "tenant-ch", 100, Duration::from_millis(50)).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    clickhouse.stop();
    let acked_at_stop = load.acked();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        load.acked() > acked_at_stop + 1_000,
        "ingestion went on while ClickHouse was down"
    );
    clickhouse.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = load.stop().await;
    pipeline
        .assert_stored_once(total, Duration::from_secs(120))
        .await;
    pipeline.stop().await;
}

fn batch_of(tenant: &str, prefix: &str, count: usize) -> server::IngestEventBatchRequest {
    batch_request(
        (0..count)
            .map(|i| {
                let mut event = simple_event(tenant, &format!("{prefix}-{i}"));
                event.agent_name = "x".repeat(900);
                event
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_full_stream_answers_unavailable_saying_so() {
    // No writer drains the stream, and it holds at most 256 KiB.
    let pipeline = Pipeline::start_custom(None, false, |gateway, _| {
        gateway.nats.max_bytes = 256 * 1024;
    })
    .await;
    let mut client = pipeline.server_client().await;
    let mut accepted = 0;
    let status = loop {
        match client
            .ingest_event_batch(batch_of("tenant-full", &format!("b{accepted}"), 50))
            .await
        {
            Ok(_) => accepted += 1,
            Err(status) => break status,
        }
        assert!(accepted < 100, "the stream never filled up");
    };
    assert!(accepted >= 3, "only {accepted} batches fit");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("full"), "{}", status.message());
    assert!(status.metadata().get("retry-after").is_some());
    pipeline.stop().await;
}

#[tokio::test]
async fn too_much_in_flight_is_shed_with_the_sdk_overload_wording() {
    // While NATS is away every publish waits its full timeout, holding its bytes.
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let pipeline = Pipeline::start_custom(None, false, |gateway, _| {
        gateway.nats.url = url.clone();
        gateway.gateway.publish_timeout_ms = 3_000;
        gateway.gateway.max_inflight_bytes = 64 * 1024;
    })
    .await;
    nats.stop();
    let mut holder = pipeline.server_client().await;
    let waiting = tokio::spawn(async move {
        holder
            .ingest_event_batch(batch_of("tenant-shed", "first", 60))
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = pipeline
        .server_client()
        .await
        .ingest_event_batch(batch_of("tenant-shed", "second", 10))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.message().contains("high memory usage"),
        "{}",
        status.message()
    );
    let first = waiting.await.unwrap().unwrap_err();
    assert_eq!(first.code(), tonic::Code::Unavailable);
    assert!(
        first.message().contains("did not acknowledge"),
        "{}",
        first.message()
    );
    pipeline.stop().await;
}

/// A shard consumer that vanishes while no pull request of the writer is pending (deleted
/// by hand, lost by NATS) answers nothing to the next request, ever: the writer must take
/// the shard over again instead of pulling the vanished consumer forever. Seen in CI as a
/// shard left unpulled; here the writer's next pull request is held in a proxy while the
/// consumer is deleted, so it reaches a server that no longer has the consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_vanishing_between_pulls_does_not_stall_its_shard() {
    let proxy = FaultProxy::start(nats_addr(), 17).await;
    let proxied = format!("nats://{}", proxy.addr);
    let pipeline = Pipeline::start_with(|_, writer| writer.nats.url = proxied).await;
    let tenant = "tenant-vanished-consumer";
    let load = SteadyLoad::start(&pipeline, tenant, 20, Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stream = async_nats::jetstream::new(pipeline.nats.connect().await.unwrap())
        .get_stream(&pipeline.nats.stream)
        .await
        .unwrap();
    let shard = chaukas_bus::shard_of(tenant, pipeline.nats.shards);
    // Hold the writer's next pull requests (the pending ones end within a second), delete
    // the consumer meanwhile, then let the held requests through.
    proxy.set_rate(FaultRate {
        per_million: 1_000_000,
        stall: Duration::from_secs(2),
        only_containing: &["CONSUMER.MSG.NEXT"],
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stream
        .delete_consumer(&chaukas_writer::consumer::consumer_name(shard))
        .await
        .unwrap();
    proxy.set_rate(FaultRate::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total = load.stop().await;
    assert!(
        proxy.counts().stalls.load(Ordering::Relaxed) > 0,
        "no pull request was held"
    );
    pipeline
        .assert_stored_once(total, Duration::from_secs(60))
        .await;
    pipeline.stop().await;
}

/// The harness NATS as a socket address, for a proxy in front of it.
fn nats_addr() -> std::net::SocketAddr {
    chaukas_testkit::nats_url()
        .trim_start_matches("nats://")
        .parse()
        .expect("the harness NATS URL is nats://<ip>:<port>")
}
