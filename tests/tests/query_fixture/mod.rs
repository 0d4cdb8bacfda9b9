//! The fixture QueryEvents and GetEventStats are checked against, and a reference
//! implementation of the documented semantics over it (shared by query.rs and stats.rs,
//! each of which uses part of it).
#![allow(dead_code)]

use std::time::Duration;

use chaukas_proto::common::v1::{
    Event, MessageContent, QueryFilter, QueryRequest, SortOrder, event::Content,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_store::search::search_text;
use chaukas_tests::corpus::EVENT_TYPES;
use chaukas_tests::{Pipeline, batch_request};
use prost_types::Timestamp;
use tonic::transport::Channel;

pub(crate) const BASE_SECONDS: i64 = 1_764_000_000;
pub(crate) const WORDS: [&str; 6] = [
    "Alpha",
    "beta",
    "Gamma ray",
    "100% sure",
    "under_score",
    "naïve",
];

pub(crate) fn nanos(event: &Event) -> i64 {
    let t = event.timestamp.as_ref().unwrap();
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

pub(crate) fn timestamp(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap(),
    }
}

/// 3,000 events over 3 tenants, 2 projects, 17 sessions, 23 traces, 5 agents, every type,
/// status and severity, 6 tags and a few words of text, spread over about six hours with
/// several events sharing a timestamp (so ties are broken by event id).
pub(crate) fn fixture() -> Vec<Event> {
    (0..3000u32)
        .map(|i| {
            let i64_ = i64::from(i);
            let mut tags = vec![format!("tag{}", i % 6)];
            if i % 2 == 0 {
                tags.push("even".into());
            }
            Event {
                event_id: format!("e{i:05}"),
                tenant_id: format!("t{}", i % 3),
                project_id: format!("p{}", i % 2),
                session_id: format!("s{}", i % 17),
                trace_id: format!("tr{}", i % 23),
                agent_id: format!("a{}", i % 5),
                span_id: format!("sp{}", i % 50),
                r#type: EVENT_TYPES[(i % 19) as usize] as i32,
                status: i32::try_from(i % 5 + 1).unwrap(),
                severity: i32::try_from(i % 4 + 1).unwrap(),
                tags,
                timestamp: Some(Timestamp {
                    seconds: BASE_SECONDS + (i64_ / 3) * 21,
                    nanos: 500_000_000,
                }),
                content: Some(Content::Message(MessageContent {
                    role: "user".into(),
                    text: format!("message {} about {}", i, WORDS[(i % 6) as usize]),
                    metadata: None,
                })),
                ..Event::default()
            }
        })
        .collect()
}

/// The documented semantics, in plain Rust.
pub(crate) fn matches(event: &Event, filter: &QueryFilter) -> bool {
    let equal = |wanted: &str, actual: &str| wanted.is_empty() || wanted == actual;
    let time = nanos(event);
    let range = filter.time.as_ref();
    equal(&filter.tenant_id, &event.tenant_id)
        && equal(&filter.project_id, &event.project_id)
        && equal(&filter.session_id, &event.session_id)
        && equal(&filter.agent_id, &event.agent_id)
        && equal(&filter.span_id, &event.span_id)
        && equal(&filter.trace_id, &event.trace_id)
        && (filter.types.is_empty() || filter.types.contains(&event.r#type))
        && (filter.statuses.is_empty() || filter.statuses.contains(&event.status))
        && (filter.severities.is_empty() || filter.severities.contains(&event.severity))
        && (filter.tags.is_empty() || filter.tags.iter().any(|tag| event.tags.contains(tag)))
        && (filter.text_query.is_empty()
            || search_text(event).contains(&filter.text_query.to_lowercase()))
        && range
            .and_then(|r| r.start.as_ref())
            .is_none_or(|start| time >= start.seconds * 1_000_000_000 + i64::from(start.nanos))
        && range
            .and_then(|r| r.end.as_ref())
            .is_none_or(|end| time < end.seconds * 1_000_000_000 + i64::from(end.nanos))
}

pub(crate) fn expected(events: &[Event], filter: &QueryFilter, descending: bool) -> Vec<Event> {
    let mut found: Vec<Event> = events
        .iter()
        .filter(|e| matches(e, filter))
        .cloned()
        .collect();
    found.sort_by(|a, b| (nanos(a), &a.event_id).cmp(&(nanos(b), &b.event_id)));
    if descending {
        found.reverse();
    }
    found
}

pub(crate) async fn ingest(pipeline: &Pipeline, events: &[Event]) {
    let mut client = pipeline.server_client().await;
    for chunk in events.chunks(500) {
        let response = client
            .ingest_event_batch(batch_request(chunk.to_vec()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.rejected_count, 0);
    }
}

pub(crate) async fn all_pages(
    client: &mut ChaukasServerServiceClient<Channel>,
    filter: &QueryFilter,
    page_size: i32,
    order: SortOrder,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let response = client
            .query_events(server::QueryEventsRequest {
                query: Some(QueryRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token: token.clone(),
                    order_by_time: order as i32,
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .response
            .unwrap();
        assert!(response.events.len() <= usize::try_from(page_size).unwrap());
        events.extend(chaukas_tests::as_sent(response.events));
        if response.next_page_token.is_empty() {
            return events;
        }
        token = response.next_page_token;
    }
}

/// A pipeline holding the whole fixture, stored.
pub(crate) async fn pipeline_with_fixture() -> (Pipeline, Vec<Event>) {
    let pipeline = Pipeline::start().await;
    let events = fixture();
    ingest(&pipeline, &events).await;
    let stored = pipeline
        .wait_for_rows(events.len() as u64, Duration::from_secs(60))
        .await;
    assert_eq!(stored, events.len() as u64);
    (pipeline, events)
}

pub(crate) fn tenant(tenant: &str) -> QueryFilter {
    QueryFilter {
        tenant_id: tenant.into(),
        ..QueryFilter::default()
    }
}
