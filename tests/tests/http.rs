//! The HTTP routes chaukas-sdk posts binary protobuf to: every status code it can get.
//! (JSON bodies: `http_json.rs`.)

use std::io::Write;
use std::time::Duration;

use chaukas_proto::client::v1 as client;
use chaukas_proto::common::v1::{Event, EventBatch, MessageContent, event::Content};
use chaukas_testkit::PrivateNats;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{HttpResponse, Pipeline, http_request};
use prost::Message;

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const BEARER: (&str, &str) = ("Authorization", "Bearer any-key-for-now");

fn one(event: Event) -> Vec<u8> {
    client::IngestEventRequest { event: Some(event) }.encode_to_vec()
}

fn batch(events: Vec<Event>) -> Vec<u8> {
    client::IngestEventBatchRequest {
        event_batch: Some(EventBatch {
            batch_id: "b-1".into(),
            events,
            ..EventBatch::default()
        }),
    }
    .encode_to_vec()
}

async fn post(
    pipeline: &Pipeline,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    http_request(pipeline.http, "POST", path, headers, body).await
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or_else(|_| panic!("not JSON: {response:?}"))
}

#[tokio::test]
async fn sdk_routes_accept_protobuf_plain_and_gzipped_and_report_rejections() {
    let pipeline =
        Pipeline::start_with(|gateway, _| gateway.gateway.max_request_bytes = 256 * 1024).await;

    let response = post(
        &pipeline,
        "/events",
        &[PROTOBUF, BEARER],
        &one(simple_event("t-http", "single")),
    )
    .await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(json(&response)["event_id"], "single");

    let mut no_tenant = simple_event("", "no-tenant");
    no_tenant.tenant_id.clear();
    let body = batch(vec![
        simple_event("t-http", "b1"),
        no_tenant,
        simple_event("t-http", "b2"),
    ]);
    let response = post(&pipeline, "/events/batch", &[PROTOBUF, BEARER], &body).await;
    assert_eq!(response.status, 202, "{response:?}");
    let summary = json(&response);
    assert_eq!(summary["accepted_count"], 2);
    assert_eq!(summary["rejected_count"], 1);
    assert_eq!(summary["rejected_event_ids"][0], "no-tenant");
    assert_eq!(summary["errors"][0]["error"], "event.tenant_id is required");

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&batch(vec![simple_event("t-http", "gz1")]))
        .unwrap();
    let response = post(
        &pipeline,
        "/v1/events/batch",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        &gzip.finish().unwrap(),
    )
    .await;
    assert_eq!(response.status, 202, "{response:?}");

    assert_eq!(pipeline.wait_for_rows(4, Duration::from_secs(30)).await, 4);

    let capabilities = http_request(pipeline.http, "GET", "/v1/capabilities", &[], &[]).await;
    assert_eq!(capabilities.status, 200, "{capabilities:?}");
    let capabilities = json(&capabilities);
    assert_eq!(capabilities["policy_decisions"], true);
    assert_eq!(capabilities["data_access_events"], true);
    assert_eq!(capabilities["audit_proofs"], true);
    for absent in ["worm_retention", "distributed_query", "rbac", "sso"] {
        assert_eq!(capabilities[absent], false, "{absent}");
    }
    pipeline.stop().await;
}

#[tokio::test]
async fn every_refusal_has_its_status_and_names_the_problem() {
    let pipeline =
        Pipeline::start_with(|gateway, _| gateway.gateway.max_request_bytes = 64 * 1024).await;
    let expect = |response: HttpResponse, status: u16, words: &str| {
        assert_eq!(response.status, status, "{response:?}");
        let message = json(&response)["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(words),
            "{message:?} should mention {words:?}"
        );
    };

    let mut invalid = simple_event("t", "x");
    invalid.tenant_id.clear();
    expect(
        post(&pipeline, "/events", &[PROTOBUF], &one(invalid)).await,
        400,
        "event.tenant_id is required",
    );
    expect(
        post(
            &pipeline,
            "/events/batch",
            &[PROTOBUF],
            b"\xff\xff\xff garbage",
        )
        .await,
        400,
        "IngestEventBatchRequest",
    );
    expect(
        post(&pipeline, "/events", &[PROTOBUF], &[]).await,
        400,
        "event is required",
    );
    expect(
        post(
            &pipeline,
            "/events",
            &[("Content-Type", "application/xml")],
            b"<event/>",
        )
        .await,
        415,
        "application/json or binary protobuf",
    );
    expect(
        post(
            &pipeline,
            "/events",
            &[("Content-Type", "text/plain")],
            b"hi",
        )
        .await,
        415,
        "text/plain",
    );
    expect(
        post(
            &pipeline,
            "/events",
            &[PROTOBUF, ("Content-Encoding", "br")],
            b"x",
        )
        .await,
        415,
        "br",
    );
    expect(
        post(
            &pipeline,
            "/events",
            &[PROTOBUF, ("Content-Encoding", "gzip")],
            b"not gzip",
        )
        .await,
        400,
        "gzip",
    );
    let mut big = simple_event("t", "big");
    big.agent_name = "x".repeat(1000); // 100 of these pass 64 KiB
    let huge = batch(vec![big; 100]);
    expect(
        post(&pipeline, "/events/batch", &[PROTOBUF], &huge).await,
        413,
        "65536 bytes",
    );
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&vec![0u8; 1024 * 1024]).unwrap();
    expect(
        post(
            &pipeline,
            "/events/batch",
            &[PROTOBUF, ("Content-Encoding", "gzip")],
            &gzip.finish().unwrap(),
        )
        .await,
        413,
        "larger than",
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn bus_outages_and_load_shedding_answer_503_with_retry_after() {
    let mut nats = PrivateNats::start();
    let url = nats.url();
    let pipeline = Pipeline::start_custom(None, false, |gateway, _| {
        gateway.nats.url = url.clone();
        gateway.gateway.publish_timeout_ms = 2_000;
        gateway.gateway.max_inflight_bytes = 64 * 1024;
    })
    .await;
    nats.stop();
    let mut first = simple_event("t", "held");
    first.content = Some(Content::Message(MessageContent {
        role: "user".into(),
        text: "x".repeat(63 * 1024),
        metadata: None,
    }));
    let (http, body) = (pipeline.http, one(first));
    let holder =
        tokio::spawn(
            async move { http_request(http, "POST", "/events", &[PROTOBUF], &body).await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shed = post(
        &pipeline,
        "/events",
        &[PROTOBUF],
        &one(simple_event("t", "shed")),
    )
    .await;
    assert_eq!(shed.status, 503, "{shed:?}");
    assert!(
        shed.body.to_lowercase().contains("high memory usage"),
        "{shed:?}"
    );
    assert_eq!(shed.header("retry-after"), Some("5"));

    let unavailable = holder.await.unwrap();
    assert_eq!(unavailable.status, 503, "{unavailable:?}");
    assert!(
        unavailable.body.contains("event bus unavailable"),
        "{unavailable:?}"
    );
    assert_eq!(unavailable.header("retry-after"), Some("5"));
    pipeline.stop().await;
}
