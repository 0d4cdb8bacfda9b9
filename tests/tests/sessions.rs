//! The sessions API against real NATS and ClickHouse (issue #17): every outcome rule,
//! filters, keyset paging, prefix lookup, the span tree and state diffs, and the PROV-O
//! export parsed by a real RDF library (rdflib).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaukas_auth::Scope;
use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{
    AgentHandoff, CostDetails, ErrorInfo, Event, EventStatus, EventType, LlmInvocation, ToolCall,
};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{
    Pipeline, assert_conforms, batch_request, create_key, get_json, get_with_key,
    run_contract_script,
};
use serde_json::Value;

const T0: i64 = 1_764_000_000;

/// An event of session `session` at `T0 + second` (or at `at` seconds since the epoch).
fn ev(id: &str, session: &str, kind: EventType, status: EventStatus, span: &str, at: i64) -> Event {
    let mut event = simple_event("acme", id);
    event.session_id = session.into();
    event.r#type = kind as i32;
    event.status = status as i32;
    event.span_id = span.into();
    event.agent_name = "planner".into();
    event.timestamp = Some(prost_types::Timestamp {
        seconds: at,
        nanos: 0,
    });
    event
}

fn error(id: &str, session: &str, span: &str, at: i64, recoverable: bool) -> Event {
    let mut event = ev(id, session, EventType::Error, EventStatus::Failed, span, at);
    event.content = Some(Content::Error(ErrorInfo {
        error_message: "boom".into(),
        recoverable,
        ..ErrorInfo::default()
    }));
    event
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Every outcome case, plus what the detail page and PROV export need.
fn sessions() -> Vec<Event> {
    use EventStatus::{Cancelled, Completed, Failed, Started};
    use EventType as T;
    let mut events = Vec::new();
    // complete: a tool and a model call that succeed; tokens and cost.
    let mut model = ev(
        "c3",
        "s-complete",
        T::ModelInvocationEnd,
        Completed,
        "m1",
        T0 + 3,
    );
    model.content = Some(Content::LlmInvocation(LlmInvocation {
        provider: "openai".into(),
        model: "gpt-4o".into(),
        prompt_tokens: 100,
        completion_tokens: 20,
        ..LlmInvocation::default()
    }));
    model.cost = Some(CostDetails {
        total_cost: 0.25,
        ..CostDetails::default()
    });
    model.parent_span_id = "root".into();
    let mut tool_start = ev("c1", "s-complete", T::ToolCallStart, Started, "t1", T0 + 1);
    tool_start.parent_span_id = "root".into();
    tool_start.content = Some(Content::ToolCall(ToolCall {
        name: "search".into(),
        ..ToolCall::default()
    }));
    let mut handoff = ev("c4", "s-complete", T::AgentHandoff, Completed, "", T0 + 4);
    handoff.content = Some(Content::AgentHandoff(AgentHandoff {
        from_agent_name: "planner".into(),
        to_agent_name: "coder".into(),
        ..AgentHandoff::default()
    }));
    let mut state_1 = ev("c5", "s-complete", T::StateUpdate, Completed, "", T0 + 5);
    state_1.content = Some(Content::StateUpdate(struct_of(&[("step", 1.0)])));
    let mut state_2 = ev("c6", "s-complete", T::StateUpdate, Completed, "", T0 + 6);
    state_2.content = Some(Content::StateUpdate(struct_of(&[
        ("step", 2.0),
        ("done", 1.0),
    ])));
    events.extend([
        ev("c0", "s-complete", T::SessionStart, Started, "root", T0),
        tool_start,
        ev("c2", "s-complete", T::ToolCallEnd, Completed, "t1", T0 + 2),
        model,
        handoff,
        state_1,
        state_2,
        ev("c9", "s-complete", T::SessionEnd, Completed, "root", T0 + 9),
    ]);
    // failed: every action failed (a failed tool, a cancelled model call, an unrecovered
    // error of its own).
    events.extend([
        ev("f1", "s-failed", T::ToolCallEnd, Failed, "t1", T0 + 11),
        ev(
            "f2",
            "s-failed",
            T::ModelInvocationEnd,
            Cancelled,
            "m1",
            T0 + 12,
        ),
        error("f3", "s-failed", "", T0 + 13, false),
        ev("f9", "s-failed", T::SessionEnd, Completed, "", T0 + 19),
    ]);
    // partial: one of two actions failed, by an unrecovered error after its end.
    events.extend([
        ev("p1", "s-partial", T::ToolCallEnd, Completed, "t1", T0 + 21),
        ev("p2", "s-partial", T::ToolCallEnd, Completed, "t2", T0 + 22),
        error("p3", "s-partial", "t2", T0 + 23, false),
        ev("p9", "s-partial", T::SessionEnd, Completed, "", T0 + 29),
    ]);
    // complete: a retry that succeeds on the same span, and a recoverable error.
    events.extend([
        ev("r1", "s-retry", T::ToolCallEnd, Failed, "t1", T0 + 31),
        ev("r2", "s-retry", T::Retry, Started, "t1", T0 + 32),
        ev("r3", "s-retry", T::ToolCallEnd, Completed, "t1", T0 + 33),
        error("r4", "s-retry", "", T0 + 34, true),
        ev("r9", "s-retry", T::SessionEnd, Completed, "", T0 + 39),
    ]);
    // in progress (recent, no end) and abandoned (two hours idle, no end).
    let now = now_secs();
    events.push(ev("o1", "s-open", T::ToolCallStart, Started, "t1", now));
    events.push(ev(
        "a1",
        "s-abandoned",
        T::ToolCallEnd,
        Completed,
        "t1",
        now - 7200,
    ));
    // Two sessions sharing a prefix.
    events.push(ev("x1", "abc-1", T::SessionStart, Started, "", T0 + 41));
    events.push(ev("x2", "abc-2", T::SessionStart, Started, "", T0 + 42));
    // An id with a slash, addressed as %2F.
    events.push(ev(
        "y1",
        "team/nightly",
        T::SessionStart,
        Started,
        "",
        T0 + 43,
    ));
    events
}

fn struct_of(fields: &[(&str, f64)]) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(*value)),
                    },
                )
            })
            .collect(),
    }
}

fn outcome_of<'a>(page: &'a Value, session: &str) -> &'a str {
    page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["session_id"] == session)
        .unwrap_or_else(|| panic!("{session} not listed: {page}"))["outcome"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn sessions_are_listed_with_outcomes_filtered_paged_and_detailed() {
    let pipeline = Pipeline::start().await;
    let events = sessions();
    let count = events.len() as u64;
    let mut client = pipeline.server_client().await;
    let response = client
        .ingest_event_batch(batch_request(events))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted_count as u64, count, "{response:?}");
    pipeline
        .assert_stored_once(count, Duration::from_secs(30))
        .await;
    let key = create_key(&pipeline, "acme", &[Scope::Query]).await;

    let (status, page) = get_json(&pipeline, &key, "/v1/sessions?page_size=100").await;
    assert_eq!(status, 200, "{page}");
    assert_conforms("SessionPage", &page);
    for (session, outcome) in [
        ("s-complete", "complete"),
        ("s-failed", "failed"),
        ("s-partial", "partial"),
        ("s-retry", "complete"),
        ("s-open", "in_progress"),
        ("s-abandoned", "abandoned"),
    ] {
        assert_eq!(outcome_of(&page, session), outcome, "{session}: {page}");
    }
    let complete = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["session_id"] == "s-complete")
        .unwrap();
    assert_eq!(complete["event_count"], 8);
    assert_eq!(complete["tool_calls"], 1);
    assert_eq!(complete["model_calls"], 1);
    assert_eq!(complete["input_tokens"], 100);
    assert_eq!(complete["output_tokens"], 20);
    assert_eq!(complete["cost"], 0.25);
    assert_eq!(complete["duration_ms"], 9000.0);
    assert_eq!(complete["agents"], serde_json::json!(["planner"]));

    // Filters.
    let (_, failed) = get_json(&pipeline, &key, "/v1/sessions?outcome=failed").await;
    let ids: Vec<&str> = failed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["s-failed"]);
    let (_, errors) = get_json(
        &pipeline,
        &key,
        "/v1/sessions?has_errors=true&page_size=100",
    )
    .await;
    let errored: Vec<&str> = errors["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["session_id"].as_str().unwrap())
        .collect();
    for session in ["s-failed", "s-partial", "s-retry"] {
        assert!(errored.contains(&session), "{session} not in {errored:?}");
    }
    assert!(!errored.contains(&"s-complete"));
    let (status, bad) = get_json(&pipeline, &key, "/v1/sessions?outcome=done").await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = get_json(&pipeline, &key, "/v1/sessions?colour=red").await;
    assert_eq!(status, 400, "{bad}");

    // Keyset paging: newest first, every session once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!("/v1/sessions?page_size=3&page_token={token}");
        let (status, page) = get_json(&pipeline, &key, &path).await;
        assert_eq!(status, 200, "{page}");
        for row in page["sessions"].as_array().unwrap() {
            seen.push((
                row["start"].as_str().unwrap().to_owned(),
                row["session_id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_page_token"].as_str() {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    // Prefix lookup: unique, ambiguous, missing.
    let (status, detail) = get_json(&pipeline, &key, "/v1/sessions/s-compl").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["session_id"], "s-complete");
    assert_conforms("SessionDetail", &detail);
    let (status, conflict) = get_json(&pipeline, &key, "/v1/sessions/abc").await;
    assert_eq!(status, 409, "{conflict}");
    assert_conforms("Error", &conflict);
    let (status, event) = get_json(&pipeline, &key, "/v1/sessions/s-complete/events/c1").await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["event_id"], "c1");
    assert_conforms("Event", &event);
    let message = conflict.to_string();
    assert!(
        message.contains("abc-1") && message.contains("abc-2"),
        "{message}"
    );
    let (status, _) = get_json(&pipeline, &key, "/v1/sessions/nothing-like-it").await;
    assert_eq!(status, 404);
    let (status, slashed) = get_json(&pipeline, &key, "/v1/sessions/team%2Fnightly").await;
    assert_eq!(status, 200, "{slashed}");
    assert_eq!(slashed["session_id"], "team/nightly");
    let (status, _) = get_json(&pipeline, &key, "/v1/sessions/team%2Fnightly/prov").await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&pipeline, &key, "/v1/sessions/team/nightly").await;
    assert_eq!(status, 404, "a bare slash separates resources");

    // The span tree: pairs joined with durations and parents; names from the content.
    let spans = detail["spans"].as_array().unwrap();
    let tool = spans.iter().find(|s| s["span_id"] == "t1").unwrap();
    assert_eq!(tool["kind"], "tool");
    assert_eq!(tool["name"], "search");
    assert_eq!(tool["parent_span_id"], "root");
    assert_eq!(tool["duration_ms"], 1000.0);
    assert_eq!(tool["status"], "COMPLETED");
    let model = spans.iter().find(|s| s["span_id"] == "m1").unwrap();
    assert_eq!(model["name"], "openai/gpt-4o");
    // State updates: before, after and the diff.
    let states = detail["state_updates"].as_array().unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[1]["before"], serde_json::json!({"step": 1.0}));
    let diff: Vec<(String, String)> = states[1]["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["op"].as_str().unwrap().into(),
                d["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        diff,
        vec![
            ("replace".into(), "/step".into()),
            ("add".into(), "/done".into())
        ]
    );
    // The failed session names its failures.
    let (_, failed) = get_json(&pipeline, &key, "/v1/sessions/s-failed").await;
    assert_conforms("SessionDetail", &failed);
    let failures: Vec<&str> = failed["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["failure"].as_str())
        .collect();
    assert_eq!(failures.len(), 3, "{failed}");

    // Confined to the key's tenant.
    let other = create_key(&pipeline, "other", &[Scope::Query]).await;
    let (status, page) = get_json(&pipeline, &other, "/v1/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(page["sessions"], serde_json::json!([]));
    let (status, _) = get_json(&pipeline, &other, "/v1/sessions/s-complete").await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&pipeline, &other, "/v1/sessions?tenant=acme").await;
    assert_eq!(status, 403);

    check_prov(&pipeline, &key).await;
    pipeline.stop().await;
}

/// The PROV-O export, parsed by rdflib: the triples a PROV reader relies on.
async fn check_prov(pipeline: &Pipeline, key: &str) {
    let (status, body) = get_with_key(pipeline, key, "/v1/sessions/s-complete/prov").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let output = run_contract_script("prov_triples.py", &[], &body);
    assert!(
        output.success,
        "rdflib could not parse the export: {}",
        output.stderr
    );
    let triples: Vec<[String; 3]> = serde_json::from_slice(&output.stdout).unwrap();
    let has = |s: &str, p: &str, o: &str| {
        triples
            .iter()
            .any(|[ts, tp, to]| ts == s && tp == p && to == o)
    };
    const PROV: &str = "http://www.w3.org/ns/prov#";
    const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
    let session = "urn:chaukas:acme:session:s-complete";
    let tool = "urn:chaukas:acme:action:t1";
    let model = "urn:chaukas:acme:action:m1";
    let planner = "urn:chaukas:acme:agent:planner";
    let coder = "urn:chaukas:acme:agent:coder";
    let prov = |term: &str| format!("{PROV}{term}");
    for (s, p, o) in [
        (session, RDF_TYPE.to_owned(), prov("Activity")),
        (tool, RDF_TYPE.to_owned(), prov("Activity")),
        (
            tool,
            "http://purl.org/dc/terms/isPartOf".to_owned(),
            session.to_owned(),
        ),
        (tool, prov("wasAssociatedWith"), planner.to_owned()),
        (tool, prov("used"), "urn:chaukas:acme:event:c1".to_owned()),
        (
            "urn:chaukas:acme:event:c2",
            prov("wasGeneratedBy"),
            tool.to_owned(),
        ),
        (model, prov("wasInformedBy"), tool.to_owned()),
        (planner, RDF_TYPE.to_owned(), prov("SoftwareAgent")),
        (coder, prov("actedOnBehalfOf"), planner.to_owned()),
        (
            session,
            "https://chaukas.dev/ns/audit#outcome".to_owned(),
            "complete".to_owned(),
        ),
    ] {
        assert!(has(s, &p, &o), "missing triple {s} {p} {o} in {triples:?}");
    }
    let started = triples
        .iter()
        .find(|[s, p, _]| s == tool && *p == prov("startedAtTime"))
        .expect("the tool call's start time");
    assert!(started[2].starts_with("2025-11-24T16:00:01"), "{started:?}");
}
