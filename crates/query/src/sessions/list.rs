//! `GET /v1/sessions`: sessions newest first, with their figures and outcome, read from the
//! `session_summaries` and `session_actions` aggregates (migration 0006) — one row per
//! session and per action, never the sessions' events (except for a `text` filter).

use std::str::FromStr;

use serde::Serialize;

use super::outcome::{Outcome, SessionFigures};
use crate::QueryError;
use crate::sql::Sql;

/// Sessions per page when the request says nothing.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: u64 = 500;
/// Longest `text` or `agent` filter, in bytes.
const MAX_FILTER_BYTES: usize = 256;

/// The list's filters and paging, from the query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    pub project_id: String,
    /// Sessions that started at or after this (ns since the epoch).
    pub from_ns: Option<i64>,
    /// Sessions that started before this.
    pub to_ns: Option<i64>,
    pub agent: String,
    pub outcome: Option<Outcome>,
    pub has_errors: Option<bool>,
    /// Case-insensitive substring of the session id or of any of its events' text.
    pub text: String,
    /// One session (the detail page's summary).
    pub session_id: String,
    pub page_size: u64,
    /// Keyset position: the last row of the previous page.
    pub after: Option<(i64, String, String)>,
}

impl SessionFilter {
    /// Parses an undecoded query string; unknown parameters are refused by name, so a typo
    /// is not silently ignored.
    pub fn parse(query: &str) -> Result<(Self, String), QueryError> {
        let mut filter = Self {
            page_size: DEFAULT_PAGE_SIZE,
            ..Self::default()
        };
        let mut page_token = String::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "project" => filter.project_id = value,
                "from" => filter.from_ns = Some(time_param("from", &value)?),
                "to" => filter.to_ns = Some(time_param("to", &value)?),
                "agent" => filter.agent = bounded("agent", value)?,
                "outcome" => {
                    filter.outcome = Some(Outcome::from_str(&value).map_err(|()| {
                        QueryError::invalid(format!(
                            "outcome {value:?} is not one of complete, partial, failed, in_progress, abandoned"
                        ))
                    })?)
                }
                "has_errors" => {
                    filter.has_errors = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(QueryError::invalid("has_errors must be true or false")),
                    })
                }
                "text" => filter.text = bounded("text", value)?.to_lowercase(),
                "page_size" => {
                    filter.page_size = value
                        .parse::<u64>()
                        .ok()
                        .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
                        .ok_or_else(|| {
                            QueryError::invalid(format!(
                                "page_size must be a number from 1 to {MAX_PAGE_SIZE}"
                            ))
                        })?
                }
                "page_token" => page_token = value,
                // Read by the gateway, which confines it to the caller's key.
                "tenant" => {}
                other => {
                    return Err(QueryError::invalid(format!(
                        "unknown parameter {other:?}; the list takes tenant, project, from, to, agent, outcome, has_errors, text, page_size and page_token"
                    )));
                }
            }
        }
        Ok((filter, page_token))
    }

    /// What a page token is bound to: every filter, not the paging.
    pub fn digest_input(&self) -> String {
        format!(
            "{}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{}",
            self.project_id,
            self.from_ns,
            self.to_ns,
            self.agent,
            self.outcome,
            self.has_errors,
            self.text,
            self.session_id
        )
    }
}

fn bounded(name: &str, value: String) -> Result<String, QueryError> {
    if value.len() > MAX_FILTER_BYTES {
        return Err(QueryError::invalid(format!(
            "{name} is longer than {MAX_FILTER_BYTES} bytes"
        )));
    }
    Ok(value)
}

/// A time parameter: RFC 3339 (`2025-01-31T12:00:00Z`) or ns since the epoch.
pub(crate) fn time_param(name: &str, value: &str) -> Result<i64, QueryError> {
    if let Ok(ns) = value.parse::<i64>() {
        return Ok(ns);
    }
    prost_types::Timestamp::from_str(value)
        .ok()
        .map(|t| chaukas_store::timestamp_nanos(&t))
        .ok_or_else(|| {
            QueryError::invalid(format!(
                "{name} must be an RFC 3339 time (2025-01-31T12:00:00Z) or ns since the epoch"
            ))
        })
}

/// One session as the list shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionRow {
    pub session_id: String,
    pub project_id: String,
    pub start: String,
    /// The SESSION_END's time; absent while the session is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub last_event: String,
    pub duration_ms: f64,
    pub event_count: u64,
    pub agents: Vec<String>,
    pub model_calls: u64,
    pub tool_calls: u64,
    pub mcp_calls: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
    pub actions: u64,
    pub failed_actions: u64,
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    /// For the page token (not shown).
    #[serde(skip)]
    pub start_ns: i64,
}

/// A row as ClickHouse returns it.
#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct Aggregated {
    session_id: String,
    project_id: String,
    start_ns: i64,
    last_ns: i64,
    ended_ns: i64,
    events: u64,
    agents: Vec<String>,
    model_calls: u64,
    tool_calls: u64,
    mcp_calls: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost: f64,
    actions: u64,
    failed: u64,
}

/// The session summaries of `tenant` under `filter`: at most `page_size + 1` rows (the
/// extra one says there is another page). `now_ns` and `idle_ns` decide what is abandoned.
pub async fn read(
    client: &clickhouse::Client,
    tenant: &str,
    filter: &SessionFilter,
    now_ns: i64,
    idle_ns: i64,
) -> Result<Vec<SessionRow>, QueryError> {
    let sql = statement(tenant, filter, now_ns - idle_ns);
    let rows: Vec<Aggregated> = sql.fetch_all(client).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let figures = SessionFigures {
                ended: row.ended_ns != 0,
                last_ns: row.last_ns,
                actions: row.actions,
                failed: row.failed,
            };
            let (outcome, reasons) = figures.outcome(now_ns, idle_ns);
            let end_ns = if row.ended_ns != 0 {
                row.ended_ns
            } else {
                row.last_ns
            };
            SessionRow {
                session_id: row.session_id,
                project_id: row.project_id,
                start: rfc3339(row.start_ns),
                end: (row.ended_ns != 0).then(|| rfc3339(row.ended_ns)),
                last_event: rfc3339(row.last_ns),
                duration_ms: (end_ns - row.start_ns).max(0) as f64 / 1e6,
                event_count: row.events,
                agents: row.agents.into_iter().filter(|a| !a.is_empty()).collect(),
                model_calls: row.model_calls,
                tool_calls: row.tool_calls,
                mcp_calls: row.mcp_calls,
                errors: row.errors,
                input_tokens: row.input_tokens,
                output_tokens: row.output_tokens,
                cost: row.cost,
                actions: row.actions,
                failed_actions: row.failed,
                outcome,
                reasons,
                start_ns: row.start_ns,
            }
        })
        .collect())
}

/// Nanoseconds since the epoch as RFC 3339.
pub fn rfc3339(ns: i64) -> String {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).expect("below 1e9"),
    }
    .to_string()
}

/// The list statement: summaries joined with their actions' failure counts, the outcome
/// derived in SQL (the same rules as [`SessionFigures::outcome`]) so it can be filtered.
fn statement(tenant: &str, filter: &SessionFilter, idle_before_ns: i64) -> Sql {
    let mut sql = Sql::new(
        "SELECT session_id, project_id, start_ns, last_ns, ended_ns, events, agents, \
         model_calls, tool_calls, mcp_calls, errors, input_tokens, output_tokens, cost, \
         actions, failed FROM (SELECT session_id, project_id, \
         minMerge(first_ns) AS start_ns, maxMerge(last_ns) AS last_ns, \
         maxMerge(ended_ns) AS ended_ns, countMerge(events) AS events, \
         topKMerge(16)(agents) AS agents, sumMerge(model_calls) AS model_calls, \
         sumMerge(tool_calls) AS tool_calls, sumMerge(mcp_calls) AS mcp_calls, \
         sumMerge(errors) AS errors, sumMerge(input_tokens) AS input_tokens, \
         sumMerge(output_tokens) AS output_tokens, sumMerge(cost) AS cost \
         FROM session_summaries WHERE tenant_id = ",
    );
    sql.text(tenant);
    scope(&mut sql, tenant, filter);
    sql.push(
        " GROUP BY session_id, project_id) AS summaries ANY LEFT JOIN (SELECT session_id, project_id, \
         count() AS actions, sum(failed) AS failed FROM (SELECT session_id, project_id, \
         argMaxMerge(last_end_status) AS end_status, maxMerge(last_end_ns) AS end_ns, \
         maxMerge(unrecovered_ns) AS error_ns, \
         toUInt64((end_ns >= 0 AND end_status IN (4, 5)) OR error_ns > end_ns) AS failed \
         FROM session_actions WHERE tenant_id = ",
    );
    sql.text(tenant);
    scope(&mut sql, tenant, filter);
    sql.push(
        " GROUP BY session_id, project_id, action HAVING end_ns >= 0 OR error_ns >= 0) \
         GROUP BY session_id, project_id) AS outcomes USING (session_id, project_id) WHERE 1",
    );
    if let Some(from) = filter.from_ns {
        sql.push(" AND start_ns >= ").int(from);
    }
    if let Some(to) = filter.to_ns {
        sql.push(" AND start_ns < ").int(to);
    }
    if !filter.agent.is_empty() {
        sql.push(" AND has(agents, ").text(&filter.agent).push(")");
    }
    match filter.has_errors {
        Some(true) => sql.push(" AND (errors > 0 OR failed > 0)"),
        Some(false) => sql.push(" AND errors = 0 AND failed = 0"),
        None => &mut sql,
    };
    if let Some(outcome) = filter.outcome {
        sql.push(" AND multiIf(ended_ns = 0 AND last_ns < ")
            .int(idle_before_ns)
            .push(
                ", 'abandoned', ended_ns = 0, 'in_progress', failed = 0, 'complete', \
                 failed = actions, 'failed', 'partial') = ",
            )
            .text(outcome.as_str());
    }
    if let Some((start_ns, session_id, project_id)) = &filter.after {
        sql.push(" AND (start_ns < ")
            .int(*start_ns)
            .push(" OR (start_ns = ")
            .int(*start_ns)
            .push(" AND (session_id < ")
            .text(session_id)
            .push(" OR (session_id = ")
            .text(session_id)
            .push(" AND project_id < ")
            .text(project_id)
            .push("))))");
    }
    sql.push(" ORDER BY start_ns DESC, session_id DESC, project_id DESC LIMIT ")
        .int(i64::try_from(filter.page_size + 1).expect("small"));
    sql
}

/// The conditions both aggregates are read under: project, one session, and the sessions
/// whose id or events' text contain `text`.
fn scope(sql: &mut Sql, tenant: &str, filter: &SessionFilter) {
    if !filter.project_id.is_empty() {
        sql.push(" AND project_id = ").text(&filter.project_id);
    }
    if !filter.session_id.is_empty() {
        sql.push(" AND session_id = ").text(&filter.session_id);
    }
    if !filter.text.is_empty() {
        sql.push(" AND (positionCaseInsensitive(session_id, ")
            .text(&filter.text)
            .push(
                ") > 0 OR session_id IN (SELECT DISTINCT session_id FROM events WHERE tenant_id = ",
            )
            .text(tenant)
            .push(" AND position(search_text, ")
            .text(&filter.text)
            .push(") > 0))");
    }
}
