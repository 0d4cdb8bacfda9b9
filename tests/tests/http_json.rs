//! The JSON API of the OpenAPI document, in its own spelling and in protobuf's canonical
//! JSON: ingestion, `/v1/query`, `/v1/stats`, and the errors a bad body gets.

use std::time::Duration;

use chaukas_proto::common::v1::{Event, QueryResponse};
use chaukas_proto::server::v1::GetEventStatsResponse;
use chaukas_tests::corpus::every_kind_of_event;
use chaukas_tests::{HttpResponse, Pipeline, http_request};
use prost::Message;
use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn post_json(pipeline: &Pipeline, path: &str, body: &Value) -> HttpResponse {
    http_request(
        pipeline.http,
        "POST",
        path,
        &[JSON],
        body.to_string().as_bytes(),
    )
    .await
}

fn body(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or_else(|_| panic!("not JSON: {response:?}"))
}

/// Every stored event of `tenant`, read back through `POST /v1/query` (JSON both ways).
async fn query_tenant(pipeline: &Pipeline, tenant: &str) -> Vec<Event> {
    let response = post_json(
        pipeline,
        "/v1/query",
        &json!({"filter": {"tenant_id": tenant}, "page_size": 1000, "order_by_time": "ASC"}),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let answer = body(&response);
    assert!(
        answer["events"][0]["type"]
            .as_str()
            .is_some_and(|kind| !kind.starts_with("EVENT_TYPE_")),
        "answers use the document's short enum names: {answer}"
    );
    chaukas_tests::as_sent(
        chaukas_json::from_value::<QueryResponse>(answer)
            .unwrap()
            .events,
    )
}

#[tokio::test]
async fn both_json_spellings_round_trip_every_kind_of_event() {
    let pipeline = Pipeline::start().await;

    // The OpenAPI spelling: one event per request, then a bare EventBatch.
    let openapi = every_kind_of_event("t-openapi");
    for event in &openapi[..5] {
        let response = post_json(
            &pipeline,
            "/v1/events",
            &chaukas_json::to_openapi(event).unwrap(),
        )
        .await;
        assert_eq!(response.status, 202, "{response:?}");
        assert_eq!(body(&response)["event_id"], event.event_id.as_str());
    }
    let batch = json!({
        "batch_id": "openapi-batch",
        "events": openapi[5..].iter().map(|event| chaukas_json::to_openapi(event).unwrap()).collect::<Vec<_>>(),
    });
    let response = post_json(&pipeline, "/v1/events/batch", &batch).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(body(&response)["accepted_count"], openapi.len() - 5);

    // Protobuf's canonical JSON, wrapped as the gRPC request messages, on the SDK's paths.
    let canonical = every_kind_of_event("t-canonical");
    let response = post_json(
        &pipeline,
        "/events",
        &json!({"event": chaukas_json::to_canonical(&canonical[0]).unwrap()}),
    )
    .await;
    assert_eq!(response.status, 202, "{response:?}");
    let batch = json!({"event_batch": {
        "batchId": "canonical-batch",
        "events": canonical[1..].iter().map(|event| chaukas_json::to_canonical(event).unwrap()).collect::<Vec<_>>(),
    }});
    let response = post_json(&pipeline, "/events/batch", &batch).await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_eq!(body(&response)["rejected_count"], 0);

    let total = u64::try_from(openapi.len() + canonical.len()).unwrap();
    assert_eq!(
        pipeline.wait_for_rows(total, Duration::from_secs(30)).await,
        total
    );
    assert_eq!(query_tenant(&pipeline, "t-openapi").await, openapi);
    assert_eq!(query_tenant(&pipeline, "t-canonical").await, canonical);

    // Protobuf in, protobuf out on the query route.
    let request = chaukas_proto::common::v1::QueryRequest {
        filter: Some(chaukas_proto::common::v1::QueryFilter {
            tenant_id: "t-canonical".into(),
            ..Default::default()
        }),
        page_size: 3,
        ..Default::default()
    };
    let response = http_request(
        pipeline.http,
        "POST",
        "/v1/query",
        &[("Content-Type", "application/x-protobuf")],
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/x-protobuf")
    );

    // Stats over JSON, with a naive (zone-less) time like the SDK writes.
    let response = post_json(
        &pipeline,
        "/v1/stats",
        &json!({"tenant_id": "t-openapi", "time_range": {"start": "2000-01-01T00:00:00"}}),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let stats: GetEventStatsResponse = chaukas_json::from_value(body(&response)).unwrap();
    assert_eq!(stats.total_events, i64::try_from(openapi.len()).unwrap());
    assert_eq!(
        stats.events_by_type.get("EVENT_TYPE_TOOL_CALL_START"),
        Some(&1)
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn bad_json_gets_400_naming_the_field() {
    let pipeline = Pipeline::start().await;
    let cases = [
        (
            "/v1/events",
            json!({"event_id": "e", "tenant_id": "t", "type": "TOOL_CALLED"}),
            "type: unknown EventType \"TOOL_CALLED\"",
        ),
        (
            "/v1/events",
            json!({"event_id": "e", "tenant_id": "t", "type": "ERROR", "is_final": "yes"}),
            "is_final",
        ),
        (
            "/v1/events",
            json!({"event_id": "e", "tenant_id": "t", "type": "ERROR", "content": {"kind": "poem"}}),
            "content.kind: unknown content kind \"poem\"",
        ),
        (
            "/v1/events",
            json!({"event_id": "e", "tenant_id": "t", "type": "ERROR", "colour": "red"}),
            "unrecognized field name 'colour'",
        ),
        (
            "/v1/events",
            json!({"event_id": "e", "tenant_id": "t", "type": "ERROR", "timestamp": "yesterday"}),
            "timestamp",
        ),
        (
            "/v1/events",
            json!({"event_id": "e", "type": "ERROR"}),
            "event.tenant_id is required",
        ),
        (
            "/v1/events/batch",
            json!({"events": [{"event_id": "a"}, {"event_id": "b", "severity": "LOUD"}]}),
            "events[1].severity: unknown Severity \"LOUD\"",
        ),
        (
            "/v1/query",
            json!({"filter": {"types": ["NOPE"]}}),
            "filter.types[0]: unknown EventType",
        ),
        (
            "/v1/query",
            json!({"filter": {}, "order_by_time": "SIDEWAYS"}),
            "order_by_time: unknown SortOrder",
        ),
        (
            "/v1/query",
            json!({"filter": {}, "page_size": "many"}),
            "page_size",
        ),
        (
            "/v1/stats",
            json!({"time_range": {"start": 5}}),
            "time_range.start",
        ),
    ];
    for (path, request, words) in cases {
        let response = post_json(&pipeline, path, &request).await;
        assert_eq!(response.status, 400, "{path} {request}: {response:?}");
        let message = body(&response)["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(words),
            "{path}: {message:?} should mention {words:?}"
        );
    }
    let response = http_request(
        pipeline.http,
        "POST",
        "/v1/events",
        &[JSON],
        b"{\"event_id\": ",
    )
    .await;
    assert_eq!(response.status, 400);
    assert!(
        body(&response)["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    pipeline.stop().await;
}
