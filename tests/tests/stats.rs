//! GetEventStats through the gateway, checked against brute force over the same fixture
//! as the QueryEvents tests (query_fixture).

use std::collections::BTreeMap;

use chaukas_proto::common::v1::{Event, EventType, TimeRange};
use chaukas_proto::server::v1 as server;

mod query_fixture;
use query_fixture::*;

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
