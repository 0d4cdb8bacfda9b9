//! Rolling upgrades lose nothing: SIGTERM to a writer or a gateway process under load, and
//! every event a gateway acknowledged is stored exactly once; the stopped process exits 0
//! within its grace period.

use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request};

const PER_BATCH: u64 = 200;

/// A `chaukas <role>` process sharing the pipeline's NATS stream and database.
fn spawn(pipeline: &Pipeline, role: &str, extra: &[(&str, String)]) -> Child {
    let mut command = chaukas_tests::role_command(env!("CARGO_BIN_EXE_chaukas"), pipeline, role);
    for (key, value) in extra {
        command.env(key, value);
    }
    command.spawn().expect("the chaukas binary starts")
}

/// SIGTERM, then the exit status once the process is gone (at most `grace`).
async fn terminate(child: &mut Child, grace: Duration) -> ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM delivered");
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit within {grace:?} of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `batches` batches to `addr` (then to `fallback` once `addr` refuses, as a load
/// balancer would), counting what was acknowledged.
async fn send(
    addr: std::net::SocketAddr,
    fallback: std::net::SocketAddr,
    prefix: String,
    batches: u64,
    acked: Arc<AtomicU64>,
    switched_senders: Arc<AtomicU64>,
    acked_before_switch: Arc<AtomicU64>,
) {
    let mut client = ChaukasServerServiceClient::new(chaukas_tests::channel(addr).await);
    let mut switched = false;
    let mut batch = 0;
    while batch < batches {
        let events = (0..PER_BATCH)
            .map(|i| {
                simple_event(
                    &format!("tenant-{}", i % 5),
                    &format!("{prefix}-b{batch}-e{i}"),
                )
            })
            .collect();
        match client.ingest_event_batch(batch_request(events)).await {
            Ok(response) => {
                let accepted = u64::try_from(response.into_inner().accepted_count).unwrap();
                acked.fetch_add(accepted, Ordering::Relaxed);
                if !switched {
                    acked_before_switch.fetch_add(accepted, Ordering::Relaxed);
                }
                batch += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Not acknowledged: the client retries the same batch elsewhere.
            Err(status) => {
                assert!(!switched, "the fallback gateway refused: {status}");
                switched = true;
                switched_senders.fetch_add(1, Ordering::Relaxed);
                client = ChaukasServerServiceClient::new(chaukas_tests::channel(fallback).await);
            }
        }
    }
}

async fn assert_stored_exactly_once(pipeline: &Pipeline, acked: u64) {
    let stored = pipeline
        .wait_for_rows(acked, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stored_later = pipeline.row_count().await;
    let distinct = pipeline.distinct_keys().await;
    assert_eq!(
        (stored, stored_later, distinct),
        (acked, acked, acked),
        "every acknowledged event stored, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stopped_with_sigterm_stores_what_it_holds_and_exits_cleanly() {
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let mut writer = spawn(&pipeline, "writer", &[]);
    let acked = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..3)
        .map(|sender| {
            tokio::spawn(send(
                pipeline.grpc,
                pipeline.grpc,
                format!("w{sender}"),
                // Enough batches to outlast two restarts, with room: the gateway acks faster
                // than writers store, so the senders' pace does not depend on the writer.
                400,
                acked.clone(),
                Arc::default(),
                Arc::default(),
            ))
        })
        .collect();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let status = terminate(&mut writer, Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "the writer exits 0 after SIGTERM: {status}"
        );
        writer = spawn(&pipeline, "writer", &[]);
    }
    assert!(
        senders.iter().any(|sender| !sender.is_finished()),
        "the load outlasts both restarts"
    );
    for sender in senders {
        sender.await.unwrap();
    }
    assert_stored_exactly_once(&pipeline, acked.load(Ordering::Relaxed)).await;
    let status = terminate(&mut writer, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_stopped_with_sigterm_under_load_loses_no_acknowledged_event() {
    const BATCHES: u64 = 150;
    // The in-process gateway is the survivor; the process gateway is the one upgraded away.
    let pipeline = Pipeline::start().await;
    let grpc_port = chaukas_testkit::free_port();
    let mut gateway = spawn(
        &pipeline,
        "gateway",
        &[
            (
                "CHAUKAS_GATEWAY__GRPC_LISTEN",
                format!("127.0.0.1:{grpc_port}"),
            ),
            (
                "CHAUKAS_GATEWAY__HTTP_LISTEN",
                format!("127.0.0.1:{}", chaukas_testkit::free_port()),
            ),
        ],
    );
    let address: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(Instant::now() < deadline, "the gateway process listens");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let acked = Arc::new(AtomicU64::new(0));
    let switched = Arc::new(AtomicU64::new(0));
    let acked_by_stopped_gateway = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            tokio::spawn(send(
                address,
                pipeline.grpc,
                format!("g{sender}"),
                BATCHES,
                acked.clone(),
                switched.clone(),
                acked_by_stopped_gateway.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = terminate(&mut gateway, Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "the gateway exits 0 after SIGTERM: {status}"
    );
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(
        switched.load(Ordering::Relaxed),
        4,
        "every sender was still sending when the gateway stopped"
    );
    let before = acked_by_stopped_gateway.load(Ordering::Relaxed);
    assert!(
        before > 0 && before < 4 * BATCHES * PER_BATCH,
        "the stopped gateway acknowledged part of the load ({before} events) before SIGTERM"
    );
    assert_eq!(acked.load(Ordering::Relaxed), 4 * BATCHES * PER_BATCH);
    assert_stored_exactly_once(&pipeline, 4 * BATCHES * PER_BATCH).await;
    pipeline.stop().await;
}
