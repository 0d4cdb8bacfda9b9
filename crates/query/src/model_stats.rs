//! Tokens, cost and calls by model and provider (`GET /v1/stats/models`, the console's stats
//! page), read from `stats_model_minute` (migration 0009), which ClickHouse keeps at insert
//! time: a range costs one row per minute and model, never the events.
//!
//! The range is counted in whole minutes: `from` is rounded down and `to` up to a minute,
//! and the answer says which minutes it covers.

use serde::Serialize;

use crate::QueryError;
use crate::sessions::list::{rfc3339, time_param};
use crate::sql::Sql;

const MINUTE_NS: i64 = 60_000_000_000;
/// Models listed at most (most calls first); the rest are summed in `others`.
pub const MAX_MODELS: usize = 200;
/// The range when the request names none: the last day.
const DEFAULT_RANGE_NS: i64 = 24 * 60 * MINUTE_NS;

/// What to sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStatsFilter {
    pub project_id: String,
    pub from_ns: i64,
    pub to_ns: i64,
}

impl ModelStatsFilter {
    /// Parses an undecoded query string (`from`, `to`, `project`; `tenant` is the gateway's);
    /// unknown parameters are refused by name.
    pub fn parse(query: &str, now_ns: i64) -> Result<Self, QueryError> {
        let mut filter = Self {
            project_id: String::new(),
            from_ns: now_ns.saturating_sub(DEFAULT_RANGE_NS),
            to_ns: now_ns,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "project" => filter.project_id = value.into_owned(),
                "from" => filter.from_ns = time_param("from", &value)?,
                "to" => filter.to_ns = time_param("to", &value)?,
                "tenant" => {}
                other => {
                    return Err(QueryError::invalid(format!(
                        "unknown parameter {other:?}; the figures by model take tenant, project, from and to"
                    )));
                }
            }
        }
        if filter.from_ns >= filter.to_ns {
            return Err(QueryError::invalid("from must be before to"));
        }
        Ok(filter)
    }

    /// The minutes `[first, end)` the range touches.
    fn minutes(&self) -> (i64, i64) {
        let first = self.from_ns.div_euclid(MINUTE_NS);
        let end = self.to_ns.div_euclid(MINUTE_NS) + i64::from(self.to_ns % MINUTE_NS != 0);
        (first, end)
    }
}

/// One provider and model's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, clickhouse::Row)]
pub struct ModelFigures {
    pub provider: String,
    pub model: String,
    /// MODEL_INVOCATION_END events.
    pub calls: u64,
    /// Of those, the ones with status FAILED.
    pub failed_calls: u64,
    /// Tokens and cost reported by the model's events (START and END).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct ModelStats {
    /// The whole minutes counted, RFC 3339.
    pub from: String,
    pub to: String,
    /// Most calls first, at most [`MAX_MODELS`].
    pub models: Vec<ModelFigures>,
    /// The models past the first [`MAX_MODELS`], summed (provider and model empty); absent
    /// when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub others: Option<ModelFigures>,
}

/// Sums `tenant`'s figures by provider and model over the filter's minutes.
pub async fn read(
    client: &clickhouse::Client,
    tenant: &str,
    filter: &ModelStatsFilter,
) -> Result<ModelStats, QueryError> {
    let (first, end) = filter.minutes();
    // One more than shown, to know whether there are others: a tenant's clients name the
    // models, so there may be any number of them, and only these rows are read back.
    let mut sql = statement(tenant, filter, (first, end), true);
    sql.push(" ORDER BY calls DESC, input_tokens + output_tokens DESC, provider, model LIMIT ")
        .int(MAX_MODELS as i64 + 1);
    let mut models: Vec<ModelFigures> = sql.fetch_all(client).await?;
    let mut others = None;
    if models.len() > MAX_MODELS {
        models.truncate(MAX_MODELS);
        let totals: Vec<ModelFigures> = statement(tenant, filter, (first, end), false)
            .fetch_all(client)
            .await?;
        let mut rest = totals.into_iter().next().unwrap_or_default();
        for shown in &models {
            rest.calls = rest.calls.saturating_sub(shown.calls);
            rest.failed_calls = rest.failed_calls.saturating_sub(shown.failed_calls);
            rest.input_tokens = rest.input_tokens.saturating_sub(shown.input_tokens);
            rest.output_tokens = rest.output_tokens.saturating_sub(shown.output_tokens);
            rest.cost -= shown.cost;
        }
        rest.cost = rest.cost.max(0.0);
        others = Some(rest);
    }
    Ok(ModelStats {
        from: rfc3339(first * MINUTE_NS),
        to: rfc3339(end.saturating_mul(MINUTE_NS)),
        models,
        others,
    })
}

/// The sums over the filter's minutes, by provider and model or (not `by_model`) in one row
/// of totals with an empty provider and model.
fn statement(
    tenant: &str,
    filter: &ModelStatsFilter,
    (first, end): (i64, i64),
    by_model: bool,
) -> Sql {
    let names = if by_model {
        "provider, model"
    } else {
        "'' AS provider, '' AS model"
    };
    let mut sql = Sql::new(&format!(
        "SELECT {names}, sum(calls) AS calls, sum(failed_calls) AS failed_calls, \
         sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
         sum(cost) AS cost FROM stats_model_minute WHERE tenant_id = "
    ));
    sql.text(tenant);
    if !filter.project_id.is_empty() {
        sql.push(" AND project_id = ").text(&filter.project_id);
    }
    sql.push(" AND minute >= ")
        .int(first)
        .push(" AND minute < ")
        .int(end);
    if by_model {
        sql.push(" GROUP BY provider, model");
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_widened_to_whole_minutes() {
        let filter = ModelStatsFilter::parse("from=90000000000&to=120000000001", 0).unwrap();
        assert_eq!(filter.minutes(), (1, 3));
        let exact = ModelStatsFilter::parse("from=60000000000&to=120000000000", 0).unwrap();
        assert_eq!(exact.minutes(), (1, 2));
    }

    #[test]
    fn bad_parameters_are_named() {
        let unknown = ModelStatsFilter::parse("colour=red", 0).unwrap_err();
        assert!(unknown.to_string().contains("\"colour\""), "{unknown}");
        let backwards = ModelStatsFilter::parse("from=10&to=5", 0).unwrap_err();
        assert!(backwards.to_string().contains("from must be before to"));
        let default = ModelStatsFilter::parse("", 100 * MINUTE_NS).unwrap();
        assert_eq!(default.to_ns - default.from_ns, DEFAULT_RANGE_NS);
    }
}
