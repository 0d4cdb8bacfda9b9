//! The tamper-evident log against real NATS and ClickHouse (issue #14): stored events form
//! each tenant's signed Merkle log; proofs computed from the stored tiles verify; and
//! `chaukas verify` names every event a ClickHouse admin changed, deleted, forged or moved.

use std::time::{Duration, Instant};

use base64::Engine as _;
use chaukas_audit::hash::to_hex;
use chaukas_audit::proof::{
    NodeRecorder, consistency_proof, inclusion_proof, tree_root, verify_consistency,
    verify_inclusion,
};
use chaukas_audit::tiles::{TileSet, tiles_for};
use chaukas_audit::verify::audit;
use chaukas_audit::{Checkpoint, Hash, leaf_hash};
use chaukas_proto::common::v1::Event;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request};

fn event(tenant: &str, id: usize) -> Event {
    Event {
        agent_name: format!("agent-{id}"),
        ..simple_event(tenant, &format!("e{id}"))
    }
}

async fn send(pipeline: &Pipeline, tenant: &str, ids: std::ops::Range<usize>) {
    let mut client = pipeline.server_client().await;
    let events: Vec<Event> = ids.map(|id| event(tenant, id)).collect();
    let response = client
        .ingest_event_batch(batch_request(events))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.rejected_count, 0, "{response:?}");
}

/// The newest checkpoint of `tenant` once it covers `size` leaves, opened with the
/// pipeline's key.
async fn checkpoint(pipeline: &Pipeline, tenant: &str, size: u64) -> Checkpoint {
    let client = pipeline.clickhouse_client();
    let trusted = pipeline.log.verifiers().unwrap();
    let origin = chaukas_audit::origin(&pipeline.log.name, tenant);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(row) = chaukas_store::log::latest_checkpoint(&client, tenant)
            .await
            .unwrap()
        {
            let checkpoint = Checkpoint::open(&row.note, &trusted, &origin).unwrap();
            if checkpoint.size >= size {
                assert_eq!(checkpoint.size, size, "more leaves than events sent");
                return checkpoint;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} for {tenant}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fetches the tiles a proof needs from the store, as a tile client would over HTTP.
async fn tiles(pipeline: &Pipeline, tenant: &str, size: u64, wanted: &[(u8, u64)]) -> TileSet {
    let client = pipeline.clickhouse_client();
    let mut set = TileSet::default();
    for tile in tiles_for(size, wanted) {
        let hashes = chaukas_store::log::tile(&client, tenant, tile)
            .await
            .unwrap();
        assert_eq!(hashes.len(), usize::from(tile.width));
        set.insert(tile, hashes);
    }
    set
}

#[tokio::test]
async fn stored_events_form_a_signed_log_whose_tiles_prove_inclusion_and_consistency() {
    let pipeline = Pipeline::start().await;
    send(&pipeline, "acme", 0..120).await;
    let early = checkpoint(&pipeline, "acme", 120).await;
    send(&pipeline, "acme", 120..300).await;
    send(&pipeline, "other", 0..5).await;
    pipeline
        .assert_stored_once(305, Duration::from_secs(30))
        .await;
    let latest = checkpoint(&pipeline, "acme", 300).await;
    checkpoint(&pipeline, "other", 5).await;

    // Every stored event recomputes to its leaf, and the leaves to the signed root.
    let client = pipeline.clickhouse_client();
    let events = chaukas_store::log::sealed_events(&client, "acme")
        .await
        .unwrap();
    let report = audit(events.clone(), &latest);
    assert_eq!(report.findings, vec![], "a fresh log must verify");
    assert_eq!(report.checked, 300);

    // Inclusion of a leaf past the first tile, from tiles alone.
    let at_257 = events.iter().find(|e| e.leaf_index == 257).unwrap();
    // Rows sealed since migration 0010 store no hash of their own: the log's entry is it.
    assert!(at_257.sealed && at_257.content_hash.is_empty());
    let recorded = chaukas_store::log::recorded_entries(&client, "acme", Some(&[256, 257]))
        .await
        .unwrap();
    let content: Hash = recorded[&257];
    let mut recorder = NodeRecorder::default();
    inclusion_proof(&mut recorder, 257, 300).unwrap();
    tree_root(&mut recorder, 300).unwrap();
    let mut set = tiles(&pipeline, "acme", 300, &recorder.wanted).await;
    assert_eq!(tree_root(&mut set, 300).unwrap(), latest.root);
    let proof = inclusion_proof(&mut set, 257, 300).unwrap();
    verify_inclusion(257, 300, &leaf_hash(&content), &proof, &latest.root).unwrap();

    // The earlier checkpoint is a prefix of the latest one.
    let mut recorder = NodeRecorder::default();
    consistency_proof(&mut recorder, 120, 300).unwrap();
    let mut set = tiles(&pipeline, "acme", 300, &recorder.wanted).await;
    let proof = consistency_proof(&mut set, 120, 300).unwrap();
    verify_consistency(120, 300, &early.root, &latest.root, &proof).unwrap();

    // Rows store the canonical encoding, which hashes to the recorded content hash.
    assert_eq!(
        chaukas_audit::content::hash_canonical(&at_257.payload),
        content
    );
    // QueryEvents fills the server's log fields from the columns and the previous leaf.
    let queried = query_one(&pipeline, "acme", &at_257.event_id).await;
    assert_eq!(queried.worm_proof_id, "257");
    assert_eq!(queried.content_hash, to_hex(&content));
    assert_eq!(queried.hash_prev, to_hex(&recorded[&256]));
    let first = events.iter().find(|e| e.leaf_index == 0).unwrap();
    let queried = query_one(&pipeline, "acme", &first.event_id).await;
    assert_eq!(
        (queried.worm_proof_id.as_str(), queried.hash_prev.as_str()),
        ("0", "")
    );
    pipeline.stop().await;
}

/// Event `event_id` of `tenant` as QueryEvents returns it.
async fn query_one(pipeline: &Pipeline, tenant: &str, event_id: &str) -> Event {
    use chaukas_proto::common::v1::{QueryFilter, QueryRequest};
    let response = pipeline
        .server_client()
        .await
        .query_events(chaukas_proto::server::v1::QueryEventsRequest {
            query: Some(QueryRequest {
                filter: Some(QueryFilter {
                    tenant_id: tenant.into(),
                    ..QueryFilter::default()
                }),
                page_size: 1000,
                ..QueryRequest::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    response
        .events
        .into_iter()
        .find(|event| event.event_id == event_id)
        .unwrap()
}

/// Runs `chaukas verify` for `tenant`; its exit status and output.
fn verify(pipeline: &Pipeline, tenant: &str, saved: Option<&std::path::Path>) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chaukas"));
    command
        .args(["verify", "--tenant", tenant])
        .env("CHAUKAS_CLICKHOUSE__URL", &pipeline.clickhouse.url)
        .env(
            "CHAUKAS_CLICKHOUSE__DATABASE",
            &pipeline.clickhouse.database,
        )
        .env(
            "CHAUKAS_LOG__SIGNING_KEYS",
            pipeline.log.signing_keys.clone().unwrap(),
        )
        .env("RUST_LOG", "error");
    if let Some(saved) = saved {
        command.arg("--checkpoint").arg(saved);
    }
    let output = command.output().expect("chaukas verify runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Runs a ClickHouse statement and waits for the mutations it started.
async fn tamper(pipeline: &Pipeline, sql: &str) {
    let client = pipeline.clickhouse_client();
    client.query(sql).execute().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: u64 = client
            .query("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0")
            .fetch_one()
            .await
            .unwrap();
        if running == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "mutation did not finish: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn chaukas_verify_names_every_tampered_event() {
    let pipeline = Pipeline::start().await;
    let tenants = [
        "intact",
        "changed",
        "deleted",
        "forged",
        "swapped",
        "rolled-back",
    ];
    for tenant in tenants {
        send(&pipeline, tenant, 0..20).await;
    }
    pipeline
        .assert_stored_once(120, Duration::from_secs(30))
        .await;
    let mut saved = None;
    for tenant in tenants {
        checkpoint(&pipeline, tenant, 20).await;
        let (ok, output) = verify(&pipeline, tenant, None);
        assert!(ok, "{tenant} must verify before tampering: {output}");
        if tenant == "rolled-back" {
            let row = chaukas_store::log::latest_checkpoint(&pipeline.clickhouse_client(), tenant)
                .await
                .unwrap()
                .unwrap();
            let path =
                std::env::temp_dir().join(format!("{}.checkpoint", pipeline.clickhouse.database));
            std::fs::write(&path, row.note).unwrap();
            saved = Some(path);
        }
    }

    tamper(&pipeline, "ALTER TABLE events UPDATE payload = replaceOne(payload, 'agent-7', 'agent-X') WHERE tenant_id = 'changed' AND event_id = 'e7'").await;
    tamper(
        &pipeline,
        "ALTER TABLE events DELETE WHERE tenant_id = 'deleted' AND event_id = 'e11'",
    )
    .await;
    tamper(
        &pipeline,
        "INSERT INTO events SELECT * FROM events WHERE tenant_id = 'intact' AND event_id = 'e3'",
    )
    .await;
    tamper(&pipeline, "INSERT INTO events (tenant_id, event_id, leaf_index, sealed, payload) SELECT 'forged', 'e99', leaf_index, sealed, payload FROM events WHERE tenant_id = 'forged' AND event_id = 'e4'").await;
    tamper(&pipeline, "ALTER TABLE events UPDATE leaf_index = if(event_id = 'e2', 5, 2) WHERE tenant_id = 'swapped' AND event_id IN ('e2', 'e5')").await;
    // A rollback: the last five events and every checkpoint after them go.
    tamper(
        &pipeline,
        "ALTER TABLE events DELETE WHERE tenant_id = 'rolled-back' AND leaf_index >= 15",
    )
    .await;
    tamper(
        &pipeline,
        "ALTER TABLE log_checkpoints DELETE WHERE tenant_id = 'rolled-back'",
    )
    .await;

    let expectations: [(&str, &[&str]); 5] = [
        ("changed", &["event e7 (leaf 7): content changed"]),
        ("deleted", &["leaf 11: no stored event"]),
        ("intact", &["leaf 3: claimed by several events: e3, e3"]),
        ("forged", &["leaf 4: claimed by several events"]),
        (
            "swapped",
            &[
                "(leaf 2): its log fields disagree",
                "(leaf 5): its log fields disagree",
            ],
        ),
    ];
    for (tenant, lines) in expectations {
        let (ok, output) = verify(&pipeline, tenant, None);
        assert!(!ok, "{tenant}: tampering not detected: {output}");
        for line in lines {
            assert!(
                output.contains(line),
                "{tenant}: expected {line:?} in {output}"
            );
        }
    }
    // Without a checkpoint of its own the rolled-back log cannot even be checked; against
    // the checkpoint a client saved, the rollback is named.
    let (ok, output) = verify(&pipeline, "rolled-back", None);
    assert!(!ok, "{output}");
    let (ok, output) = verify(&pipeline, "rolled-back", saved.as_deref());
    assert!(!ok, "{output}");
    assert!(
        output.contains("the checkpoint covers 20 leaves but only 15 are stored (rolled back)"),
        "{output}"
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn an_exported_bundle_verifies_offline_and_any_change_to_it_is_named() {
    let pipeline = Pipeline::start().await;
    let mut client = pipeline.server_client().await;
    let events: Vec<Event> = (0..40)
        .map(|id| Event {
            session_id: if id % 2 == 0 {
                "even".into()
            } else {
                "odd".into()
            },
            ..event("bundled", id)
        })
        .collect();
    client
        .ingest_event_batch(batch_request(events))
        .await
        .unwrap();
    pipeline
        .assert_stored_once(40, Duration::from_secs(30))
        .await;
    checkpoint(&pipeline, "bundled", 40).await;

    let binary = env!("CARGO_BIN_EXE_chaukas");
    let export = std::process::Command::new(binary)
        .args(["export", "--tenant", "bundled", "--session", "odd"])
        .env("CHAUKAS_CLICKHOUSE__URL", &pipeline.clickhouse.url)
        .env(
            "CHAUKAS_CLICKHOUSE__DATABASE",
            &pipeline.clickhouse.database,
        )
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let bundle = String::from_utf8(export.stdout).unwrap();
    assert_eq!(
        bundle.lines().count(),
        21,
        "a header and the session's 20 events"
    );
    let key = pipeline.log.verifiers().unwrap()[0].to_string();
    let dir = std::env::temp_dir().join(&pipeline.clickhouse.database);
    std::fs::create_dir_all(&dir).unwrap();
    let check = |name: &str, text: &str, key: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new(binary)
            .args(["verify", "--bundle"])
            .arg(&path)
            .args(["--key", key])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    // No server involved from here on.
    pipeline.stop().await;
    let (ok, output) = check("good.jsonl", &bundle, &key);
    assert!(ok, "{output}");
    assert!(
        output.contains("20 events verified against the checkpoint of size 40"),
        "{output}"
    );

    // Change one event's content inside the bundle: it is named.
    let mut lines: Vec<String> = bundle.lines().map(str::to_owned).collect();
    let mut line: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(line["payload"].as_str().unwrap())
        .unwrap();
    let mut changed = <Event as prost::Message>::decode(payload.as_slice()).unwrap();
    changed.agent_name = "someone else".into();
    line["payload"] = base64::engine::general_purpose::STANDARD
        .encode(prost::Message::encode_to_vec(&changed))
        .into();
    let id = line["event_id"].as_str().unwrap().to_owned();
    lines[3] = line.to_string();
    let (ok, output) = check("changed.jsonl", &(lines.join("\n") + "\n"), &key);
    assert!(!ok);
    assert!(
        output.contains(&format!("event {id}: content changed")),
        "{output}"
    );

    // Another key proves nothing.
    let stranger = chaukas_audit::SignerKey::generate("chaukas.localhost").unwrap();
    let (ok, _) = check("good.jsonl", &bundle, &stranger.verifier().to_string());
    assert!(!ok);
}
