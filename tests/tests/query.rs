//! QueryEvents through the gateway, checked against a reference implementation of the
//! documented semantics over a fixture (query_fixture).

use std::collections::HashSet;
use std::time::Duration;

use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_client::ChaukasClientServiceClient;
use chaukas_proto::common::v1::{
    Event, EventType, MessageContent, QueryFilter, QueryRequest, SortOrder, TimeRange,
    event::Content,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_tests::{Pipeline, batch_request};
use prost_types::Timestamp;

mod query_fixture;
use query_fixture::*;

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
