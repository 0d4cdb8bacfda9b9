//! `chaukas-abuse` (`make abuse`): floods a running stack the way the hostile tester did and
//! prints, per attack, the gateway's peak RSS, the writer's, and the `/healthz` latency seen
//! meanwhile; at the end, how long the gateway takes to fall back under 200 MiB.
//!
//! Attacks: 50 clients x 16 MiB gRPC batches (half empty events on the wire, half valid
//! 400 KiB events), slowloris (2,000 connections trickling headers), 300 never-ending chunked
//! bodies, 16 uploads of one-byte chunks, and JSON reads of pages of large events.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chaukas_proto::common::v1::{Event, EventBatch, EventType, ToolCall, event::Content};
use chaukas_proto::server::v1::IngestEventBatchRequest;
use chaukas_testkit::raw_grpc::{self, INGEST_BATCH, empty_events_batch};
use clap::Parser;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The stack's pid files (`.run/pids`).
    #[arg(long, default_value = ".run/pids")]
    pids: PathBuf,
    /// Seconds each attack lasts.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let gateway = pid(&args.pids, "gateway")?;
    let writer = pid(&args.pids, "writer")?;
    println!(
        "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "attack", "gw MiB", "writer MiB", "hz p50", "hz p99", "hz fail"
    );
    let attacks: [(&str, Launcher); 5] = [
        ("50 x 16 MiB gRPC batches", grpc_floods),
        ("slowloris: 2000 connections", slowloris),
        ("300 never-ending chunked bodies", endless_bodies),
        ("16 uploads of 1-byte chunks", tiny_chunks),
        ("JSON reads of large pages", json_reads),
    ];
    for (name, attack) in attacks {
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(attack(args.clone(), stop.clone()));
        let report = observe(&args, gateway, writer, Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(30), load).await;
        println!(
            "{name:<34} {:>10.0} {:>10.0} {:>7.1}ms {:>7.1}ms {:>8}",
            report.gateway_peak_mib,
            report.writer_peak_mib,
            report.p50_ms,
            report.p99_ms,
            report.failures
        );
    }
    let started = Instant::now();
    let settled = loop {
        let rss = rss_mib(gateway).unwrap_or(0.0);
        if rss < 200.0 {
            break Some((started.elapsed(), rss));
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    match settled {
        Some((after, rss)) => println!(
            "gateway RSS back under 200 MiB after {:.1} s ({rss:.0} MiB); writer {:.0} MiB",
            after.as_secs_f64(),
            rss_mib(writer).unwrap_or(0.0)
        ),
        None => println!(
            "gateway RSS still {:.0} MiB a minute after the load stopped",
            rss_mib(gateway).unwrap_or(0.0)
        ),
    }
    Ok(())
}

type Attack = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
/// Starts an attack that runs until its flag is set.
type Launcher = fn(Arc<Args>, Arc<AtomicBool>) -> Attack;

fn pid(dir: &std::path::Path, name: &str) -> anyhow::Result<u32> {
    let path = dir.join(format!("{name}.pid"));
    std::fs::read_to_string(&path)
        .with_context(|| format!("{} (is the stack up?)", path.display()))?
        .trim()
        .parse()
        .context("pid file")
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

struct Report {
    gateway_peak_mib: f64,
    writer_peak_mib: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: usize,
}

/// Probes `/healthz` every 20 ms on a fresh connection and samples RSS, for `length`.
async fn observe(args: &Args, gateway: u32, writer: u32, length: Duration) -> Report {
    let end = Instant::now() + length;
    let (mut gateway_peak, mut writer_peak) = (0.0_f64, 0.0_f64);
    let mut latencies = Vec::new();
    let mut failures = 0;
    while Instant::now() < end {
        gateway_peak = gateway_peak.max(rss_mib(gateway).unwrap_or(0.0));
        writer_peak = writer_peak.max(rss_mib(writer).unwrap_or(0.0));
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(2), healthz(args.http)).await {
            Ok(true) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * quantile).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Report {
        gateway_peak_mib: gateway_peak,
        writer_peak_mib: writer_peak,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        failures,
    }
}

async fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200")
}

/// A valid batch just under 16 MiB: 38 events of 400 KiB.
fn large_valid_batch(client: usize, round: u64) -> Vec<u8> {
    let text = "z".repeat(400 * 1024);
    let events = (0..38)
        .map(|index| Event {
            event_id: format!("abuse-{client}-{round}-{index}"),
            tenant_id: "abuse".into(),
            r#type: EventType::ToolCallStart as i32,
            content: Some(Content::ToolCall(ToolCall {
                name: text.clone(),
                ..ToolCall::default()
            })),
            ..Event::default()
        })
        .collect();
    IngestEventBatchRequest {
        event_batch: Some(EventBatch {
            events,
            ..EventBatch::default()
        }),
    }
    .encode_to_vec()
}

fn grpc_floods(args: Arc<Args>, stop: Arc<AtomicBool>) -> Attack {
    Box::pin(async move {
        // Built once per client and resent: the attacker's own CPU should not be what slows
        // the box. Each valid batch is new to the writer once (400 MiB of events in all).
        let empty = bytes::Bytes::from(empty_events_batch(8_000_000));
        let clients = (0..50).map(|client| {
            let stop = stop.clone();
            let addr = args.grpc;
            let body = if client % 2 == 0 {
                empty.clone()
            } else {
                bytes::Bytes::from(large_valid_batch(client, 0))
            };
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = raw_grpc::call(addr, INGEST_BATCH, body.clone(), None).await;
                }
            })
        });
        for client in clients.collect::<Vec<_>>() {
            let _ = client.await;
        }
    })
}

/// Opens `count` connections that send `head` then one byte of `trickle` per second.
async fn trickle(
    addr: SocketAddr,
    count: usize,
    head: &'static [u8],
    trickle: &'static [u8],
    stop: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let stop = stop.clone();
            let open = open.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    open.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(head).await;
                    for byte in trickle.iter().cycle() {
                        if stop.load(Ordering::Relaxed) || stream.write_all(&[*byte]).await.is_err()
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

fn slowloris(args: Arc<Args>, stop: Arc<AtomicBool>) -> Attack {
    Box::pin(trickle(
        args.http,
        2_000,
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\n",
        b"X-a: b\r\n",
        stop,
    ))
}

fn endless_bodies(args: Arc<Args>, stop: Arc<AtomicBool>) -> Attack {
    Box::pin(trickle(
        args.http,
        300,
        b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1\r\n\n\r\n",
        stop,
    ))
}

fn tiny_chunks(args: Arc<Args>, stop: Arc<AtomicBool>) -> Attack {
    Box::pin(async move {
        let chunks: Arc<Vec<u8>> = Arc::new(
            std::iter::repeat_n(*b"1\r\n\n\r\n", 3_000_000)
                .flatten()
                .collect(),
        );
        let uploads: Vec<_> = (0..16)
            .map(|_| {
                let stop = stop.clone();
                let chunks = chunks.clone();
                let addr = args.http;
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = TcpStream::connect(addr).await else {
                            continue;
                        };
                        let _ = stream
                            .write_all(b"POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n")
                            .await;
                        let _ = stream.write_all(&chunks).await;
                        let mut answer = Vec::new();
                        let _ = stream.read_to_end(&mut answer).await;
                    }
                })
            })
            .collect();
        for upload in uploads {
            let _ = upload.await;
        }
    })
}

fn json_reads(args: Arc<Args>, stop: Arc<AtomicBool>) -> Attack {
    Box::pin(async move {
        // 150 events of ~400 KiB for the readers to page through.
        for round in 0..4 {
            let _ =
                raw_grpc::call(args.grpc, INGEST_BATCH, large_valid_batch(999, round), None).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let body = br#"{"filter": {"tenant_id": "abuse"}, "page_size": 1000}"#;
        let readers: Vec<_> = (0..20)
            .map(|_| {
                let stop = stop.clone();
                let addr = args.http;
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = TcpStream::connect(addr).await else {
                            continue;
                        };
                        let head = format!(
                            "POST /v1/query HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(body).await;
                        let mut answer = Vec::new();
                        let _ = stream.read_to_end(&mut answer).await;
                    }
                })
            })
            .collect();
        for reader in readers {
            let _ = reader.await;
        }
    })
}
