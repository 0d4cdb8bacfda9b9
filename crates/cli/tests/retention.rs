//! `chaukas retention apply` against real NATS and ClickHouse (issue #15): only events past
//! the maximum retention go, never inside a minimum, never under a hold; the run is in the
//! tenant's log; `chaukas verify` still passes, naming the pruned leaves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, message::PublishMessage};
use chaukas_proto::common::v1::Event;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request, nats_env};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

fn now_ns() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// Publishes `events` straight to the bus as a gateway would have `age_days` ago (the writer
/// takes the ingest time from the message): events old enough to be past a retention.
async fn publish_aged(pipeline: &Pipeline, events: &[Event], age_days: i64) {
    let js = jetstream::new(pipeline.nats.connect().await.unwrap());
    let ingest = (now_ns() - age_days * DAY_NS).to_string();
    for chunk in chaukas_bus::pack(events, pipeline.nats.shards, 1024 * 1024) {
        let publish = PublishMessage::build()
            .payload(chunk.payload)
            .message_id(&chunk.message_id)
            .header(chaukas_bus::INGEST_TIME_HEADER, ingest.as_str());
        js.send_publish(pipeline.nats.shard_subject(chunk.shard), publish)
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn set_policy(pipeline: &Pipeline, tenant: &str, json: &str) {
    chaukas_tests::set_policy(&pipeline.nats, tenant, json).await;
}

fn events(tenant: &str, prefix: &str, count: usize) -> Vec<Event> {
    (0..count)
        .map(|i| simple_event(tenant, &format!("{prefix}-{i}")))
        .collect()
}

/// Runs `chaukas <args>` against the pipeline; (success, stdout + stderr).
fn chaukas(pipeline: &Pipeline, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chaukas"))
        .args(args)
        .envs(nats_env(&pipeline.nats))
        .env("CHAUKAS_CLICKHOUSE__URL", &pipeline.clickhouse.url)
        .env(
            "CHAUKAS_CLICKHOUSE__DATABASE",
            &pipeline.clickhouse.database,
        )
        .env(
            "CHAUKAS_LOG__SIGNING_KEYS",
            pipeline.log.signing_keys.clone().unwrap(),
        )
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn count(pipeline: &Pipeline, tenant: &str) -> u64 {
    pipeline
        .clickhouse_client()
        .query("SELECT count() FROM events WHERE tenant_id = ?")
        .bind(tenant)
        .fetch_one()
        .await
        .unwrap()
}

async fn wait_count(pipeline: &Pipeline, tenant: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = count(pipeline, tenant).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{tenant}: {now} events, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `tenant`'s latest checkpoint covers `size` leaves (verify needs one).
async fn wait_checkpoint(pipeline: &Pipeline, tenant: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while chaukas_store::log::latest_checkpoint(&pipeline.clickhouse_client(), tenant)
        .await
        .unwrap()
        .is_none_or(|row| row.tree_size < size)
    {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} for {tenant}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn only_events_past_the_maximum_go_and_the_log_still_verifies() {
    let pipeline = Pipeline::start().await;
    let tenant = "acme-retention";
    publish_aged(&pipeline, &events(tenant, "old", 30), 40).await;
    wait_count(&pipeline, tenant, 30).await;
    publish_aged(&pipeline, &events(tenant, "middle", 20), 20).await;
    wait_count(&pipeline, tenant, 50).await;
    let mut client = pipeline.server_client().await;
    client
        .ingest_event_batch(batch_request(events(tenant, "new", 10)))
        .await
        .unwrap();
    wait_count(&pipeline, tenant, 60).await;
    set_policy(
        &pipeline,
        tenant,
        r#"{"retention": {"min_days": 10, "max_days": 30}}"#,
    )
    .await;

    let (ok, out) = chaukas(
        &pipeline,
        &["retention", "apply", "--dry-run", "--tenant", tenant],
    );
    assert!(
        ok && out.contains("would remove 30 events (leaves below 30)"),
        "{out}"
    );
    assert_eq!(
        count(&pipeline, tenant).await,
        60,
        "a dry run removes nothing"
    );

    let (ok, out) = chaukas(&pipeline, &["retention", "apply", "--by", "ops"]);
    assert!(ok && out.contains("removed 30 events"), "{out}");
    // The run itself is an event of the tenant: 60 - 30 + 1.
    wait_count(&pipeline, tenant, 31).await;
    let stored = pipeline.stored_events().await;
    assert!(
        stored
            .iter()
            .all(|event| !event.event_id.starts_with("old-"))
    );
    let run = stored
        .iter()
        .find(|event| event.event_id == "chaukas-retention-30")
        .expect("the run is logged as an event of the tenant");
    let metadata = &run.metadata.as_ref().unwrap().fields;
    assert_eq!(
        metadata["run_by"].kind,
        Some(prost_types::value::Kind::StringValue("ops".into()))
    );
    wait_checkpoint(&pipeline, tenant, 61).await;
    let (ok, out) = chaukas(&pipeline, &["verify", "--tenant", tenant]);
    assert!(ok, "{out}");
    assert!(out.contains("30 pruned by retention"), "{out}");

    // Deleting a pruned leaf's entry as well is still caught.
    pipeline
        .clickhouse_client()
        .query("ALTER TABLE log_leaves DELETE WHERE tenant_id = ? AND leaf_index = 3")
        .bind(tenant)
        .execute()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = chaukas(&pipeline, &["verify", "--tenant", tenant]);
        if !ok {
            assert!(out.contains("leaf 3"), "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a deleted entry went unnoticed: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pipeline.stop().await;
}

#[tokio::test]
async fn holds_minimums_and_tenants_without_terms_keep_everything() {
    let pipeline = Pipeline::start().await;
    let (held, young, bare) = ("acme-held", "acme-young", "acme-bare");
    for tenant in [held, young, bare] {
        publish_aged(&pipeline, &events(tenant, "old", 5), 40).await;
        wait_count(&pipeline, tenant, 5).await;
    }
    set_policy(
        &pipeline,
        held,
        r#"{"retention": {"min_days": 10, "max_days": 30, "legal_hold": true, "hold_reason": "case 7"}}"#,
    )
    .await;
    set_policy(
        &pipeline,
        young,
        r#"{"retention": {"min_days": 50, "max_days": 60}}"#,
    )
    .await;
    let (ok, out) = chaukas(&pipeline, &["retention", "apply"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("acme-held\": kept (legal hold on the tenant: case 7)"),
        "{out}"
    );
    assert!(
        out.contains("acme-young\": nothing stored more than 60 days ago"),
        "{out}"
    );
    let (ok, out) = chaukas(&pipeline, &["retention", "apply", "--tenant", bare]);
    assert!(!ok && out.contains("has no policy"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for tenant in [held, young, bare] {
        assert_eq!(count(&pipeline, tenant).await, 5, "{tenant}");
    }
    pipeline.stop().await;
}
