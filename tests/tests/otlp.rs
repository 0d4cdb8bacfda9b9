//! OTLP ingestion end to end (docs/otlp.md): gRPC and HTTP (protobuf, JSON, gzip) on the
//! gateway's own ports and on OTLP's, partial success, retries, and hostile requests refused
//! before decoding. The real OpenTelemetry SDK's exporters are driven from
//! `tests/interop/test_otlp.py`.

use std::time::Duration;

use chaukas_proto::common::v1::{EventStatus, EventType};
use chaukas_tests::raw_grpc::empty_spans_export;
use chaukas_tests::{Pipeline, http_raw, http_request};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};
use prost::Message;
use serde_json::Value;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn span(trace: u8, id: u8, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("span {id}"),
        start_time_unix_nano: 1_764_000_000_000_000_000,
        end_time_unix_nano: 1_764_000_000_250_000_000,
        attributes,
        ..Span::default()
    }
}

fn export(tenant: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "agent"),
                    text("chaukas.tenant.id", tenant),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// A chat span and a failed tool call under it.
fn agent_run(tenant: &str, trace: u8) -> ExportTraceServiceRequest {
    let chat = span(
        trace,
        1,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.request.model", "gpt-test"),
            text("gen_ai.conversation.id", "conversation-1"),
        ],
    );
    let mut tool = span(
        trace,
        2,
        vec![
            text("gen_ai.operation.name", "execute_tool"),
            text("gen_ai.tool.name", "search"),
        ],
    );
    tool.parent_span_id = vec![1; 8];
    tool.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "search backend down".into(),
    });
    export(tenant, vec![chat, tool])
}

#[tokio::test]
async fn grpc_export_is_stored_as_events_and_a_retry_stores_nothing_twice() {
    let pipeline = Pipeline::start().await;
    let channel = chaukas_tests::channel(pipeline.grpc).await;
    let mut client = TraceServiceClient::new(channel);
    let request = agent_run("t-grpc", 7);
    let answer = client.export(request.clone()).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None, "every span was stored");
    // The exporter did not see the answer and sends the same spans again.
    client.export(request).await.unwrap();
    // Chat: start and end; the failed tool call: start, end and an error.
    pipeline
        .assert_stored_once(5, Duration::from_secs(20))
        .await;
    let events = pipeline.stored_events().await;
    let end = events
        .iter()
        .find(|event| event.r#type == EventType::ToolCallEnd as i32)
        .expect("the tool call's end");
    assert_eq!(end.status, EventStatus::Failed as i32);
    assert_eq!(end.tenant_id, "t-grpc");
    assert_eq!(end.parent_span_id, "0101010101010101");
    let chat = events
        .iter()
        .find(|event| event.r#type == EventType::ModelInvocationStart as i32)
        .expect("the chat's start");
    assert_eq!(chat.session_id, "conversation-1");
    pipeline.stop().await;
}

#[tokio::test]
async fn http_json_and_gzip_protobuf_store_the_good_spans_and_name_the_bad_one() {
    let pipeline = Pipeline::start().await;
    let mut request = agent_run("t-http", 9);
    let mut bad = span(9, 3, vec![]);
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1;
    request.resource_spans[0].scope_spans[0].spans.push(bad);
    let json = serde_json::to_vec(&request).unwrap();
    let response = http_request(
        pipeline.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        &json,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let answer: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{answer}");
    let reason = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        reason.contains("0303030303030303") && reason.contains("before"),
        "names the span and why: {reason}"
    );

    let other = agent_run("t-http", 10).encode_to_vec();
    let (status, headers, body) = http_raw(
        pipeline.http,
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &chaukas_tests::gzip(&other),
    )
    .await;
    assert_eq!(status, 200, "{headers:?}");
    assert!(body.is_empty(), "all stored: an empty response message");
    pipeline
        .assert_stored_once(10, Duration::from_secs(20))
        .await;
    let (_, metrics) = chaukas_tests::http_get(pipeline.http, "/metrics").await;
    for line in [
        "chaukas_gateway_otlp_spans_total{outcome=\"stored\"} 4",
        "chaukas_gateway_otlp_spans_total{outcome=\"refused\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    pipeline.stop().await;
}

#[tokio::test]
async fn bad_and_hostile_exports_are_refused_with_otlp_statuses() {
    let pipeline = Pipeline::start().await;
    let post = |content_type: &'static str, body: Vec<u8>| {
        let http = pipeline.http;
        async move {
            http_raw(
                http,
                "POST",
                "/v1/traces",
                &[("Content-Type", content_type)],
                &body,
            )
            .await
        }
    };
    // Not OTLP at all: 400 and a google.rpc.Status saying so, in the request's encoding.
    let (status, _, body) = post("application/json", b"{\"resourceSpans\": 7}".to_vec()).await;
    assert_eq!(status, 400);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["code"], 3, "INVALID_ARGUMENT: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("OTLP/JSON"));
    let (status, _, _) = post("text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 415);

    // Eight million empty spans in 16 MiB: refused from the bytes, before decoding.
    let flood = empty_spans_export((8 << 20) - 16);
    let (status, _, body) = post("application/x-protobuf", flood).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = post("application/x-protobuf", empty_spans_export(1000)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &body[..],
        )
        .unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1000);
    pipeline.stop().await;
}

/// A span whose one attribute is `bytes` long.
fn big_span(id: u8, bytes: usize) -> Span {
    span(11, id, vec![text("blob", &"x".repeat(bytes))])
}

#[tokio::test]
async fn a_spent_budget_is_unavailable_with_retry_hints_in_both_transports() {
    // A small gateway: one export of 600 KB pays ~1.8 MB for its body and ~3 MB for what it
    // would decode to, more than the 3 MiB budget holds.
    let pipeline = Pipeline::start_with(|gateway, _| {
        gateway.gateway.max_request_bytes = 1 << 20;
        gateway.gateway.max_body_budget_bytes = 3 << 20;
        gateway.gateway.max_otlp_decoded_bytes = 3 << 20;
    })
    .await;
    let request = export(
        "t-budget",
        (1..=6).map(|id| big_span(id, 100_000)).collect(),
    );
    let (status, headers, body) = http_raw(
        pipeline.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers.iter().any(|(name, _)| name == "retry-after"),
        "{headers:?}"
    );
    let channel = chaukas_tests::channel(pipeline.grpc).await;
    let error = TraceServiceClient::new(channel)
        .export(request)
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    assert!(
        error
            .metadata()
            .get_bin("google.rpc.retryinfo-bin")
            .is_some(),
        "OTLP exporters read their retry delay here: {error:?}"
    );
    // A smaller export fits and is stored.
    let small = export("t-budget", vec![big_span(9, 1_000)]);
    let (status, _, _) = http_raw(
        pipeline.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &small.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    pipeline.stop().await;
}

#[tokio::test]
async fn a_tenants_privacy_policy_reaches_into_spans_by_attribute_name() {
    let pipeline = Pipeline::start().await;
    chaukas_tests::set_policy(
        &pipeline.nats,
        "t-private",
        r#"{"retention": {"min_days": 1},
            "redaction": {"rules": [
              {"path": "/llm_invocation/request/messages/*/parts/*/content", "method": "mask", "category": "prompt"},
              {"path": "/metadata/otlp/attributes/gen_ai.input.messages", "method": "drop"}]}}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chat = span(
        12,
        1,
        vec![
            text("gen_ai.operation.name", "chat"),
            text(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"my secret plan"}]}]"#,
            ),
        ],
    );
    let response = http_request(
        pipeline.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(&export("t-private", vec![chat])).unwrap(),
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    pipeline
        .assert_stored_once(2, Duration::from_secs(20))
        .await;
    for event in pipeline.stored_events().await {
        let stored = format!("{event:?}");
        assert!(
            !stored.contains("secret plan"),
            "plaintext stored: {stored}"
        );
        if event.event_id.ends_with("-start") {
            assert!(stored.contains("[REDACTED:prompt]"), "{stored}");
        } else {
            let redaction = event
                .redaction
                .expect("the end event says what was removed");
            assert!(
                redaction
                    .fields
                    .iter()
                    .any(|field| field.ends_with("/metadata/otlp/attributes/gen_ai.input.messages")),
                "{redaction:?}"
            );
        }
    }
    pipeline.stop().await;
}
