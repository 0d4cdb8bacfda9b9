//! What one read may ask of ClickHouse: bounded filters, sane time ranges, and a cap on the
//! reads a tenant runs at once, so no caller can make the store slow for everyone.
//!
//! Statement-level limits (execution time, memory) are ClickHouse settings on the query
//! service's client (see `QuerySettings`); these checks refuse before a statement is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chaukas_proto::common::v1::{QueryFilter, TimeRange};

use crate::QueryError;

/// Longest id in a filter (as at ingest).
pub const MAX_FILTER_ID_BYTES: usize = 256;
/// Most values in one repeated filter field (`types`, `statuses`, `severities`, `tags`).
pub const MAX_FILTER_VALUES: usize = 64;
/// Longest tag in a filter (as at ingest).
pub const MAX_FILTER_TAG_BYTES: usize = 256;
/// Longest `text_query`: a substring search, not a document.
pub const MAX_TEXT_QUERY_BYTES: usize = 1024;
/// Longest page token we ever issue is far below this.
pub const MAX_PAGE_TOKEN_BYTES: usize = 2048;
/// Latest and earliest instants accepted: their nanoseconds, rounded to whole minutes, still
/// fit in an i64 (the stats split multiplies minutes back into nanoseconds).
const MAX_ABS_SECONDS: i64 = 9_000_000_000;

/// Checks the sizes of a QueryEvents filter; `prefix` names it in messages.
pub fn check_filter(filter: &QueryFilter, prefix: &str) -> Result<(), QueryError> {
    for (name, value) in [
        ("tenant_id", &filter.tenant_id),
        ("project_id", &filter.project_id),
        ("session_id", &filter.session_id),
        ("agent_id", &filter.agent_id),
        ("span_id", &filter.span_id),
        ("trace_id", &filter.trace_id),
    ] {
        if value.len() > MAX_FILTER_ID_BYTES {
            return Err(QueryError::invalid(format!(
                "{prefix}.{name} is {} bytes; at most {MAX_FILTER_ID_BYTES} are allowed",
                value.len()
            )));
        }
    }
    for (name, count) in [
        ("types", filter.types.len()),
        ("statuses", filter.statuses.len()),
        ("severities", filter.severities.len()),
        ("tags", filter.tags.len()),
    ] {
        if count > MAX_FILTER_VALUES {
            return Err(QueryError::invalid(format!(
                "{prefix}.{name} has {count} values; at most {MAX_FILTER_VALUES} are allowed"
            )));
        }
    }
    if let Some(tag) = filter
        .tags
        .iter()
        .find(|tag| tag.len() > MAX_FILTER_TAG_BYTES)
    {
        return Err(QueryError::invalid(format!(
            "{prefix}.tags has a tag of {} bytes; at most {MAX_FILTER_TAG_BYTES} are allowed",
            tag.len()
        )));
    }
    if filter.text_query.len() > MAX_TEXT_QUERY_BYTES {
        return Err(QueryError::invalid(format!(
            "{prefix}.text_query is {} bytes; at most {MAX_TEXT_QUERY_BYTES} are allowed",
            filter.text_query.len()
        )));
    }
    Ok(())
}

/// A time range's ends in nanoseconds, refusing instants that do not fit and inverted ranges.
pub fn time_range(
    range: Option<&TimeRange>,
    prefix: &str,
) -> Result<(Option<i64>, Option<i64>), QueryError> {
    let nanos = |name: &str, time: Option<&prost_types::Timestamp>| {
        time.map(|time| {
            if time.seconds.abs() > MAX_ABS_SECONDS || !(0..1_000_000_000).contains(&time.nanos) {
                Err(QueryError::invalid(format!(
                    "{prefix}.{name} must lie within 285 years of 1970 with nanos in 0..1e9"
                )))
            } else {
                Ok(time.seconds * 1_000_000_000 + i64::from(time.nanos))
            }
        })
        .transpose()
    };
    let start = nanos("start", range.and_then(|range| range.start.as_ref()))?;
    let end = nanos("end", range.and_then(|range| range.end.as_ref()))?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(QueryError::invalid(format!(
            "{prefix}.start must not be after {prefix}.end"
        )));
    }
    Ok((start, end))
}

/// Counts the reads each tenant runs; past the cap a read is refused (retry shortly).
#[derive(Default)]
pub struct TenantReads {
    running: Mutex<HashMap<String, usize>>,
    max_per_tenant: usize,
}

/// One running read; its tenant's count drops when this does.
pub struct ReadSlot {
    reads: Arc<TenantReads>,
    tenant: String,
}

impl TenantReads {
    /// At most `max_per_tenant` reads of one tenant at once.
    pub fn new(max_per_tenant: usize) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(HashMap::new()),
            max_per_tenant: max_per_tenant.max(1),
        })
    }

    /// A slot for a read of `tenant`, or the refusal.
    pub fn start(self: &Arc<Self>, tenant: &str) -> Result<ReadSlot, QueryError> {
        let mut running = self.running.lock().expect("tenant reads lock");
        let count = running.entry(tenant.to_owned()).or_insert(0);
        if *count >= self.max_per_tenant {
            return Err(QueryError::Busy(format!(
                "tenant {tenant:?} already has {} reads running; retry when one has finished",
                self.max_per_tenant
            )));
        }
        *count += 1;
        Ok(ReadSlot {
            reads: self.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

impl Drop for ReadSlot {
    fn drop(&mut self) {
        let mut running = self.reads.running.lock().expect("tenant reads lock");
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_many_filter_values_are_refused_by_name() {
        let filter = QueryFilter {
            text_query: "x".repeat(MAX_TEXT_QUERY_BYTES + 1),
            ..QueryFilter::default()
        };
        assert!(
            check_filter(&filter, "query.filter")
                .unwrap_err()
                .to_string()
                .starts_with("query.filter.text_query is 1025 bytes")
        );
        let filter = QueryFilter {
            tags: vec!["t".into(); 20_000],
            ..QueryFilter::default()
        };
        assert!(
            check_filter(&filter, "query.filter")
                .unwrap_err()
                .to_string()
                .contains("tags has 20000 values")
        );
    }

    #[test]
    fn instants_beyond_i64_nanoseconds_are_refused() {
        let range = TimeRange {
            start: Some(prost_types::Timestamp {
                seconds: i64::MAX / 2,
                nanos: 0,
            }),
            end: None,
        };
        assert!(time_range(Some(&range), "time_range").is_err());
    }

    #[test]
    fn a_tenant_cannot_run_more_reads_than_its_cap() {
        let reads = TenantReads::new(2);
        let first = reads.start("a").unwrap();
        let _second = reads.start("a").unwrap();
        assert!(reads.start("a").is_err());
        assert!(reads.start("b").is_ok(), "other tenants are not affected");
        drop(first);
        assert!(reads.start("a").is_ok());
    }
}
