//! The cost walk: what a hostile request is charged, and that both encodings agree.

use std::mem::size_of;

use chaukas_testkit::raw_grpc::empty_spans_export;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::Encoding;
use crate::tests::{int, request, span_with, string};

#[test]
fn a_flood_of_empty_spans_is_charged_what_it_decodes_to() {
    let body = empty_spans_export(100_000);
    let cost = Encoding::Protobuf.cost(&body).unwrap();
    assert_eq!(cost.spans, 100_000);
    assert!(
        cost.bytes > 100_000 * size_of::<Span>() * 2,
        "{} bytes charged for {} bytes of body",
        cost.bytes,
        body.len()
    );
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec!["{}"; 100_000].join(",")
    );
    let cost = Encoding::Json.cost(json.as_bytes()).unwrap();
    assert_eq!(cost.spans, 100_000);
}

#[test]
fn an_escaped_key_costs_what_it_means() {
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"sp\u0061ns":[{},{},{}]}]}]}"#;
    assert_eq!(Encoding::Json.cost(json.as_bytes()).unwrap().spans, 3);
    let decoded = Encoding::Json.decode(json.as_bytes()).unwrap();
    assert_eq!(decoded.resource_spans[0].scope_spans[0].spans.len(), 3);
}

#[test]
fn both_encodings_of_one_request_cost_alike_and_decode_alike() {
    let spans = (1..=3)
        .map(|id| {
            span_with(
                id,
                vec![
                    string("gen_ai.operation.name", "chat"),
                    int("gen_ai.usage.input_tokens", 1 << 40),
                ],
            )
        })
        .collect();
    let original = request(vec![string("service.name", "agent")], spans);
    let protobuf = original.encode_to_vec();
    let json = serde_json::to_vec(&original).unwrap();
    let by_protobuf = Encoding::Protobuf.cost(&protobuf).unwrap();
    let by_json = Encoding::Json.cost(&json).unwrap();
    assert_eq!((by_protobuf.spans, by_json.spans), (3, 3));
    let ratio = by_json.bytes as f64 / by_protobuf.bytes as f64;
    assert!(
        (0.5..2.5).contains(&ratio),
        "{by_protobuf:?} vs {by_json:?}"
    );
    assert_eq!(Encoding::Json.decode(&json).unwrap(), original);
    assert_eq!(Encoding::Protobuf.decode(&protobuf).unwrap(), original);
    let text = String::from_utf8(json).unwrap();
    assert!(
        text.contains(r#""traceId":"abababab"#),
        "ids are hex: {text}"
    );
}

fn nested(levels: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..levels {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

#[test]
fn nesting_past_the_limit_is_refused_before_decoding() {
    let deep = |levels| {
        let attribute = KeyValue {
            key: "deep".into(),
            value: Some(nested(levels)),
            ..KeyValue::default()
        };
        request(vec![], vec![span_with(1, vec![attribute])])
    };
    let shallow = deep(20);
    assert!(Encoding::Protobuf.cost(&shallow.encode_to_vec()).is_ok());
    assert!(
        Encoding::Json
            .cost(&serde_json::to_vec(&shallow).unwrap())
            .is_ok()
    );
    let too_deep = deep(100);
    let error = Encoding::Protobuf
        .cost(&too_deep.encode_to_vec())
        .unwrap_err();
    assert!(error.contains("nested deeper"), "{error}");
    let error = Encoding::Json
        .cost(&serde_json::to_vec(&too_deep).unwrap())
        .unwrap_err();
    assert!(error.contains("nested deeper"), "{error}");
}

#[test]
fn broken_bytes_say_what_is_wrong() {
    let mut body = empty_spans_export(3);
    body.truncate(body.len() - 1);
    let error = Encoding::Protobuf.cost(&body).unwrap_err();
    assert!(error.contains("ends in the middle"), "{error}");
    let error = Encoding::Json
        .cost(br#"{"resourceSpans": "#)
        .map(|_| ())
        .and_then(|()| Encoding::Json.decode(br#"{"resourceSpans": "#).map(|_| ()));
    assert!(error.unwrap_err().contains("not a valid OTLP/JSON"));
}
