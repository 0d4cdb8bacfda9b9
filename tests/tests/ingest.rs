//! Ingestion end to end: gateway → JetStream → writer → ClickHouse, on real servers.

use std::time::Duration;

use chaukas_proto::server::v1 as server;
use chaukas_tests::corpus::{every_kind_of_event, simple_event};
use chaukas_tests::{Pipeline, batch_request};

#[tokio::test]
async fn every_type_content_and_optional_block_comes_back_as_sent() {
    let pipeline = Pipeline::start().await;
    let sent = every_kind_of_event("tenant-corpus");
    let response = pipeline
        .server_client()
        .await
        .ingest_event_batch(batch_request(sent.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted_count, 19);
    assert_eq!(response.rejected_count, 0);
    assert_eq!(response.batch_id, "test-batch");

    assert_eq!(
        pipeline.wait_for_rows(19, Duration::from_secs(30)).await,
        19
    );
    let mut expected = sent;
    expected.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(pipeline.stored_events().await, expected);
    pipeline.stop().await;
}

#[tokio::test]
async fn a_batch_rejects_only_its_invalid_events() {
    let pipeline = Pipeline::start().await;
    let mut no_tenant = simple_event("", "no-tenant");
    no_tenant.tenant_id.clear();
    let mut unspecified = simple_event("t", "unspecified-type");
    unspecified.r#type = 0;
    let no_id = simple_event("t", "");
    let events = vec![
        simple_event("t", "good-1"),
        no_tenant,
        simple_event("t", "good-2"),
        unspecified,
        no_id,
        simple_event("t", "good-3"),
    ];
    let response = pipeline
        .server_client()
        .await
        .ingest_event_batch(batch_request(events))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted_count, 3);
    assert_eq!(response.rejected_count, 3);
    assert_eq!(
        response.rejected_event_ids,
        ["no-tenant", "unspecified-type", ""]
    );
    assert_eq!(pipeline.wait_for_rows(3, Duration::from_secs(30)).await, 3);
    let ids: Vec<String> = pipeline
        .stored_events()
        .await
        .into_iter()
        .map(|event| event.event_id)
        .collect();
    assert_eq!(ids, ["good-1", "good-2", "good-3"]);
    pipeline.stop().await;
}

#[tokio::test]
async fn a_single_invalid_event_is_refused_naming_the_field() {
    let pipeline = Pipeline::start().await;
    let mut client = pipeline.server_client().await;
    let mut event = simple_event("t", "e");
    event.tenant_id.clear();
    let status = client
        .ingest_event(server::IngestEventRequest { event: Some(event) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "event.tenant_id is required");

    let status = client
        .ingest_event(server::IngestEventRequest { event: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "event is required");

    let accepted = client
        .ingest_event(server::IngestEventRequest {
            event: Some(simple_event("t", "fine")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.event_id, "fine");
    assert_eq!(accepted.status, "accepted");
    assert!(accepted.processed_at > 1_700_000_000_000);
    pipeline.stop().await;
}

#[tokio::test]
async fn the_same_event_sent_again_is_stored_once_inside_and_after_the_window() {
    // A one-second duplicate window: the resend after it is caught by the writer's claims.
    let pipeline = Pipeline::start_with(|gateway, writer| {
        gateway.nats.duplicate_window_secs = 1;
        writer.nats.duplicate_window_secs = 1;
    })
    .await;
    let mut client = pipeline.server_client().await;
    let event = simple_event("tenant-dup", "dup-1");
    for _ in 0..2 {
        client
            .ingest_event(server::IngestEventRequest {
                event: Some(event.clone()),
            })
            .await
            .unwrap();
    }
    // The same event inside a differently composed batch: another message entirely.
    client
        .ingest_event_batch(batch_request(vec![
            event.clone(),
            simple_event("tenant-dup", "dup-2"),
        ]))
        .await
        .unwrap();
    assert_eq!(pipeline.wait_for_rows(2, Duration::from_secs(30)).await, 2);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut changed = event.clone();
    changed.agent_name = "a later, different copy".into();
    client
        .ingest_event(server::IngestEventRequest {
            event: Some(changed),
        })
        .await
        .unwrap();
    client
        .ingest_event(server::IngestEventRequest {
            event: Some(simple_event("tenant-dup", "dup-3")),
        })
        .await
        .unwrap();
    assert_eq!(pipeline.wait_for_rows(3, Duration::from_secs(30)).await, 3);
    let stored = pipeline.stored_events().await;
    assert_eq!(stored[0], event, "the first stored copy wins");
    pipeline.stop().await;
}
