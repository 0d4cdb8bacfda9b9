//! The audit log over HTTP, as a third party uses it (issue #14): the verifier key, a
//! tenant's signed checkpoint, C2SP tiles and entry bundles, an offline-verifiable
//! tlog-proof and a consistency proof — each checked with nothing but what was fetched —
//! and every request confined to the API key's tenant.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chaukas_audit::proof::{tree_root, verify_consistency};
use chaukas_audit::tiles::{TileSet, tile_hashes};
use chaukas_audit::{Checkpoint, Hash, TileId, TlogProof, VerifierKey, leaf_hash};
use chaukas_auth::Scope;
use chaukas_proto::common::v1::Event;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request, create_key, get_with_key, ingest_with_key};

async fn key(pipeline: &Pipeline, tenant: &str, scopes: &[Scope]) -> String {
    create_key(pipeline, tenant, scopes).await
}

async fn get(pipeline: &Pipeline, token: &str, path: &str) -> (u16, Vec<u8>) {
    get_with_key(pipeline, token, path).await
}

async fn ingest(pipeline: &Pipeline, token: &str, events: Vec<Event>) {
    ingest_with_key(pipeline, token, events).await;
}

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

#[tokio::test]
async fn a_third_party_verifies_the_log_from_http_alone() {
    let pipeline =
        Pipeline::start_with(|gateway, _| gateway.gateway.allow_unauthenticated = false).await;
    let acme = key(&pipeline, "acme", &[Scope::Ingest, Scope::Query]).await;
    let other = key(&pipeline, "other", &[Scope::Query]).await;
    let mut events: Vec<Event> = (0..300)
        .map(|i| simple_event("acme", &format!("e{i}")))
        .collect();
    let rest = events.split_off(100);
    // The first 100 alone: a checkpoint of size 100 to prove consistency from.
    let (status, _) = get(&pipeline, &acme, "/v1/log/key").await;
    assert_eq!(status, 200);
    ingest(&pipeline, &acme, events).await;

    let (_, key_text) = get(&pipeline, &acme, "/v1/log/key").await;
    let trusted = vec![VerifierKey::parse(std::str::from_utf8(&key_text).unwrap().trim()).unwrap()];
    let origin = "chaukas.localhost/acme";
    let checkpoint_of = |size: u64| {
        let pipeline = &pipeline;
        let acme = &acme;
        let trusted = &trusted;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (status, body) = get(pipeline, acme, "/v1/log/acme/checkpoint").await;
                if status == 200 {
                    let note = String::from_utf8(body).unwrap();
                    let checkpoint = Checkpoint::open(&note, trusted, origin).unwrap();
                    if checkpoint.size == size {
                        return (checkpoint, note);
                    }
                }
                assert!(Instant::now() < deadline, "no checkpoint of size {size}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (old, _) = checkpoint_of(100).await;
    ingest(&pipeline, &acme, rest).await;
    let (latest, note) = checkpoint_of(300).await;

    // The tree from tiles alone: two level-0 tiles and the level-1 partial one.
    let mut set = TileSet::default();
    for (wanted, path) in [
        (tile(0, 0, 256), "/v1/log/acme/tile/0/000"),
        (tile(0, 1, 44), "/v1/log/acme/tile/0/001.p/44"),
        (tile(1, 0, 1), "/v1/log/acme/tile/1/000.p/1"),
    ] {
        let (status, body) = get(&pipeline, &acme, path).await;
        assert_eq!(status, 200, "{path}");
        set.insert(wanted, tile_hashes(&body).unwrap());
    }
    assert_eq!(tree_root(&mut set, 300).unwrap(), latest.root);
    assert_eq!(tree_root(&mut set, 100).unwrap(), old.root);

    // Entry bundle: big-endian u16 lengths, each entry a 32-byte content hash.
    let (status, bundle) = get(&pipeline, &acme, "/v1/log/acme/tile/entries/001.p/44").await;
    assert_eq!((status, bundle.len()), (200, 44 * 34));
    assert_eq!(&bundle[..2], &[0, 32]);
    let entry: Hash = bundle[36..68].try_into().unwrap(); // leaf 257

    // An offline tlog-proof for leaf 257 verifies against the checkpoint it embeds.
    let (status, proof) = get(&pipeline, &acme, "/v1/log/acme/proof/257").await;
    assert_eq!(status, 200);
    let proof = TlogProof::parse(std::str::from_utf8(&proof).unwrap()).unwrap();
    assert_eq!(proof.checkpoint, note);
    assert_eq!(
        proof.verify(&leaf_hash(&entry), &trusted, origin),
        Ok(latest.clone())
    );
    assert!(
        proof
            .verify(&leaf_hash(&[0; 32]), &trusted, origin)
            .is_err()
    );

    // A client that kept the size-100 checkpoint checks the log only grew.
    let (status, lines) = get(&pipeline, &acme, "/v1/log/acme/consistency/100/300").await;
    assert_eq!(status, 200);
    let hashes: Vec<Hash> = std::str::from_utf8(&lines)
        .unwrap()
        .lines()
        .map(|line| BASE64.decode(line).unwrap().try_into().unwrap())
        .collect();
    verify_consistency(100, 300, &old.root, &latest.root, &hashes).unwrap();

    // Refusals: other tenants, no key, beyond the checkpoint, malformed.
    for (token, path, status) in [
        (other.as_str(), "/v1/log/acme/checkpoint", 403),
        ("", "/v1/log/acme/checkpoint", 401),
        (acme.as_str(), "/v1/log/other/checkpoint", 403),
        (acme.as_str(), "/v1/log/acme/proof/300", 404),
        (acme.as_str(), "/v1/log/acme/tile/0/002", 404),
        (acme.as_str(), "/v1/log/acme/tile/0/001", 404),
        (acme.as_str(), "/v1/log/acme/tile/0/0001", 400),
        (acme.as_str(), "/v1/log/acme/consistency/0/300", 400),
        (acme.as_str(), "/v1/log/acme/consistency/100/301", 400),
        (acme.as_str(), "/v1/log/acme/nothing", 404),
        (other.as_str(), "/v1/log/other/checkpoint", 404),
    ] {
        let (got, body) = get(&pipeline, token, path).await;
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
    }
    pipeline.stop().await;
}

/// With `log.enabled = false` the writer stores events as sent, unsealed, signs nothing,
/// and gateways stop claiming `audit_proofs` once its report arrives.
#[tokio::test]
async fn a_writer_with_the_log_off_stores_unsealed_events_and_gateways_say_so() {
    let pipeline = Pipeline::start_with(|_, writer| writer.log.enabled = false).await;
    let events: Vec<Event> = (0..20)
        .map(|i| simple_event("acme", &format!("e{i}")))
        .collect();
    let mut client = pipeline.server_client().await;
    let response = client
        .ingest_event_batch(batch_request(events.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted_count, 20, "{response:?}");
    pipeline
        .assert_stored_once(20, Duration::from_secs(30))
        .await;

    let stored = pipeline.sealed_events().await;
    assert!(stored.iter().all(|event| event.content_hash.is_empty()
        && event.hash_prev.is_empty()
        && event.worm_proof_id.is_empty()));
    let client = pipeline.clickhouse_client();
    let unsealed: u64 = client
        .query(
            "SELECT count() FROM events WHERE sealed = 0 AND content_hash = '' AND leaf_index = 0",
        )
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(unsealed, 20);
    for table in ["log_leaves", "log_checkpoints"] {
        let rows: u64 = client
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(rows, 0, "{table}");
    }

    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (status, body) = chaukas_tests::http_get(pipeline.http, "/v1/capabilities").await;
        if status == 200 && body.contains("\"audit_proofs\":false") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit_proofs never turned false: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A writer that stops withdraws its report: gateways stop counting it at once.
    let nats = pipeline.nats.clone();
    pipeline.stop().await;
    let jetstream = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let bucket = chaukas_bus::kv::open_bucket(&jetstream, &chaukas_bus::status::bucket_spec(&nats))
        .await
        .unwrap();
    let reports = chaukas_bus::status::writers(&bucket).await.unwrap();
    assert!(reports.is_empty(), "{reports:?}");
}
