//! ClickHouse stalled past the writer's statement timeout (issue #13, interleaving 3): the
//! timeout stops only the client, and the server finishes the insert when it wakes up. The
//! retry must not store those rows a second time.

use std::time::Duration;

use chaukas_testkit::PrivateClickHouse;
use chaukas_tests::{Pipeline, SteadyLoad};

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
