use serde_json::json;

use super::*;
use common::{Event, EventBatch, EventStatus, EventType, QueryRequest, Severity, SortOrder};

fn tool_call_event() -> Event {
    Event {
        event_id: "e-1".into(),
        tenant_id: "acme".into(),
        session_id: "s-1".into(),
        r#type: EventType::ToolCallStart.into(),
        status: EventStatus::Started.into(),
        severity: Severity::Info.into(),
        timestamp: Some(prost_types::Timestamp {
            seconds: 1_795_000_000,
            nanos: 123_456_000,
        }),
        content: Some(common::event::Content::ToolCall(common::ToolCall {
            id: "call-1".into(),
            name: "search".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[test]
fn openapi_spelling_decodes() {
    let event: Event = from_value(json!({
        "event_id": "e-1", "tenant_id": "acme", "session_id": "s-1",
        "type": "TOOL_CALL_START", "status": "STARTED", "severity": "INFO",
        "timestamp": "2026-11-18T11:06:40.123456Z",
        "content": {"kind": "tool_call", "id": "call-1", "name": "search"}
    }))
    .unwrap();
    assert_eq!(event, tool_call_event());
}

#[test]
fn canonical_spelling_decodes_with_either_field_name_style() {
    let event: Event = from_value(json!({
        "eventId": "e-1", "tenant_id": "acme", "sessionId": "s-1",
        "type": "EVENT_TYPE_TOOL_CALL_START", "status": "EVENT_STATUS_STARTED",
        "severity": "SEVERITY_INFO", "timestamp": "2026-11-18T11:06:40.123456Z",
        "toolCall": {"id": "call-1", "name": "search"}
    }))
    .unwrap();
    assert_eq!(event, tool_call_event());
}

#[test]
fn both_renderings_round_trip() {
    let event = tool_call_event();
    let openapi = to_openapi(&event).unwrap();
    assert_eq!(openapi["type"], "TOOL_CALL_START");
    assert_eq!(openapi["content"]["kind"], "tool_call");
    assert_eq!(from_value::<Event>(openapi).unwrap(), event);
    let canonical = to_canonical(&event).unwrap();
    assert_eq!(canonical["type"], "EVENT_TYPE_TOOL_CALL_START");
    assert_eq!(canonical["tool_call"]["name"], "search");
    assert_eq!(from_value::<Event>(canonical).unwrap(), event);
}

#[test]
fn aliased_kinds_map_to_their_proto_fields() {
    let event: Event = from_value(json!({
        "event_id": "e", "type": "POLICY_DECISION",
        "content": {"kind": "policy_decision", "policy_id": "p", "outcome": "deny"}
    }))
    .unwrap();
    assert!(
        matches!(event.content, Some(common::event::Content::Policy(ref p)) if p.outcome == "deny")
    );
    assert_eq!(
        to_openapi(&event).unwrap()["content"]["kind"],
        "policy_decision"
    );
    let event: Event = from_value(
        json!({"event_id": "e", "content": {"kind": "error_info", "error_message": "x"}}),
    )
    .unwrap();
    assert!(matches!(
        event.content,
        Some(common::event::Content::Error(_))
    ));
}

#[test]
fn naive_sdk_timestamps_are_utc() {
    let event: Event =
        from_value(json!({"event_id": "e", "timestamp": "2026-11-18T11:06:40.123456"})).unwrap();
    assert_eq!(event.timestamp, tool_call_event().timestamp);
}

#[test]
fn unknown_any_types_travel_opaquely() {
    let mut event = tool_call_event();
    event.extensions.push(prost_types::Any {
        type_url: "type.googleapis.com/vendor.Extension".into(),
        value: vec![8, 150, 1],
    });
    let openapi = to_openapi(&event).unwrap();
    assert_eq!(
        openapi["extensions"][0],
        json!({"@type": "type.googleapis.com/vendor.Extension", "value": "CJYB"})
    );
    assert_eq!(from_value::<Event>(openapi).unwrap(), event);
    let error = from_value::<Event>(json!({"extensions": [{"@type": "x/vendor.T", "a": 1}]}))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("extensions[0]: @type \"x/vendor.T\""),
        "{error}"
    );
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            json!({"type": "NOPE"}),
            "type: unknown EventType \"NOPE\"; expected one of SESSION_START",
        ),
        (
            json!({"events": [{}, {"status": "DONE"}]}),
            "events[1].status: unknown EventStatus \"DONE\"",
        ),
        (
            json!({"events": [{"content": {"kind": "poem"}}]}),
            "events[0].content.kind: unknown content kind \"poem\"",
        ),
        (
            json!({"events": [{"content": {"id": "x"}}]}),
            "events[0].content.kind: a string is required",
        ),
        (
            json!({"events": [{"is_partial": "yes"}]}),
            "events[0].is_partial: ",
        ),
        (
            json!({"batch_size": 3}),
            "$: unrecognized field name 'batch_size'",
        ),
    ];
    for (body, expected) in cases {
        let error = from_value::<EventBatch>(match body {
            serde_json::Value::Object(ref o) if o.contains_key("type") => json!({"events": [body]}),
            other => other,
        });
        let message = error.unwrap_err().to_string();
        let expected = if expected.starts_with("type") {
            format!("events[0].{expected}")
        } else {
            expected.to_owned()
        };
        assert!(
            message.starts_with(&expected),
            "{message:?} should start with {expected:?}"
        );
    }
    let syntax = from_slice::<Event>(b"{\"event_id\": ").unwrap_err();
    assert!(matches!(syntax, JsonError::Syntax(_)), "{syntax:?}");
}

#[test]
fn query_requests_take_short_enums_in_lists() {
    let request: QueryRequest = from_value(json!({
        "filter": {"tenant_id": "acme", "types": ["TOOL_CALL_START", "EVENT_TYPE_ERROR"],
                   "severities": ["warn"]},
        "page_size": 10, "order_by_time": "ASC"
    }))
    .unwrap();
    let filter = request.filter.unwrap();
    assert_eq!(
        filter.types,
        vec![EventType::ToolCallStart as i32, EventType::Error as i32]
    );
    assert_eq!(filter.severities, vec![Severity::Warn as i32]);
    assert_eq!(request.order_by_time, SortOrder::Asc as i32);
}
