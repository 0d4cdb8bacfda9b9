//! Hostile and broken input, one test per class the hostile tester found (issue #12): each
//! asserts the status and message the caller gets and that the gateway still answers.
//! Connection-level abuse (slow clients, chunking, connection floods): `hostile_connections.rs`.

use std::time::Duration;

use chaukas_json::MAX_NESTING;
use chaukas_proto::common::v1::{Event, QueryFilter, QueryRequest, ToolCall, event::Content};
use chaukas_proto::server::v1 as server;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::raw_grpc::{self, INGEST_BATCH, QUERY_EVENTS, empty_events_batch};
use chaukas_tests::{Pipeline, batch_request, http_get, http_request};
use prost::Message;
use prost_types::value::Kind;
use prost_types::{Any, Struct, Value};
use tonic::Code;

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn assert_alive(pipeline: &Pipeline) {
    let (status, _) = http_get(pipeline.http, "/healthz").await;
    assert_eq!(status, 200, "the gateway must still answer");
}

fn nested_struct(levels: usize) -> Struct {
    let mut inner = Struct {
        fields: [(
            "leaf".to_owned(),
            Value {
                kind: Some(Kind::StringValue("x".into())),
            },
        )]
        .into(),
    };
    for _ in 1..levels {
        inner = Struct {
            fields: [(
                "a".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            )]
            .into(),
        };
    }
    inner
}

fn with_arguments(tenant: &str, id: &str, arguments: Struct) -> Event {
    Event {
        content: Some(Content::ToolCall(ToolCall {
            name: "deep".into(),
            arguments: Some(arguments),
            ..ToolCall::default()
        })),
        ..simple_event(tenant, id)
    }
}

fn any_in_any(levels: usize) -> Any {
    let mut any = Any {
        type_url: "type.googleapis.com/google.protobuf.Struct".into(),
        value: nested_struct(1).encode_to_vec(),
    };
    for _ in 1..levels {
        any = Any {
            type_url: "type.googleapis.com/google.protobuf.Any".into(),
            value: any.encode_to_vec(),
        };
    }
    any
}

/// Defect 1: an Any nested in Any 4,000 deep crashed the gateway on the next JSON read.
#[tokio::test]
async fn any_nested_thousands_deep_is_refused_and_nothing_crashes() {
    let pipeline = Pipeline::start().await;
    let mut client = pipeline.server_client().await;
    let event = Event {
        extensions: vec![any_in_any(4_000)],
        ..simple_event("t-any", "deep-any")
    };
    let answer = client
        .ingest_event(server::IngestEventRequest { event: Some(event) })
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument);
    assert!(
        answer.message().contains("event.extensions[0]") && answer.message().contains("levels"),
        "{answer:?}"
    );
    assert_alive(&pipeline).await;
    pipeline.stop().await;
}

/// Defects 1 and 5: whatever is accepted is readable on every path; one level more is refused
/// on every ingestion path with a message.
#[tokio::test]
async fn the_nesting_limit_holds_on_every_path_at_its_boundary() {
    let pipeline = Pipeline::start().await;
    let tenant = "t-depth";
    let mut client = pipeline.server_client().await;
    let deepest = with_arguments(tenant, "deepest", nested_struct(MAX_NESTING));
    client
        .ingest_event(server::IngestEventRequest {
            event: Some(deepest.clone()),
        })
        .await
        .expect("the deepest allowed event is accepted");

    let too_deep = with_arguments(tenant, "too-deep", nested_struct(MAX_NESTING + 1));
    let grpc = client
        .ingest_event(server::IngestEventRequest {
            event: Some(too_deep.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(grpc.code(), Code::InvalidArgument);
    assert!(
        grpc.message().contains("event.tool_call.arguments"),
        "{grpc:?}"
    );
    let body = chaukas_proto::client::v1::IngestEventRequest {
        event: Some(too_deep.clone()),
    }
    .encode_to_vec();
    let http = http_request(pipeline.http, "POST", "/v1/events", &[PROTOBUF], &body).await;
    assert_eq!(http.status, 400, "{http:?}");
    assert!(http.body.contains("levels deep"), "{http:?}");
    let json_body = serde_json::to_vec(&chaukas_json::to_openapi(&too_deep).unwrap()).unwrap();
    let json = http_request(pipeline.http, "POST", "/v1/events", &[JSON], &json_body).await;
    assert_eq!(json.status, 400, "{json:?}");

    pipeline.wait_for_rows(1, Duration::from_secs(20)).await;
    let query = QueryRequest {
        filter: Some(QueryFilter {
            tenant_id: tenant.into(),
            ..QueryFilter::default()
        }),
        ..QueryRequest::default()
    };
    let read = client
        .query_events(server::QueryEventsRequest {
            query: Some(query.clone()),
        })
        .await
        .expect("gRPC read")
        .into_inner();
    assert_eq!(
        chaukas_tests::as_sent(read.response.unwrap().events),
        vec![deepest.clone()]
    );
    let protobuf = http_request(
        pipeline.http,
        "POST",
        "/v1/query",
        &[PROTOBUF],
        &query.encode_to_vec(),
    )
    .await;
    assert_eq!(protobuf.status, 200, "{protobuf:?}");
    let json_query = serde_json::json!({"filter": {"tenant_id": tenant}});
    let json = http_request(
        pipeline.http,
        "POST",
        "/v1/query",
        &[JSON],
        json_query.to_string().as_bytes(),
    )
    .await;
    assert_eq!(json.status, 200, "{json:?}");
    let page: chaukas_proto::common::v1::QueryResponse =
        chaukas_json::from_slice(json.body.as_bytes()).unwrap();
    assert_eq!(chaukas_tests::as_sent(page.events), vec![deepest]);
    pipeline.stop().await;
}

/// Defect 2: a batch of empty events on the wire is refused before it is decoded, and a
/// request with a bad key before its body is read.
#[tokio::test]
async fn batches_are_counted_and_keys_checked_before_decoding() {
    let pipeline = Pipeline::start().await;
    let attack = empty_events_batch(1_000_000);
    let answer = raw_grpc::call(pipeline.grpc, INGEST_BATCH, attack.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument, "{answer:?}");
    assert!(
        answer.message().contains("1000000 events; at most 1000"),
        "{answer:?}"
    );
    let http = http_request(
        pipeline.http,
        "POST",
        "/v1/events/batch",
        &[PROTOBUF],
        &attack,
    )
    .await;
    assert_eq!(http.status, 400, "{http:?}");
    assert!(http.body.contains("1000000 events"), "{http:?}");
    pipeline.stop().await;

    let enforcing =
        Pipeline::start_with(|gateway, _| gateway.gateway.allow_unauthenticated = false).await;
    let answer = raw_grpc::call(enforcing.grpc, INGEST_BATCH, attack, Some("chk_garbage"))
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::Unauthenticated, "{answer:?}");
    assert_alive(&enforcing).await;
    enforcing.stop().await;
}

/// Defect 8: undecodable input is INVALID_ARGUMENT, too large is RESOURCE_EXHAUSTED / 413,
/// and storage errors never show SQL; over-long filters are refused by name (defect 9).
#[tokio::test]
async fn errors_follow_the_table_and_leak_nothing() {
    let pipeline = Pipeline::start_with(|gateway, _| {
        gateway.gateway.max_request_bytes = 64 * 1024;
    })
    .await;
    let garbage = raw_grpc::call(pipeline.grpc, INGEST_BATCH, vec![0xff; 64], None)
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    let oversize = raw_grpc::call(pipeline.grpc, INGEST_BATCH, vec![0x0a; 100_000], None)
        .await
        .unwrap_err();
    assert_eq!(oversize.code(), Code::ResourceExhausted, "{oversize:?}");
    let http = http_request(
        pipeline.http,
        "POST",
        "/v1/events/batch",
        &[PROTOBUF],
        &vec![0x0a; 100_000],
    )
    .await;
    assert_eq!(http.status, 413, "{http:?}");

    let long_text =
        serde_json::json!({"filter": {"tenant_id": "t", "text_query": "x".repeat(300_000)}});
    let response = http_request(
        pipeline.http,
        "POST",
        "/v1/query",
        &[JSON],
        long_text.to_string().as_bytes(),
    )
    .await;
    assert!(
        response.status == 400 || response.status == 413,
        "a client error, never 503: {response:?}"
    );
    assert!(!response.body.contains("SELECT"), "{response:?}");
    let query = QueryRequest {
        filter: Some(QueryFilter {
            tenant_id: "t".into(),
            text_query: "x".repeat(2_000),
            ..QueryFilter::default()
        }),
        ..QueryRequest::default()
    };
    let answer = raw_grpc::call(pipeline.grpc, QUERY_EVENTS, query_request(query), None)
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument);
    assert!(
        answer.message().contains("text_query is 2000 bytes"),
        "{answer:?}"
    );
    let tags = QueryRequest {
        filter: Some(QueryFilter {
            tenant_id: "t".into(),
            tags: vec!["tag".into(); 2_000],
            ..QueryFilter::default()
        }),
        ..QueryRequest::default()
    };
    let answer = raw_grpc::call(pipeline.grpc, QUERY_EVENTS, query_request(tags), None)
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument);
    assert!(
        answer.message().contains("tags has 2000 values"),
        "{answer:?}"
    );
    assert_alive(&pipeline).await;
    pipeline.stop().await;
}

fn query_request(query: QueryRequest) -> Vec<u8> {
    server::QueryEventsRequest { query: Some(query) }.encode_to_vec()
}

/// Defect 3: a page of large events stops at the page byte budget and pages on; every event
/// comes back exactly once, as protobuf and as JSON.
#[tokio::test]
async fn pages_of_large_events_are_bounded_in_bytes() {
    let pipeline = Pipeline::start().await;
    let tenant = "t-large";
    let big = "y".repeat(400 * 1024);
    let events: Vec<Event> = (0..30)
        .map(|index| Event {
            content: Some(Content::ToolCall(ToolCall {
                name: big.clone(),
                ..ToolCall::default()
            })),
            ..simple_event(tenant, &format!("large-{index:02}"))
        })
        .collect();
    let mut client = pipeline.server_client().await;
    for chunk in events.chunks(10) {
        client
            .ingest_event_batch(batch_request(chunk.to_vec()))
            .await
            .unwrap();
    }
    pipeline.wait_for_rows(30, Duration::from_secs(30)).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let query = QueryRequest {
            filter: Some(QueryFilter {
                tenant_id: tenant.into(),
                ..QueryFilter::default()
            }),
            page_size: 1_000,
            page_token: token.clone(),
            ..QueryRequest::default()
        };
        let response = http_request(
            pipeline.http,
            "POST",
            "/v1/query",
            &[JSON],
            chaukas_json::to_openapi(&query)
                .unwrap()
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200);
        let page: chaukas_proto::common::v1::QueryResponse =
            chaukas_json::from_slice(response.body.as_bytes()).unwrap();
        let bytes: usize = page.events.iter().map(Message::encoded_len).sum();
        assert!(
            bytes <= 8 * 1024 * 1024 + 512 * 1024,
            "page of {bytes} bytes"
        );
        seen.extend(page.events.into_iter().map(|event| event.event_id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    let expected: Vec<String> = events.iter().map(|event| event.event_id.clone()).collect();
    assert_eq!(seen, expected);
    assert!(pages >= 2, "30 x 400 KiB must not fit one 8 MiB page");
    pipeline.stop().await;
}

/// Defect 11: NaN refused at ingest, `CHK_` keys are checked (not anonymous), stats ranges
/// that would overflow are refused, multi-member gzip is read whole.
#[tokio::test]
async fn smaller_defects_stay_fixed() {
    let pipeline = Pipeline::start().await;
    let mut client = pipeline.server_client().await;
    let nan = with_arguments(
        "t-small",
        "nan",
        Struct {
            fields: [(
                "x".to_owned(),
                Value {
                    kind: Some(Kind::NumberValue(f64::NAN)),
                },
            )]
            .into(),
        },
    );
    let answer = client
        .ingest_event(server::IngestEventRequest { event: Some(nan) })
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument);

    let shouting = http_request(
        pipeline.http,
        "POST",
        "/v1/query",
        &[JSON, ("Authorization", "Bearer CHK_0123456789ab_secret")],
        b"{}",
    )
    .await;
    assert_eq!(shouting.status, 401, "{shouting:?}");

    let stats = server::GetEventStatsRequest {
        tenant_id: "t".into(),
        time_range: Some(chaukas_proto::common::v1::TimeRange {
            start: Some(prost_types::Timestamp {
                seconds: i64::MAX / 1_000,
                nanos: 0,
            }),
            end: None,
        }),
        ..Default::default()
    };
    let answer = client.get_event_stats(stats).await.unwrap_err();
    assert_eq!(answer.code(), Code::InvalidArgument, "{answer:?}");

    let body = chaukas_proto::client::v1::IngestEventBatchRequest {
        event_batch: Some(chaukas_proto::common::v1::EventBatch {
            events: vec![
                simple_event("t-small", "gz-1"),
                simple_event("t-small", "gz-2"),
            ],
            ..Default::default()
        }),
    }
    .encode_to_vec();
    let (first, second) = body.split_at(body.len() / 2);
    let mut gzipped = chaukas_tests::gzip(first);
    gzipped.extend(chaukas_tests::gzip(second));
    let response = http_request(
        pipeline.http,
        "POST",
        "/events/batch",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        &gzipped,
    )
    .await;
    assert_eq!(response.status, 202, "{response:?}");
    assert_alive(&pipeline).await;
    pipeline.stop().await;
}

/// A body budget that could never admit a request of the largest allowed size is refused at
/// startup, naming both settings, instead of answering 503 to such requests forever.
#[tokio::test]
async fn a_body_budget_below_the_largest_request_is_refused_at_startup() {
    let mut config = chaukas_gateway::GatewayConfig::default();
    config.gateway.max_request_bytes = 16 * 1024 * 1024;
    config.gateway.max_body_budget_bytes = 32 * 1024 * 1024;
    let error = chaukas_gateway::bind(&config).await.err().expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("max_body_budget_bytes") && message.contains("max_request_bytes"),
        "{message}"
    );
}
