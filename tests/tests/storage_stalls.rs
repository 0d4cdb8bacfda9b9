//! ClickHouse stalled past the writer's statement timeout (issue #13, interleaving 3): the
//! timeout stops only the client, and the server finishes the insert when it wakes up. The
//! retry must not store those rows a second time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chaukas_testkit::PrivateClickHouse;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_a_stalled_clickhouse_finishes_late_are_not_stored_twice() {
    let clickhouse = PrivateClickHouse::start();
    let pipeline = Pipeline::start_custom(Some(clickhouse.url()), true, |_, _| {}).await;
    let acked = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let (acked, running) = (acked.clone(), running.clone());
        let mut client = pipeline.server_client().await;
        tokio::spawn(async move {
            let mut batch_number = 0;
            while running.load(Ordering::Relaxed) {
                let events = (0..200)
                    .map(|i| simple_event("tenant-stall", &format!("b{batch_number}-e{i}")))
                    .collect();
                let response = client
                    .ingest_event_batch(batch_request(events))
                    .await
                    .expect("the gateway keeps accepting while ClickHouse stalls");
                acked.fetch_add(
                    u64::try_from(response.into_inner().accepted_count).unwrap(),
                    Ordering::Relaxed,
                );
                batch_number += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Three stalls, each longer than the 3 s statement timeout of the test writer.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        clickhouse.pause();
        tokio::time::sleep(Duration::from_secs(5)).await;
        clickhouse.resume();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    load.await.unwrap();

    let total = acked.load(Ordering::Relaxed);
    assert_eq!(
        pipeline
            .wait_for_rows(total, Duration::from_secs(120))
            .await,
        total,
        "every acknowledged event stored, none twice"
    );
    assert_eq!(pipeline.distinct_keys().await, total);
    pipeline.stop().await;
}
