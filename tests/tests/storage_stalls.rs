//! ClickHouse stalled past the writer's statement timeout (issue #13, interleaving 3): the
//! timeout stops only the client, and the server finishes the insert when it wakes up. The
//! retry must not store those rows a second time. Also interleaving 2: messages that come
//! back while their own insert still runs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chaukas_testkit::PrivateClickHouse;
use chaukas_testkit::fault_proxy::{FaultProxy, FaultRate};
use chaukas_tests::{Pipeline, SteadyLoad};

/// A pipeline whose writer reaches the harness ClickHouse through a [`FaultProxy`].
async fn behind_a_proxy(seed: u64) -> (FaultProxy, Pipeline) {
    let proxy = FaultProxy::start(chaukas_testkit::clickhouse_addr(), seed).await;
    let proxied = format!("http://{}", proxy.addr);
    let pipeline = Pipeline::start_with(|_, writer| writer.clickhouse.url = proxied).await;
    (proxy, pipeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_a_stalled_clickhouse_finishes_late_are_not_stored_twice() {
    let clickhouse = PrivateClickHouse::start();
    let pipeline = Pipeline::start_custom(Some(clickhouse.url()), true, |_, _| {}).await;
    let load = SteadyLoad::start(&pipeline, "tenant-stall", 200, Duration::from_millis(20)).await;
    // Three stalls, each longer than the 3 s statement timeout of the test writer.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        clickhouse.pause();
        tokio::time::sleep(Duration::from_secs(5)).await;
        clickhouse.resume();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = load.stop().await;
    pipeline
        .assert_stored_once(total, Duration::from_secs(120))
        .await;
    pipeline.stop().await;
}

/// The same interleaving without pausing the server: for a while every statement that
/// writes `events` is held 4 s on its way (past the 3 s statement timeout), so the writer
/// gives up on statements the server then receives whole and commits; ClickHouse 18.16
/// does not even list such an INSERT in `system.processes` before its body has arrived. Each
/// acknowledged event must still be stored once (the writer moves rows in from a stage it
/// drops before retrying: a late move cannot commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_commit_after_the_writer_gave_up_are_not_stored_twice() {
    let (proxy, pipeline) = behind_a_proxy(13).await;
    let load = SteadyLoad::start(&pipeline, "tenant-late", 100, Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Only the statements that write `events` (a row insert, or a move from a stage) are
    // held: the writer's checks get through at once, so a retry's "stored?" check runs while
    // the statement it gave up on has yet to commit.
    proxy.set_rate(FaultRate {
        per_million: 1_000_000,
        stall: Duration::from_secs(4),
        only_containing: &[
            "INSERT INTO events",
            "INSERT%20INTO%20events",
            "INSERT+INTO+events",
        ],
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.set_rate(FaultRate::default());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let total = load.stop().await;
    assert!(
        proxy.counts().stalls.load(Ordering::Relaxed) > 0,
        "no statement was stalled"
    );
    pipeline
        .assert_stored_once(total, Duration::from_secs(120))
        .await;
    pipeline.stop().await;
}

/// Issue #13, interleaving 2: messages of a batch whose insert is still running come back
/// (here: their consumer is deleted, so the writer re-creates it and gets every unstored
/// message again) and land in the next batch, which finds their claims but not yet their
/// rows. That batch must wait for the insert in flight before deciding what is stored, or it
/// stores them a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_back_while_their_insert_runs_are_not_stored_twice() {
    let (proxy, pipeline) = behind_a_proxy(2).await;
    let tenant = "tenant-in-flight";
    let load = SteadyLoad::start(&pipeline, tenant, 100, Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Hold the statements that write `events` for 2 s (inside the 3 s statement timeout):
    // the insert of a batch is in flight while its messages come back.
    proxy.set_rate(FaultRate {
        per_million: 1_000_000,
        stall: Duration::from_secs(2),
        only_containing: &[
            "INSERT INTO events",
            "INSERT%20INTO%20events",
            "INSERT+INTO+events",
        ],
    });
    let client = pipeline.nats.connect().await.unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(&pipeline.nats.stream)
        .await
        .unwrap();
    let shard = chaukas_bus::shard_of(tenant, pipeline.nats.shards);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let _ = stream
            .delete_consumer(&chaukas_writer::consumer::consumer_name(shard))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_rate(FaultRate::default());
    let total = load.stop().await;
    pipeline
        .assert_stored_once(total, Duration::from_secs(120))
        .await;
    pipeline.stop().await;
}
