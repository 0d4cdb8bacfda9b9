//! The live tail against real NATS and ClickHouse (issue #17): events reach an open tail
//! as they are stored, a reconnect with `Last-Event-ID` resumes under ingestion without loss
//! or repeats, filters apply, a reader that stops reading is cut off with a message (its
//! buffers stay bounded), and `chaukas tail` prints one line per event.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaukas_auth::Scope;
use chaukas_proto::common::v1::{Event, EventStatus, EventType};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, create_key, ingest_with_key};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;

type SseLines = Lines<BufReader<TcpStream>>;

/// One message of the stream.
#[derive(Debug, Default, Clone)]
struct Message {
    id: String,
    event: String,
    data: String,
}

/// Opens `/v1/tail?{query}` (after leaf `last_id`, if given); panics unless it answers 200.
async fn open(pipeline: &Pipeline, key: &str, query: &str, last_id: Option<&str>) -> SseLines {
    let (status, lines) = open_raw(pipeline, key, query, last_id, None).await;
    assert_eq!(status, 200);
    lines
}

/// Opens the tail and returns its status and stream; retries 401 briefly (a new key reaches
/// the gateway through its watch).
async fn open_raw(
    pipeline: &Pipeline,
    key: &str,
    query: &str,
    last_id: Option<&str>,
    receive_buffer: Option<u32>,
) -> (u16, SseLines) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, lines) = connect(pipeline, key, query, last_id, receive_buffer).await;
        if status != 401 || Instant::now() > deadline {
            return (status, lines);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(
    pipeline: &Pipeline,
    key: &str,
    query: &str,
    last_id: Option<&str>,
    receive_buffer: Option<u32>,
) -> (u16, SseLines) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    let mut stream = socket.connect(pipeline.http).await.unwrap();
    let mut request = format!(
        "GET /v1/tail?{query} HTTP/1.0\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n"
    );
    if let Some(id) = last_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let status_line = lines.next_line().await.unwrap().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
    }
    (status, lines)
}

/// The next message (heartbeat comments skipped); `None` when the stream ends.
async fn next(lines: &mut SseLines) -> Option<Message> {
    let mut message = Message::default();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a message within 30 s")
            .unwrap()?;
        if line.is_empty() {
            if message.data.is_empty() && message.event.is_empty() {
                continue;
            }
            return Some(message);
        }
        if let Some(value) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
            message.id = value.to_owned();
        } else if let Some(value) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
            message.event = value.to_owned();
        } else if let Some(value) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            message.data.push_str(value);
        }
    }
}

fn event(id: usize) -> Event {
    let mut event = simple_event("acme", &format!("e{id:05}"));
    event.agent_name = "planner".into();
    event.r#type = if id.is_multiple_of(2) {
        EventType::ToolCallStart as i32
    } else {
        EventType::ToolCallEnd as i32
    };
    event.status = EventStatus::Completed as i32;
    event
}

async fn send(pipeline: &Pipeline, key: &str, ids: std::ops::Range<usize>) -> Instant {
    ingest_with_key(pipeline, key, ids.map(event).collect()).await;
    Instant::now()
}

fn event_id(message: &Message) -> String {
    let value: serde_json::Value = serde_json::from_str(&message.data).unwrap();
    value["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tail_resumes_under_ingestion_without_loss_or_repeats() {
    let pipeline = Pipeline::start().await;
    let key = create_key(&pipeline, "acme", &[Scope::Query, Scope::Ingest]).await;
    // Refusals come before the stream opens.
    let (status, _) = open_raw(&pipeline, &key, "type=NOPE", None, None).await;
    assert_eq!(status, 400);
    let (status, _) = open_raw(&pipeline, &key, "tenant=other", None, None).await;
    assert_eq!(status, 403);

    let mut tail = open(&pipeline, &key, "", None).await;
    let mut filtered = open(&pipeline, &key, "type=TOOL_CALL_END", None).await;
    const TOTAL: usize = 600;
    let sender = {
        let key = key.clone();
        let pipeline = &pipeline;
        async move {
            let mut acked = Vec::new();
            for batch in 0..TOTAL / 50 {
                let at = send(pipeline, &key, batch * 50..(batch + 1) * 50).await;
                acked.push(at);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            acked
        }
    };
    let reader = async {
        // The first connection reads 250 events, then drops; the second resumes after the
        // last id it saw, while ingestion goes on.
        let mut seen: Vec<(u64, String, Instant)> = Vec::new();
        while seen.len() < 250 {
            let message = next(&mut tail).await.expect("stream open");
            seen.push((
                message.id.parse().unwrap(),
                event_id(&message),
                Instant::now(),
            ));
        }
        let last = seen.last().unwrap().0.to_string();
        drop(tail);
        let mut resumed = open(&pipeline, &key, "", Some(&last)).await;
        while seen.len() < TOTAL {
            let message = next(&mut resumed).await.expect("stream open");
            seen.push((
                message.id.parse().unwrap(),
                event_id(&message),
                Instant::now(),
            ));
        }
        seen
    };
    let (acked, seen) = tokio::join!(sender, reader);
    let leaves: Vec<u64> = seen.iter().map(|(leaf, _, _)| *leaf).collect();
    let first = leaves[0];
    assert_eq!(
        leaves,
        (first..first + TOTAL as u64).collect::<Vec<_>>(),
        "consecutive leaves, none lost or repeated"
    );
    let ids: BTreeSet<&String> = seen.iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids.len(), TOTAL);
    // Ack to delivery, per event: the delivery time minus its batch's ack time.
    let mut delays: Vec<Duration> = seen
        .iter()
        .map(|(_, id, delivered)| {
            let index: usize = id[1..].parse().unwrap();
            delivered.saturating_duration_since(acked[index / 50])
        })
        .collect();
    delays.sort();
    println!(
        "tail ack -> delivery over {TOTAL} events: p50 {:?}, p95 {:?}, max {:?}",
        delays[TOTAL / 2],
        delays[TOTAL * 95 / 100],
        delays[TOTAL - 1]
    );
    // The filtered tail got exactly the ends.
    let mut ends = Vec::new();
    while ends.len() < TOTAL / 2 {
        let message = next(&mut filtered).await.expect("stream open");
        ends.push(event_id(&message));
    }
    assert!(
        ends.iter()
            .all(|id| id[1..].parse::<usize>().unwrap() % 2 == 1)
    );

    // `chaukas tail` prints the same events as lines, from a resume point.
    let output = tokio::task::spawn_blocking({
        let key = key.clone();
        let url = format!("http://{}", pipeline.http);
        let from = (first + TOTAL as u64 - 3).to_string();
        move || cli_lines(&url, &key, &from, 2)
    })
    .await
    .unwrap();
    assert_eq!(output.len(), 2, "{output:?}");
    assert!(
        output
            .iter()
            .all(|line| line.contains("planner") && line.contains("TOOL_CALL_"))
    );
    pipeline.stop().await;
}

/// Runs `chaukas tail` resuming after leaf `from` and returns its first `count` lines.
fn cli_lines(url: &str, key: &str, from: &str, count: usize) -> Vec<String> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chaukas"))
        .args(["tail", "--url", url, "--after", from])
        .env("CHAUKAS_API_KEY", key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .take(count)
        .map(Result::unwrap)
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    lines
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_with_a_message() {
    let pipeline = Pipeline::start().await;
    let key = create_key(&pipeline, "acme", &[Scope::Query, Scope::Ingest]).await;
    // A small receive window, and nothing read: the gateway's socket and buffer fill up.
    let (status, mut stalled) = open_raw(&pipeline, &key, "", None, Some(4096)).await;
    assert_eq!(status, 200);
    const TOTAL: usize = 20_000;
    for batch in 0..TOTAL / 500 {
        send(&pipeline, &key, batch * 500..(batch + 1) * 500).await;
    }
    // Past the cut-off time, read what was sent: some events, then the reason, then the end.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut delivered = 0;
    let mut reason = None;
    while let Some(message) = next(&mut stalled).await {
        if message.event == "error" {
            reason = Some(message.data);
            break;
        }
        delivered += 1;
    }
    let reason = reason.expect("the stream ends with an error message");
    assert!(reason.contains("reader too slow"), "{reason}");
    assert!(delivered < TOTAL, "cut off before the end: {delivered}");
    assert!(
        next(&mut stalled).await.is_none(),
        "nothing after the error"
    );
    pipeline.stop().await;
}

/// A pipeline with ten events of tenant `acme` stored (leaves 0 to 9), and a key of it.
async fn ten_stored() -> (Pipeline, String) {
    let pipeline = Pipeline::start().await;
    let key = create_key(&pipeline, "acme", &[Scope::Query, Scope::Ingest]).await;
    send(&pipeline, &key, 0..10).await;
    pipeline
        .assert_stored_once(10, Duration::from_secs(30))
        .await;
    (pipeline, key)
}

/// Runs `mutation` on the pipeline's database and waits until `left` counts 0 rows.
async fn mutate(pipeline: &Pipeline, mutation: &str, left: &str) {
    let client = pipeline.clickhouse_client();
    client.query(mutation).execute().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.query(left).fetch_one::<u64>().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the mutation did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leaves a tail opened at leaf 0 delivers, until it has `count`.
async fn tail_leaves(pipeline: &Pipeline, key: &str, count: usize) -> Vec<u64> {
    let mut tail = open(pipeline, key, "", Some("0")).await;
    let mut leaves = Vec::new();
    while leaves.len() < count {
        let message = next(&mut tail).await.expect("stream open");
        leaves.push(message.id.parse::<u64>().unwrap());
    }
    leaves
}

#[tokio::test]
async fn a_stored_event_missing_from_log_leaves_is_still_delivered() {
    let (pipeline, key) = ten_stored().await;
    // What a server failure between writing `events` and its views would leave: leaf 4
    // stored, but not recorded in `log_leaves`.
    mutate(
        &pipeline,
        "ALTER TABLE log_leaves DELETE WHERE tenant_id = 'acme' AND leaf_index = 4",
        "SELECT count() FROM log_leaves WHERE tenant_id = 'acme' AND leaf_index = 4",
    )
    .await;
    assert_eq!(
        tail_leaves(&pipeline, &key, 9).await,
        (1..10).collect::<Vec<_>>(),
        "leaf 4 read from events, no gap"
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn leaves_recorded_before_their_locations_were_are_found_in_events() {
    let (pipeline, key) = ten_stored().await;
    // Leaves 2..6 as migration 0008 found them: no location. Leaf 7 as an INSERT running
    // during that migration left it: recorded twice, once without a location.
    mutate(
        &pipeline,
        "ALTER TABLE log_leaves UPDATE project_id = '', event_time_ns = 0 \
         WHERE tenant_id = 'acme' AND leaf_index >= 2 AND leaf_index < 6",
        "SELECT count() FROM log_leaves WHERE tenant_id = 'acme' \
         AND leaf_index >= 2 AND leaf_index < 6 AND event_time_ns != 0",
    )
    .await;
    pipeline
        .clickhouse_client()
        .query(
            "INSERT INTO log_leaves (tenant_id, leaf_index, content_hash, event_id) \
             SELECT tenant_id, leaf_index, content_hash, event_id FROM log_leaves \
             WHERE tenant_id = 'acme' AND leaf_index = 7",
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(
        tail_leaves(&pipeline, &key, 9).await,
        (1..10).collect::<Vec<_>>(),
        "every leaf once, in order"
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn one_tenant_cannot_take_every_tail_slot() {
    let pipeline = Pipeline::start_with(|gateway, _| {
        gateway.gateway.max_tails_per_tenant = 2;
        gateway.gateway.max_tails = 3;
    })
    .await;
    let acme = create_key(&pipeline, "acme", &[Scope::Query]).await;
    let other = create_key(&pipeline, "other", &[Scope::Query]).await;
    let first = open(&pipeline, &acme, "", None).await;
    let _second = open(&pipeline, &acme, "", None).await;
    let (status, mut refused) = open_raw(&pipeline, &acme, "", None, None).await;
    assert_eq!(status, 429, "a third tail of one tenant");
    let body = refused.next_line().await.unwrap().unwrap_or_default();
    assert!(
        body.contains("acme") && body.contains("already has 2 tails open"),
        "{body}"
    );
    // Another tenant still gets one; then the gateway's own limit holds.
    let _others = open(&pipeline, &other, "", None).await;
    let (status, _) = open_raw(&pipeline, &other, "", None, None).await;
    assert_eq!(status, 429, "the gateway's fourth tail");
    // A closed tail gives its slot back (noticed within a poll).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = open_raw(&pipeline, &acme, "", None, None).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            Instant::now() < deadline,
            "the closed tail's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pipeline.stop().await;
}
