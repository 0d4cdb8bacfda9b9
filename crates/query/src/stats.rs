//! GetEventStats from the minute aggregates, exact for any time range.
//!
//! Whole minutes inside the range are read from `stats_type_minute` and
//! `stats_session_minute` (maintained at insert time); the parts of the range that cut
//! through a minute (at most one minute at each end) are read from `events`. Definitions
//! (also in the README):
//!
//! * `total_events`: events whose event time lies in the range;
//! * `total_sessions`: distinct non-empty `session_id`s among them;
//! * `avg_session_duration_ms`: over those sessions, the mean of (last event time - first
//!   event time) counting only the events in the range; 0 when there are no sessions;
//! * `events_by_type`: counts keyed by the type's name, e.g. `EVENT_TYPE_AGENT_START`.

use std::collections::HashMap;

use chaukas_proto::common::v1::EventType;
use chaukas_proto::server::v1::{GetEventStatsRequest, GetEventStatsResponse};

use crate::sql::Sql;
use crate::{QueryError, guardrails};

/// Width of a bucket of the aggregate tables.
pub const MINUTE_NS: i64 = 60_000_000_000;

/// How a range splits into whole minutes and raw edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Whole minutes `[first, last)`, either end open; `None`: no whole minute at all.
    pub minutes: Option<(Option<i64>, Option<i64>)>,
    /// Raw time ranges `[start, end)` read from `events`.
    pub edges: Vec<(i64, i64)>,
}

/// Splits `[start, end)` (either end open) into whole minutes and raw edges.
pub fn split(start: Option<i64>, end: Option<i64>) -> Split {
    let first_minute = start
        .map(|start| start.div_euclid(MINUTE_NS) + i64::from(start.rem_euclid(MINUTE_NS) != 0));
    let end_minute = end.map(|end| end.div_euclid(MINUTE_NS));
    if let (Some(first), Some(last)) = (first_minute, end_minute)
        && first >= last
    {
        let (start, end) = (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
        return Split {
            minutes: None,
            edges: if start < end {
                vec![(start, end)]
            } else {
                vec![]
            },
        };
    }
    let mut edges = Vec::new();
    if let (Some(start), Some(first)) = (start, first_minute)
        && start < first * MINUTE_NS
    {
        edges.push((start, first * MINUTE_NS));
    }
    if let (Some(end), Some(last)) = (end, end_minute)
        && last * MINUTE_NS < end
    {
        edges.push((last * MINUTE_NS, end));
    }
    Split {
        minutes: Some((first_minute, end_minute)),
        edges,
    }
}

/// Validates and answers a GetEventStats request.
pub async fn run(
    client: &clickhouse::Client,
    request: &GetEventStatsRequest,
) -> Result<GetEventStatsResponse, QueryError> {
    if request.tenant_id.is_empty() {
        return Err(QueryError::invalid("tenant_id is required"));
    }
    for (name, value) in [
        ("tenant_id", &request.tenant_id),
        ("project_id", &request.project_id),
    ] {
        if value.len() > guardrails::MAX_FILTER_ID_BYTES {
            return Err(QueryError::invalid(format!(
                "{name} is {} bytes; at most {} are allowed",
                value.len(),
                guardrails::MAX_FILTER_ID_BYTES
            )));
        }
    }
    let (start, end) = guardrails::time_range(request.time_range.as_ref(), "time_range")?;
    let split = split(start, end);
    let scope = Scope {
        tenant_id: &request.tenant_id,
        project_id: &request.project_id,
    };

    let by_type_sql = events_by_type_sql(&scope, &split);
    let by_type: Vec<(i32, u64)> = by_type_sql.fetch_all(client).await?;
    let sessions_sql = sessions_sql(&scope, &split);
    let (total_sessions, duration_sum_ns): (u64, i64) = sessions_sql
        .query(client)
        .fetch_one()
        .await
        .map_err(|source| QueryError::store(sessions_sql.as_str(), source))?;

    let mut events_by_type = HashMap::new();
    let mut total_events: u64 = 0;
    for (event_type, count) in by_type {
        total_events += count;
        let name = EventType::try_from(event_type).map_or_else(
            |_| format!("EVENT_TYPE_{event_type}"),
            |t| t.as_str_name().to_owned(),
        );
        *events_by_type.entry(name).or_insert(0) += i64::try_from(count).unwrap_or(i64::MAX);
    }
    let avg_session_duration_ms = if total_sessions == 0 {
        0.0
    } else {
        duration_sum_ns as f64 / total_sessions as f64 / 1e6
    };
    Ok(GetEventStatsResponse {
        total_events: i64::try_from(total_events).unwrap_or(i64::MAX),
        total_sessions: i64::try_from(total_sessions).unwrap_or(i64::MAX),
        events_by_type,
        avg_session_duration_ms,
    })
}

struct Scope<'a> {
    tenant_id: &'a str,
    project_id: &'a str,
}

impl Scope<'_> {
    fn push(&self, sql: &mut Sql) {
        sql.push(" WHERE tenant_id = ").text(self.tenant_id);
        if !self.project_id.is_empty() {
            sql.push(" AND project_id = ").text(self.project_id);
        }
    }
}

fn push_minutes(sql: &mut Sql, (first, last): (Option<i64>, Option<i64>)) {
    if let Some(first) = first {
        sql.push(" AND minute >= ").int(first);
    }
    if let Some(last) = last {
        sql.push(" AND minute < ").int(last);
    }
}

fn push_edge(sql: &mut Sql, (start, end): (i64, i64)) {
    sql.push(" AND event_time_ns >= ")
        .int(start)
        .push(" AND event_time_ns < ")
        .int(end);
}

/// `(event_type, count)` over the range: whole minutes plus raw edges, summed per type.
fn events_by_type_sql(scope: &Scope<'_>, split: &Split) -> Sql {
    let mut parts = Vec::new();
    if let Some(minutes) = split.minutes {
        let mut part = Sql::new("SELECT event_type, sum(events) AS n FROM stats_type_minute");
        scope.push(&mut part);
        push_minutes(&mut part, minutes);
        part.push(" GROUP BY event_type");
        parts.push(part);
    }
    for edge in &split.edges {
        let mut part = Sql::new("SELECT event_type, count() AS n FROM events");
        scope.push(&mut part);
        push_edge(&mut part, *edge);
        part.push(" GROUP BY event_type");
        parts.push(part);
    }
    let mut sql = Sql::new("SELECT event_type, toUInt64(sum(n)) FROM (");
    union(
        &mut sql,
        &parts,
        "SELECT toInt32(0) AS event_type, toUInt64(0) AS n WHERE 0",
    );
    sql.push(") GROUP BY event_type");
    sql
}

/// `(distinct sessions, sum of durations in ns)`: per session, the earliest first and the
/// latest last time across whole minutes and raw edges.
fn sessions_sql(scope: &Scope<'_>, split: &Split) -> Sql {
    let mut parts = Vec::new();
    if let Some(minutes) = split.minutes {
        let mut part = Sql::new(
            "SELECT session_id, minMerge(first_ns) AS f, maxMerge(last_ns) AS l FROM stats_session_minute",
        );
        scope.push(&mut part);
        push_minutes(&mut part, minutes);
        part.push(" GROUP BY session_id");
        parts.push(part);
    }
    for edge in &split.edges {
        let mut part = Sql::new(
            "SELECT session_id, min(event_time_ns) AS f, max(event_time_ns) AS l FROM events",
        );
        scope.push(&mut part);
        push_edge(&mut part, *edge);
        part.push(" AND session_id != '' GROUP BY session_id");
        parts.push(part);
    }
    let mut sql = Sql::new(
        "SELECT toUInt64(count()), toInt64(sum(l - f)) FROM (SELECT session_id, min(f) AS f, max(l) AS l FROM (",
    );
    union(
        &mut sql,
        &parts,
        "SELECT '' AS session_id, toInt64(0) AS f, toInt64(0) AS l WHERE 0",
    );
    sql.push(") GROUP BY session_id)");
    sql
}

fn union(sql: &mut Sql, parts: &[Sql], empty: &str) {
    if parts.is_empty() {
        sql.push(empty);
    }
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            sql.push(" UNION ALL ");
        }
        sql.append(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MINUTE_NS;

    #[test]
    fn open_ranges_use_whole_minutes_only() {
        assert_eq!(
            split(None, None),
            Split {
                minutes: Some((None, None)),
                edges: vec![]
            }
        );
        assert_eq!(
            split(Some(2 * M), None),
            Split {
                minutes: Some((Some(2), None)),
                edges: vec![]
            }
        );
    }

    #[test]
    fn cut_minutes_become_raw_edges() {
        assert_eq!(
            split(Some(2 * M + 5), Some(5 * M + 7)),
            Split {
                minutes: Some((Some(3), Some(5))),
                edges: vec![(2 * M + 5, 3 * M), (5 * M, 5 * M + 7)],
            }
        );
        assert_eq!(
            split(Some(2 * M), Some(5 * M)),
            Split {
                minutes: Some((Some(2), Some(5))),
                edges: vec![]
            }
        );
    }

    #[test]
    fn a_range_inside_one_minute_is_all_raw() {
        assert_eq!(
            split(Some(2 * M + 5), Some(2 * M + 9)),
            Split {
                minutes: None,
                edges: vec![(2 * M + 5, 2 * M + 9)]
            }
        );
        assert_eq!(
            split(Some(7), Some(7)),
            Split {
                minutes: None,
                edges: vec![]
            }
        );
        assert_eq!(
            split(Some(2 * M + 5), Some(3 * M + 9)),
            Split {
                minutes: None,
                edges: vec![(2 * M + 5, 3 * M + 9)]
            }
        );
    }
}
