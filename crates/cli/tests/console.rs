//! The console in a real browser (issue #17): Debian's headless Chromium, driven by
//! playwright-core (`tests/browser/console.mjs`), against a gateway, writer and query
//! service on real NATS and ClickHouse. Screenshots of each page are kept in
//! `target/console-screenshots/` as test artifacts.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`make test` installs both:
//! `tests/browser/setup.sh`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chaukas_auth::Scope;
use chaukas_proto::common::v1::{Event, EventStatus, EventType};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, create_key, ingest_with_key};
use serde_json::json;

/// A session with a model call whose messages the console shows as a chat.
fn console_session() -> Vec<Event> {
    let event = |value: serde_json::Value| -> Event { chaukas_json::from_value(value).unwrap() };
    let base = json!({"tenant_id": "acme", "project_id": "p", "session_id": "s-console",
                      "agent_name": "support-agent"});
    let with = |extra: serde_json::Value| {
        let mut value = base.clone();
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event(value)
    };
    vec![
        with(
            json!({"event_id": "k0", "type": "SESSION_START", "status": "STARTED", "span_id": "root",
                    "timestamp": "2025-11-24T16:00:00Z"}),
        ),
        with(
            json!({"event_id": "k1", "type": "MODEL_INVOCATION_START", "status": "STARTED",
                    "span_id": "m1", "parent_span_id": "root", "timestamp": "2025-11-24T16:00:01Z",
                    "content": {"kind": "llm_invocation", "provider": "openai", "model": "gpt-4o",
                      "request": {"messages": [
                        {"role": "system", "content": "You answer questions about orders."},
                        {"role": "user", "content": "What is the refund policy?"}]}}}),
        ),
        with(
            json!({"event_id": "k2", "type": "MODEL_INVOCATION_END", "status": "COMPLETED",
                    "span_id": "m1", "parent_span_id": "root", "timestamp": "2025-11-24T16:00:03Z",
                    "content": {"kind": "llm_invocation", "provider": "openai", "model": "gpt-4o",
                      "prompt_tokens": 42, "completion_tokens": 17,
                      "request": {"messages": [
                        {"role": "system", "content": "You answer questions about orders."},
                        {"role": "user", "content": "What is the refund policy?"}]},
                      "response": {"content": "Refunds are accepted within 30 days."}}}),
        ),
        with(
            json!({"event_id": "k3", "type": "TOOL_CALL_START", "status": "STARTED", "span_id": "t1",
                    "parent_span_id": "root", "timestamp": "2025-11-24T16:00:04Z",
                    "content": {"kind": "tool_call", "name": "lookup_order", "arguments": {"order": 1234}}}),
        ),
        with(
            json!({"event_id": "k4", "type": "TOOL_CALL_END", "status": "COMPLETED", "span_id": "t1",
                    "parent_span_id": "root", "timestamp": "2025-11-24T16:00:05Z"}),
        ),
        with(
            json!({"event_id": "k5", "type": "TOOL_CALL_START", "status": "STARTED", "span_id": "t2",
                    "parent_span_id": "root", "timestamp": "2025-11-24T16:00:06Z",
                    "content": {"kind": "tool_call", "name": "export_report", "arguments": {"month": "2025-10"}}}),
        ),
        with(
            json!({"event_id": "k6", "type": "TOOL_CALL_END", "status": "COMPLETED", "span_id": "t2",
                    "parent_span_id": "root", "timestamp": "2025-11-24T16:00:08Z",
                    "content": {"kind": "tool_response", "tool_call_id": "t2",
                                "output": {"rows": report_rows()}}}),
        ),
        with(
            json!({"event_id": "k9", "type": "SESSION_END", "status": "COMPLETED", "span_id": "root",
                    "timestamp": "2025-11-24T16:00:09Z"}),
        ),
    ]
}

/// The rows of a tool's exported report: about 5 MB once encoded, for the console to show
/// without freezing.
fn report_rows() -> serde_json::Value {
    (0..42_000)
        .map(|i| {
            json!({"id": i, "customer": format!("customer-{i:06}"),
                   "note": "one line of an exported monthly report, as long as real ones"})
        })
        .collect()
}

/// Events up to 6 MiB are let in (NATS takes 8 MiB messages in the harness): the default
/// limit is 512 KiB, and raising it is how a deployment accepts large tool results.
const LARGE_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// A session of `spans` tool calls, one START and one END each.
fn big_session(spans: usize) -> Vec<Event> {
    (0..spans * 2)
        .map(|i| {
            let mut event = simple_event("acme", &format!("big-{i:06}"));
            event.session_id = "s-big".into();
            event.span_id = format!("span-{:05}", i / 2);
            event.r#type = if i % 2 == 0 {
                EventType::ToolCallStart
            } else {
                EventType::ToolCallEnd
            } as i32;
            event.status = EventStatus::Completed as i32;
            event.timestamp = Some(prost_types::Timestamp {
                seconds: 1_764_000_000 + (i / 2) as i64,
                nanos: (i % 2) as i32 * 500_000_000,
            });
            event
        })
        .collect()
}

#[tokio::test]
async fn the_console_works_in_headless_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists()
            && browser_dir.join("node_modules/playwright-core").exists(),
        "needs {chromium} and tests/browser/node_modules: run `bash tests/browser/setup.sh` (make test does)"
    );
    let pipeline = Pipeline::start_with(|gateway, writer| {
        gateway.gateway.max_event_bytes = LARGE_EVENT_BYTES;
        // The shared [nats] section: the stream's message limit follows it.
        gateway.nats.max_message_bytes = LARGE_EVENT_BYTES + 64 * 1024;
        writer.nats.max_message_bytes = gateway.nats.max_message_bytes;
    })
    .await;
    let key = create_key(
        &pipeline,
        "acme",
        &[Scope::Query, Scope::Ingest, Scope::Stats],
    )
    .await;
    let small = console_session();
    let report = prost::Message::encoded_len(&small[6]);
    assert!(
        (5_000_000..LARGE_EVENT_BYTES).contains(&report),
        "the report event is {report} bytes, not about 5 MB"
    );
    let big = big_session(10_000);
    let total = (small.len() + big.len()) as u64;
    ingest_with_key(&pipeline, &key, small).await;
    for chunk in big.chunks(500) {
        ingest_with_key(&pipeline, &key, chunk.to_vec()).await;
    }
    pipeline
        .assert_stored_once(total, Duration::from_secs(60))
        .await;
    wait_for_checkpoint(&pipeline, total).await;

    let shots = root.join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let args = [
        "console.mjs".to_owned(),
        format!("http://{}", pipeline.http),
        key,
        "s-console".into(),
        "s-big".into(),
        shots.display().to_string(),
    ];
    let output = tokio::task::spawn_blocking({
        let browser_dir = browser_dir.clone();
        move || {
            std::process::Command::new("node")
                .current_dir(&browser_dir)
                .env("CHROMIUM", &chromium)
                .args(args)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stderr}\n{stdout}"
    );
    println!("console: {stdout}");
    for page in [
        "sessions",
        "session",
        "event",
        "large-result",
        "stats",
        "tail",
        "big-session",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
    pipeline.stop().await;
}

/// Waits until the tenant's signed checkpoint covers `size` leaves (the console verifies an
/// inclusion proof against it).
async fn wait_for_checkpoint(pipeline: &Pipeline, size: u64) {
    let client = pipeline.clickhouse_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let latest = chaukas_store::log::latest_checkpoint(&client, "acme")
            .await
            .unwrap();
        if latest.is_some_and(|row| row.tree_size >= size) {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
