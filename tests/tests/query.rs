//! QueryEvents and GetEventStats through the gateway, checked against a reference
//! implementation of the documented semantics over the same fixture.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_client::ChaukasClientServiceClient;
use chaukas_proto::common::v1::{
    Event, EventType, MessageContent, QueryFilter, QueryRequest, SortOrder, TimeRange,
    event::Content,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_store::search::search_text;
use chaukas_tests::corpus::EVENT_TYPES;
use chaukas_tests::{Pipeline, batch_request};
use prost_types::Timestamp;
use tonic::transport::Channel;

const BASE_SECONDS: i64 = 1_764_000_000;
const WORDS: [&str; 6] = [
    "Alpha",
    "beta",
    "Gamma ray",
    "100% sure",
    "under_score",
    "naïve",
];

fn nanos(event: &Event) -> i64 {
    let t = event.timestamp.as_ref().unwrap();
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

fn timestamp(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap(),
    }
}

/// 3,000 events over 3 tenants, 2 projects, 17 sessions, 23 traces, 5 agents, every type,
/// status and severity, 6 tags and a few words of text, spread over about six hours with
/// several events sharing a timestamp (so ties are broken by event id).
fn fixture() -> Vec<Event> {
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
fn matches(event: &Event, filter: &QueryFilter) -> bool {
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

fn expected(events: &[Event], filter: &QueryFilter, descending: bool) -> Vec<Event> {
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

async fn ingest(pipeline: &Pipeline, events: &[Event]) {
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

async fn all_pages(
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
async fn pipeline_with_fixture() -> (Pipeline, Vec<Event>) {
    let pipeline = Pipeline::start().await;
    let events = fixture();
    ingest(&pipeline, &events).await;
    let stored = pipeline
        .wait_for_rows(events.len() as u64, Duration::from_secs(60))
        .await;
    assert_eq!(stored, events.len() as u64);
    (pipeline, events)
}

fn tenant(tenant: &str) -> QueryFilter {
    QueryFilter {
        tenant_id: tenant.into(),
        ..QueryFilter::default()
    }
}

#[tokio::test]
async fn every_filter_alone_and_combined_returns_exactly_the_expected_events() {
    let (pipeline, events) = pipeline_with_fixture().await;
    let mut client = pipeline.server_client().await;

    let window = TimeRange {
        start: Some(timestamp(nanos(&events[600]))),
        end: Some(timestamp(nanos(&events[1500]))),
    };
    let filters: Vec<QueryFilter> = vec![
        tenant("t0"),
        QueryFilter {
            project_id: "p1".into(),
            ..tenant("t1")
        },
        QueryFilter {
            session_id: "s3".into(),
            ..tenant("t0")
        },
        QueryFilter {
            agent_id: "a2".into(),
            ..tenant("t2")
        },
        QueryFilter {
            span_id: "sp7".into(),
            ..tenant("t1")
        },
        QueryFilter {
            trace_id: "tr5".into(),
            ..tenant("t2")
        },
        QueryFilter {
            types: vec![EventType::ToolCallStart as i32, EventType::Error as i32],
            ..tenant("t0")
        },
        QueryFilter {
            statuses: vec![4],
            ..tenant("t1")
        },
        QueryFilter {
            severities: vec![1, 4],
            ..tenant("t2")
        },
        QueryFilter {
            tags: vec!["tag1".into(), "tag4".into()],
            ..tenant("t0")
        },
        QueryFilter {
            text_query: "GAMMA".into(),
            ..tenant("t1")
        },
        QueryFilter {
            text_query: "100%".into(),
            ..tenant("t2")
        },
        QueryFilter {
            text_query: "under_score".into(),
            ..tenant("t0")
        },
        QueryFilter {
            text_query: "NAÏVE".into(),
            ..tenant("t0")
        },
        QueryFilter {
            time: Some(window),
            ..tenant("t1")
        },
        QueryFilter {
            time: Some(TimeRange {
                start: window.start,
                end: None,
            }),
            ..tenant("t2")
        },
        QueryFilter {
            time: Some(TimeRange {
                start: None,
                end: window.end,
            }),
            ..tenant("t0")
        },
        QueryFilter {
            project_id: "p0".into(),
            types: vec![
                EventType::ToolCallStart as i32,
                EventType::McpCallEnd as i32,
                EventType::Retry as i32,
            ],
            tags: vec!["even".into()],
            time: Some(window),
            ..tenant("t0")
        },
        QueryFilter {
            session_id: "s5".into(),
            trace_id: "tr7".into(),
            ..tenant("t1")
        },
        QueryFilter {
            trace_id: "tr9".into(),
            statuses: vec![1, 2],
            text_query: "about".into(),
            ..tenant("t2")
        },
        QueryFilter {
            session_id: "no-such-session".into(),
            ..tenant("t0")
        },
        QueryFilter {
            project_id: "p0".into(),
            ..tenant("no-such-tenant")
        },
    ];
    for filter in &filters {
        for order in [SortOrder::Desc, SortOrder::Asc] {
            let want = expected(&events, filter, order == SortOrder::Desc);
            let got = all_pages(&mut client, filter, 1000, order).await;
            assert_eq!(
                got.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
                want.iter().map(|e| &e.event_id).collect::<Vec<_>>(),
                "filter {filter:?} order {order:?}"
            );
            assert_eq!(got, want, "returned events are exactly what was ingested");
        }
    }

    // The client service name answers QueryEvents too.
    let mut client_stub =
        ChaukasClientServiceClient::new(chaukas_tests::channel(pipeline.grpc).await);
    let response = client_stub
        .query_events(client::QueryEventsRequest {
            query: Some(QueryRequest {
                filter: Some(QueryFilter {
                    session_id: "s3".into(),
                    ..tenant("t0")
                }),
                ..QueryRequest::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(
        chaukas_tests::as_sent(response.events),
        expected(
            &events,
            &QueryFilter {
                session_id: "s3".into(),
                ..tenant("t0")
            },
            true
        )
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn paging_returns_every_event_once_in_order_while_ingestion_goes_on() {
    let pipeline = Pipeline::start().await;
    let events: Vec<Event> = fixture()
        .into_iter()
        .take(2500)
        .map(|mut event| {
            event.tenant_id = "paging".into();
            event
        })
        .collect();
    ingest(&pipeline, &events).await;
    assert_eq!(
        pipeline.wait_for_rows(2500, Duration::from_secs(60)).await,
        2500
    );

    // New events keep arriving for the same tenant while we page: later ones after the
    // fixture's last time, earlier ones before its first.
    let background = {
        let grpc = pipeline.grpc;
        tokio::spawn(async move {
            let mut client = ChaukasServerServiceClient::new(chaukas_tests::channel(grpc).await);
            for round in 0..40i64 {
                let events = (0..25i64)
                    .map(|i| {
                        let offset = if i % 2 == 0 { 1 } else { -1 } * (100_000 + round * 100 + i);
                        Event {
                            event_id: format!("late-{round}-{i}"),
                            tenant_id: "paging".into(),
                            r#type: EventType::System as i32,
                            timestamp: Some(Timestamp {
                                seconds: BASE_SECONDS + offset,
                                nanos: 0,
                            }),
                            ..Event::default()
                        }
                    })
                    .collect();
                client
                    .ingest_event_batch(batch_request(events))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let mut client = pipeline.server_client().await;
    let original: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    for page_size in [1, 7, 100, 1000] {
        for order in [SortOrder::Desc, SortOrder::Asc] {
            let got = all_pages(&mut client, &tenant("paging"), page_size, order).await;
            let mut seen = HashSet::new();
            for event in &got {
                assert!(
                    seen.insert(event.event_id.clone()),
                    "{} returned twice",
                    event.event_id
                );
            }
            let ours: Vec<&Event> = got
                .iter()
                .filter(|e| original.contains(e.event_id.as_str()))
                .collect();
            let want = expected(&events, &tenant("paging"), order == SortOrder::Desc);
            assert_eq!(ours.len(), want.len(), "page size {page_size} {order:?}");
            assert!(
                ours.iter().zip(&want).all(|(a, b)| *a == b),
                "order kept, page size {page_size}"
            );
            let mut sorted = got.clone();
            sorted.sort_by(|a, b| (nanos(a), &a.event_id).cmp(&(nanos(b), &b.event_id)));
            if order == SortOrder::Desc {
                sorted.reverse();
            }
            assert_eq!(got, sorted, "every page in (time, id) order");
        }
    }
    background.await.unwrap();
    pipeline.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_values_match_literally() {
    let pipeline = Pipeline::start().await;
    let nasty = "x'; DROP TABLE events; -- %_\\ OR 1=1";
    let mut events = vec![
        Event {
            session_id: nasty.into(),
            ..fixture()[0].clone()
        },
        Event {
            event_id: "other".into(),
            session_id: "x".into(),
            ..fixture()[0].clone()
        },
    ];
    events[0].tags = vec![nasty.into()];
    events[0].content = Some(Content::Message(MessageContent {
        role: "user".into(),
        text: format!("contains {nasty} literally"),
        metadata: None,
    }));
    ingest(&pipeline, &events).await;
    assert_eq!(pipeline.wait_for_rows(2, Duration::from_secs(60)).await, 2);
    let mut client = pipeline.server_client().await;
    for filter in [
        QueryFilter {
            session_id: nasty.into(),
            ..tenant("t0")
        },
        QueryFilter {
            tags: vec![nasty.into()],
            ..tenant("t0")
        },
        QueryFilter {
            text_query: nasty.to_uppercase(),
            ..tenant("t0")
        },
        QueryFilter {
            text_query: "%_\\".into(),
            ..tenant("t0")
        },
    ] {
        let got = all_pages(&mut client, &filter, 10, SortOrder::Desc).await;
        assert_eq!(got, vec![events[0].clone()], "{filter:?}");
    }
    for filter in [
        QueryFilter {
            session_id: "%".into(),
            ..tenant("t0")
        },
        QueryFilter {
            text_query: "_%_".into(),
            ..tenant("t0")
        },
    ] {
        assert!(
            all_pages(&mut client, &filter, 10, SortOrder::Desc)
                .await
                .is_empty(),
            "{filter:?}"
        );
    }

    let refuse = |query: QueryRequest| {
        let mut client = client.clone();
        async move {
            client
                .query_events(server::QueryEventsRequest { query: Some(query) })
                .await
                .unwrap_err()
        }
    };
    let status = refuse(QueryRequest {
        filter: Some(QueryFilter::default()),
        ..QueryRequest::default()
    })
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("tenant_id is required"));
    let status = refuse(QueryRequest {
        filter: Some(tenant("t0")),
        page_size: -5,
        ..QueryRequest::default()
    })
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let status = refuse(QueryRequest {
        filter: Some(tenant("t0")),
        page_token: "forged-token".into(),
        ..QueryRequest::default()
    })
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("page_token"),
        "{}",
        status.message()
    );

    let clamped = client
        .query_events(server::QueryEventsRequest {
            query: Some(QueryRequest {
                filter: Some(tenant("t0")),
                page_size: 5_000,
                ..QueryRequest::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    assert_eq!(clamped.events.len(), 2);
    let status = client
        .get_event_stats(server::GetEventStatsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    pipeline.stop().await;
}

/// Statistics by brute force over the fixture, with the documented definitions.
fn brute_stats(
    events: &[Event],
    tenant: &str,
    project: &str,
    range: Option<(i64, i64)>,
) -> server::GetEventStatsResponse {
    let selected: Vec<&Event> = events
        .iter()
        .filter(|e| e.tenant_id == tenant && (project.is_empty() || e.project_id == project))
        .filter(|e| range.is_none_or(|(start, end)| (start..end).contains(&nanos(e))))
        .collect();
    let mut by_type = std::collections::HashMap::new();
    let mut sessions: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for event in &selected {
        let name = EventType::try_from(event.r#type)
            .unwrap()
            .as_str_name()
            .to_owned();
        *by_type.entry(name).or_insert(0) += 1;
        if !event.session_id.is_empty() {
            let span = sessions
                .entry(&event.session_id)
                .or_insert((i64::MAX, i64::MIN));
            span.0 = span.0.min(nanos(event));
            span.1 = span.1.max(nanos(event));
        }
    }
    let total: i64 = sessions.values().map(|(first, last)| last - first).sum();
    server::GetEventStatsResponse {
        total_events: i64::try_from(selected.len()).unwrap(),
        total_sessions: i64::try_from(sessions.len()).unwrap(),
        events_by_type: by_type,
        avg_session_duration_ms: if sessions.is_empty() {
            0.0
        } else {
            total as f64 / sessions.len() as f64 / 1e6
        },
    }
}

#[tokio::test]
async fn stats_equal_brute_force_for_any_range_and_never_leak_tenants() {
    let (pipeline, events) = pipeline_with_fixture().await;
    let mut client = pipeline.server_client().await;
    let base = BASE_SECONDS * 1_000_000_000;
    let minute = 60_000_000_000;
    let ranges: Vec<Option<(i64, i64)>> = vec![
        None,
        Some((base, base + 3600 * 1_000_000_000)),
        Some((base + 17 * minute + 123, base + 95 * minute + 999_999)),
        Some((base + 5 * minute, base + 6 * minute)),
        Some((base + 5 * minute + 1, base + 5 * minute + 30_000_000_000)),
        Some((base - 100 * minute, base + 2 * minute + 7)),
        Some((base + 200 * minute + 500_000_000, base + 400 * minute)),
        Some((base + 10 * minute, base + 10 * minute)),
        Some((base - 50 * minute, base - 10 * minute)),
        Some((base + 1_000 * minute, base + 2_000 * minute)),
        Some((base + 33 * minute + 7, base + 34 * minute + 3)),
        Some((base + 21_500_000_000, base + 21_500_000_001)),
    ];
    for (index, range) in ranges.iter().enumerate() {
        for (tenant_id, project_id) in [("t0", ""), ("t1", "p1"), ("t2", "p0"), ("nobody", "")] {
            let request = server::GetEventStatsRequest {
                tenant_id: tenant_id.into(),
                project_id: project_id.into(),
                time_range: range.map(|(start, end)| TimeRange {
                    start: Some(timestamp(start)),
                    end: Some(timestamp(end)),
                }),
            };
            let got = client.get_event_stats(request).await.unwrap().into_inner();
            let want = brute_stats(&events, tenant_id, project_id, *range);
            assert_eq!(
                got.total_events, want.total_events,
                "range {index} {tenant_id}/{project_id}"
            );
            assert_eq!(
                got.total_sessions, want.total_sessions,
                "range {index} {tenant_id}/{project_id}"
            );
            assert_eq!(
                got.events_by_type, want.events_by_type,
                "range {index} {tenant_id}/{project_id}"
            );
            assert_eq!(
                got.avg_session_duration_ms, want.avg_session_duration_ms,
                "range {index} {tenant_id}/{project_id}"
            );
        }
    }
    // Isolation: one tenant's totals never include another's events.
    let all = brute_stats(&events, "t0", "", None);
    assert_eq!(all.total_events, 1000);
    pipeline.stop().await;
}
