//! The memory a hostile request can make a real gateway process hold (issue #12, defect 2):
//! 2 MB and 16 MB batches of empty events on the wire (`1a 00` each), with no key and with a
//! garbage key, once raised the gateway's peak RSS from 13 MiB to 1.1 GiB and ~9 GiB. OTLP
//! exports of empty spans (`12 00` each) are tried the same way.

use std::process::Child;
use std::time::{Duration, Instant};

use chaukas_tests::Pipeline;
use chaukas_tests::raw_grpc::{
    self, INGEST_BATCH, OTLP_EXPORT, empty_events_batch, empty_spans_export,
};
use tonic::Code;

/// Peak RSS the attacks may leave the gateway at: its idle size (tens of MiB) plus what the
/// largest legal request may cost (16 MiB twice), with room to spare — far below the
/// gigabytes decoding before admission cost.
const PEAK_RSS_BOUND_KIB: u64 = 160 * 1024;

fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_event_floods_do_not_grow_the_gateway() {
    let pipeline = Pipeline::start().await;
    let grpc_port = chaukas_testkit::free_port();
    let mut command =
        chaukas_tests::role_command(env!("CARGO_BIN_EXE_chaukas"), &pipeline, "gateway");
    command
        .env(
            "CHAUKAS_GATEWAY__GRPC_LISTEN",
            format!("127.0.0.1:{grpc_port}"),
        )
        .env(
            "CHAUKAS_GATEWAY__HTTP_LISTEN",
            format!("127.0.0.1:{}", chaukas_testkit::free_port()),
        );
    let mut gateway = command.spawn().expect("the chaukas binary starts");
    let address: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(Instant::now() < deadline, "the gateway process listens");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = peak_rss_kib(&gateway);

    for (events, key, expected) in [
        (1_000_000, None, Code::InvalidArgument),
        (1_000_000, Some("chk_garbage"), Code::Unauthenticated),
        (8_000_000, None, Code::InvalidArgument),
        (8_000_000, Some("chk_garbage"), Code::Unauthenticated),
    ] {
        let answer = raw_grpc::call(address, INGEST_BATCH, empty_events_batch(events), key)
            .await
            .unwrap_err();
        assert_eq!(
            answer.code(),
            expected,
            "{events} events, key {key:?}: {answer:?}"
        );
    }
    // The same over OTLP: empty spans are weighed from the bytes, before decoding. (This
    // gateway lets keyless requests in, as a laptop's does.)
    for (spans, key, expected) in [
        (8_000_000, None, Code::ResourceExhausted),
        (8_000_000, Some("chk_garbage"), Code::Unauthenticated),
        (1_000_000, None, Code::ResourceExhausted),
    ] {
        let answer = raw_grpc::call(address, OTLP_EXPORT, empty_spans_export(spans), key)
            .await
            .unwrap_err();
        assert_eq!(
            answer.code(),
            expected,
            "{spans} spans, key {key:?}: {answer:?}"
        );
    }
    // Under the limit: decoded, every span refused by the mapping, the answer says so.
    let answer = raw_grpc::call(address, OTLP_EXPORT, empty_spans_export(10_000), None)
        .await
        .unwrap();
    assert!(
        !answer.is_empty(),
        "a partial_success names the 10000 refused spans"
    );
    let after = peak_rss_kib(&gateway);
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    println!("gateway peak RSS: {before} KiB before the attacks, {after} KiB after");
    assert!(
        after < PEAK_RSS_BOUND_KIB,
        "peak RSS {after} KiB (was {before} KiB) exceeds {PEAK_RSS_BOUND_KIB} KiB"
    );
    pipeline.stop().await;
}
