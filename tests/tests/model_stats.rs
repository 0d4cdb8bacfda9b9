//! `GET /v1/stats/models`: tokens, cost and calls by model and provider, from the
//! aggregate ClickHouse keeps at insert time (migration 0009), confined like every read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaukas_auth::Scope;
use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{CostDetails, Event, EventStatus, EventType, LlmInvocation};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{
    Pipeline, assert_conforms, create_key, create_project_key, get_json, ingest_with_key,
};
use serde_json::{Value, json};

/// Ten minutes ago, in seconds: inside the default range (the last day).
fn recently() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap() - 600
}

/// A model invocation event of `tenant`/`project`.
fn model_event(
    (tenant, project): (&str, &str),
    id: &str,
    end: Option<EventStatus>,
    (provider, model): (&str, &str),
    (prompt, completion): (i32, i32),
) -> Event {
    let mut event = simple_event(tenant, id);
    event.project_id = project.into();
    event.r#type = match end {
        Some(_) => EventType::ModelInvocationEnd,
        None => EventType::ModelInvocationStart,
    } as i32;
    event.status = end.unwrap_or(EventStatus::Started) as i32;
    event.timestamp = Some(prost_types::Timestamp {
        seconds: recently(),
        nanos: 0,
    });
    event.content = Some(Content::LlmInvocation(LlmInvocation {
        provider: provider.into(),
        model: model.into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        ..LlmInvocation::default()
    }));
    event
}

fn figures(answer: &Value) -> Vec<(String, u64, u64, u64, u64, f64)> {
    answer["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                format!(
                    "{}/{}",
                    row["provider"].as_str().unwrap(),
                    row["model"].as_str().unwrap()
                ),
                row["calls"].as_u64().unwrap(),
                row["failed_calls"].as_u64().unwrap(),
                row["input_tokens"].as_u64().unwrap(),
                row["output_tokens"].as_u64().unwrap(),
                row["cost"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn tokens_cost_and_calls_are_summed_by_model_and_provider() {
    let pipeline = Pipeline::start().await;
    let ingest = create_key(&pipeline, "acme", &[Scope::Ingest]).await;
    let gpt = ("openai", "gpt-4o");
    let p1 = ("acme", "p1");
    let mut events = vec![
        model_event(p1, "m1-start", None, gpt, (0, 0)),
        model_event(p1, "m1-end", Some(EventStatus::Completed), gpt, (100, 20)),
        model_event(p1, "m2-end", Some(EventStatus::Failed), gpt, (10, 0)),
        // The provider from CostDetails, tokens and cost too.
        model_event(
            p1,
            "m3-end",
            Some(EventStatus::Completed),
            ("", "claude"),
            (0, 0),
        ),
        model_event(
            ("acme", "p2"),
            "m4-end",
            Some(EventStatus::Completed),
            gpt,
            (5, 5),
        ),
    ];
    events[1].cost = Some(CostDetails {
        total_cost: 0.25,
        ..CostDetails::default()
    });
    events[3].cost = Some(CostDetails {
        provider: "anthropic".into(),
        input_tokens: 7,
        output_tokens: 3,
        total_cost: 0.1,
        ..CostDetails::default()
    });
    // A cost that names no model is in no model's figures.
    let mut tool = simple_event("acme", "tool-with-cost");
    tool.project_id = "p1".into();
    tool.cost = Some(CostDetails {
        total_cost: 1.0,
        ..CostDetails::default()
    });
    events.push(tool);
    let count = events.len() as u64;
    ingest_with_key(&pipeline, &ingest, events).await;
    let other = create_key(&pipeline, "zeta", &[Scope::Ingest]).await;
    let foreign = model_event(
        ("zeta", "p1"),
        "z1",
        Some(EventStatus::Completed),
        gpt,
        (999, 9),
    );
    ingest_with_key(&pipeline, &other, vec![foreign]).await;
    pipeline
        .assert_stored_once(count + 1, Duration::from_secs(30))
        .await;

    let stats = create_key(&pipeline, "acme", &[Scope::Stats]).await;
    let (status, answer) = get_json(&pipeline, &stats, "/v1/stats/models").await;
    assert_eq!(status, 200, "{answer}");
    assert_conforms("ModelStats", &answer);
    assert_eq!(
        figures(&answer),
        vec![
            ("openai/gpt-4o".into(), 3, 1, 115, 25, 0.25),
            ("anthropic/claude".into(), 1, 0, 7, 3, 0.1),
        ],
        "{answer}"
    );
    let (_, p1_only) = get_json(&pipeline, &stats, "/v1/stats/models?project=p1").await;
    assert_eq!(
        figures(&p1_only)[0],
        ("openai/gpt-4o".into(), 2, 1, 110, 20, 0.25)
    );

    // A range after the events has none; whole minutes are reported.
    let later = (recently() + 300) * 1_000_000_000;
    let (status, empty) =
        get_json(&pipeline, &stats, &format!("/v1/stats/models?from={later}")).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["models"], json!([]));
    assert!(empty["from"].as_str().unwrap().ends_with(":00Z"), "{empty}");

    // Bad requests say what to fix; the scope and the project are enforced.
    let (status, bad) = get_json(&pipeline, &stats, "/v1/stats/models?colour=red").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("colour"), "{bad}");
    let (status, _) = get_json(&pipeline, &stats, "/v1/stats/models?from=later").await;
    assert_eq!(status, 400);
    let reader = create_key(&pipeline, "acme", &[Scope::Query]).await;
    let (status, _) = get_json(&pipeline, &reader, "/v1/stats/models").await;
    assert_eq!(status, 403, "the stats scope is needed");
    let p2_key = create_project_key(&pipeline, "acme", Some("p2"), &[Scope::Stats]).await;
    let (_, p2) = get_json(&pipeline, &p2_key, "/v1/stats/models").await;
    assert_eq!(
        figures(&p2),
        vec![("openai/gpt-4o".into(), 1, 0, 5, 5, 0.0)]
    );
    let (status, _) = get_json(&pipeline, &p2_key, "/v1/stats/models?project=p1").await;
    assert_eq!(status, 400, "another project than the key's");
    let (status, _) = get_json(&pipeline, &stats, "/v1/stats/models?tenant=zeta").await;
    assert_eq!(status, 403, "another tenant than the key's");
    pipeline.stop().await;
}

#[tokio::test]
async fn past_two_hundred_models_the_rest_are_summed() {
    let pipeline = Pipeline::start().await;
    let ingest = create_key(&pipeline, "many", &[Scope::Ingest]).await;
    // 205 models of one call each, model i with i + 1 input tokens.
    let events: Vec<Event> = (0..205_i32)
        .map(|i| {
            let model = format!("model-{i:03}");
            let tokens = i + 1;
            let end = Some(EventStatus::Completed);
            model_event(
                ("many", "p"),
                &format!("e{i}"),
                end,
                ("lab", &model),
                (tokens, 0),
            )
        })
        .collect();
    ingest_with_key(&pipeline, &ingest, events).await;
    pipeline
        .assert_stored_once(205, Duration::from_secs(30))
        .await;
    let stats = create_key(&pipeline, "many", &[Scope::Stats]).await;
    let (status, answer) = get_json(&pipeline, &stats, "/v1/stats/models").await;
    assert_eq!(status, 200, "{answer}");
    assert_conforms("ModelStats", &answer);
    let shown = figures(&answer);
    assert_eq!(shown.len(), 200);
    assert_eq!(
        shown[0].0, "lab/model-204",
        "most tokens first among equal calls"
    );
    // The five with the fewest tokens (1 to 5) are the others.
    assert_eq!(answer["others"]["calls"], 5, "{}", answer["others"]);
    assert_eq!(answer["others"]["input_tokens"], 15);
    assert_eq!(answer["others"]["model"], "");
    pipeline.stop().await;
}
