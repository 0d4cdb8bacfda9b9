//! Connection-level abuse (issue #12, defects 4 and 6): bodies of one-byte chunks, oversize
//! `Expect: 100-continue`, slow headers, trickling bodies and connection floods. Each test
//! bounds its own time and checks the gateway still answers.

use std::time::{Duration, Instant};

use chaukas_tests::{Pipeline, http_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_answer(stream: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn assert_alive(pipeline: &Pipeline) {
    let (status, _) = http_get(pipeline.http, "/healthz").await;
    assert_eq!(status, 200, "the gateway must still answer");
}

/// Defect 4: one-byte chunks count their framing, so the limit is reached by framing too, and
/// quickly.
#[tokio::test]
async fn one_byte_chunks_reach_the_limit_by_their_framing() {
    let pipeline =
        Pipeline::start_with(|gateway, _| gateway.gateway.max_request_bytes = 64 * 1024).await;
    let mut stream = TcpStream::connect(pipeline.http).await.unwrap();
    stream
        .write_all(
            b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // 64 KiB of data in 1-byte chunks would be 64 Ki frames; framing counts 8 bytes more each,
    // so the refusal must come within ~7,300 chunks. Send 20,000 and read the answer.
    let chunks: Vec<u8> = std::iter::repeat_n(*b"1\r\n\n\r\n", 20_000)
        .flatten()
        .collect();
    let started = Instant::now();
    let _ = stream.write_all(&chunks).await;
    let answer = read_answer(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_alive(&pipeline).await;
    pipeline.stop().await;
}

/// Defect 11: `Expect: 100-continue` with an oversize length is refused before the body.
#[tokio::test]
async fn an_oversize_expect_continue_gets_413_not_100() {
    let pipeline = Pipeline::start().await;
    let mut stream = TcpStream::connect(pipeline.http).await.unwrap();
    stream
        .write_all(
            b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.200}");
    assert!(!answer.contains("100 Continue"), "{answer:.200}");
    pipeline.stop().await;
}

/// Defect 6: slow headers are cut off, a trickling body gets 408, both within their timeouts.
#[tokio::test]
async fn slow_headers_and_trickling_bodies_time_out() {
    let pipeline = Pipeline::start_with(|gateway, _| {
        gateway.gateway.header_read_timeout_ms = 500;
        gateway.gateway.body_timeout_ms = 1_000;
    })
    .await;
    let mut slowloris = TcpStream::connect(pipeline.http).await.unwrap();
    slowloris.write_all(b"POST /v1/events HTT").await.unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut slowloris, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "headers must be cut off near 500 ms, took {:?} ({answer:?})",
        started.elapsed()
    );

    let mut trickle = TcpStream::connect(pipeline.http).await.unwrap();
    trickle
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Content-Length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut trickle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:.200}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let (_, metrics) = http_get(pipeline.http, "/metrics").await;
    assert!(
        metrics.contains("chaukas_gateway_client_timeouts_total{while=\"reading_body\"} 1"),
        "{metrics}"
    );
    assert_alive(&pipeline).await;
    pipeline.stop().await;
}

/// Defect 6: past the connection cap new connections are closed at once and counted; the
/// gateway answers again once the flood is gone.
#[tokio::test]
async fn connections_past_the_cap_are_closed_and_counted() {
    let pipeline = Pipeline::start_with(|gateway, _| gateway.gateway.max_connections = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(pipeline.http).await.unwrap());
    }
    let mut extra = TcpStream::connect(pipeline.http).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await;
    let answer = read_answer(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.is_empty(), "past the cap: closed, got {answer:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, metrics) = http_get(pipeline.http, "/metrics").await;
    assert_eq!(status, 200);
    let refused = metrics
        .lines()
        .find(|line| line.starts_with("chaukas_gateway_connections_refused_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{metrics}");
    pipeline.stop().await;
}
