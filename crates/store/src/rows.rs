//! An accepted event as a row of the `events` table.

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{Event, EventType};
use serde::Serialize;

use crate::search::search_text;

/// Nanoseconds in a day, for the partitioning `event_date`.
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// One row of `events`; field names are the column names.
#[derive(Debug, Clone, PartialEq, Serialize, clickhouse::Row)]
pub struct EventRow {
    /// Tenant the event belongs to.
    pub tenant_id: String,
    /// Project within the tenant.
    pub project_id: String,
    /// Session id.
    pub session_id: String,
    /// Trace id.
    pub trace_id: String,
    /// Span id.
    pub span_id: String,
    /// Parent span id.
    pub parent_span_id: String,
    /// The client's event id, unique per tenant.
    pub event_id: String,
    /// `EventType` number.
    pub event_type: i32,
    /// `EventStatus` number.
    pub status: i32,
    /// `Severity` number.
    pub severity: i32,
    /// `Author` number.
    pub author: i32,
    /// Agent id.
    pub agent_id: String,
    /// Agent name.
    pub agent_name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Event time in ns since the epoch; the ingest time when the client sent none.
    pub event_time_ns: i64,
    /// 1 when `event_time_ns` is the client's timestamp.
    pub has_event_time: u8,
    /// When the gateway accepted the event, ns since the epoch.
    pub ingest_time_ns: i64,
    /// UTC day of `event_time_ns` as days since the epoch (ClickHouse `Date`).
    pub event_date: u16,
    /// Lower-cased human text for `text_query`.
    pub search_text: String,
    /// The event's canonical protobuf encoding, without the log fields (the bytes its
    /// content hash covers).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Its leaf index in the tenant's log, once sealed.
    pub leaf_index: u64,
    /// SHA-256 of its canonical encoding without the log fields (32 bytes) once sealed;
    /// empty until then. Kept for the writer's tree, not inserted: the log's view computes
    /// the same hash from `payload` into `log_leaves` (migration 0010), so `events` does not
    /// carry 32 incompressible bytes per row a second time.
    #[serde(skip)]
    pub content_hash: Vec<u8>,
    /// 1 once sealed (it has a leaf): what readers and the view tell sealed rows by.
    pub sealed: u8,
    /// Input (prompt) tokens the event reports, for the session summaries.
    pub input_tokens: u64,
    /// Output (completion) tokens the event reports.
    pub output_tokens: u64,
    /// `CostDetails.total_cost`, in the client's currency.
    pub cost: f64,
    /// 1 for an ERROR whose `ErrorInfo` says it is not recoverable.
    pub unrecovered: u8,
    /// The model invocation's provider (else its `CostDetails` provider), for the figures
    /// by model; empty for other events.
    pub provider: String,
    /// The model invocation's model; empty for other events.
    pub model: String,
}

impl EventRow {
    /// Builds the row of an event accepted at `ingest_time_ns`; its payload is the event's
    /// canonical encoding, re-made from the decoded event whatever bytes carried it.
    pub fn new(event: &Event, ingest_time_ns: i64) -> Self {
        let usage = usage(event);
        let client_time = event.timestamp.as_ref().map(timestamp_nanos);
        let event_time_ns = client_time.unwrap_or(ingest_time_ns);
        let days = event_time_ns
            .div_euclid(NANOS_PER_DAY)
            .clamp(0, i64::from(u16::MAX));
        Self {
            tenant_id: event.tenant_id.clone(),
            project_id: event.project_id.clone(),
            session_id: event.session_id.clone(),
            trace_id: event.trace_id.clone(),
            span_id: event.span_id.clone(),
            parent_span_id: event.parent_span_id.clone(),
            event_id: event.event_id.clone(),
            event_type: event.r#type,
            status: event.status,
            severity: event.severity,
            author: event.author,
            agent_id: event.agent_id.clone(),
            agent_name: event.agent_name.clone(),
            tags: event.tags.clone(),
            event_time_ns,
            has_event_time: u8::from(client_time.is_some()),
            ingest_time_ns,
            event_date: u16::try_from(days).expect("clamped to the u16 range"),
            search_text: search_text(event),
            // Canonical, without the log fields, whatever bytes the bus carried: the writer
            // hashes and stores exactly this (chaukas_audit::content::hash_canonical).
            payload: chaukas_audit::content::canonical_encoding(event),
            leaf_index: 0,
            content_hash: Vec::new(),
            sealed: 0,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost: usage.cost,
            unrecovered: u8::from(is_unrecovered_error(event)),
            provider: usage.provider.to_owned(),
            model: usage.model.to_owned(),
        }
    }
}

/// Tokens and cost an event reports: `CostDetails` when present, else the model
/// invocation's own token counts. Negative or non-finite figures count as zero.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Usage<'a> {
    input_tokens: u64,
    output_tokens: u64,
    cost: f64,
    provider: &'a str,
    model: &'a str,
}

fn usage(event: &Event) -> Usage<'_> {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    let llm = match &event.content {
        Some(Content::LlmInvocation(llm)) => Some(llm),
        _ => None,
    };
    let (input_tokens, output_tokens) = match (&event.cost, llm) {
        (Some(cost), _) if cost.input_tokens > 0 || cost.output_tokens > 0 => {
            (count(cost.input_tokens), count(cost.output_tokens))
        }
        (_, Some(llm)) => (count(llm.prompt_tokens), count(llm.completion_tokens)),
        _ => (0, 0),
    };
    let cost = event
        .cost
        .as_ref()
        .map(|cost| cost.total_cost)
        .filter(|cost| cost.is_finite() && *cost > 0.0)
        .unwrap_or(0.0);
    let provider = match (llm, &event.cost) {
        (Some(llm), _) if !llm.provider.is_empty() => llm.provider.as_str(),
        (Some(_), Some(cost)) => cost.provider.as_str(),
        _ => "",
    };
    Usage {
        input_tokens,
        output_tokens,
        cost,
        provider,
        model: llm.map_or("", |llm| llm.model.as_str()),
    }
}

/// An ERROR that does not say it is recoverable (`ErrorInfo.recoverable`) is not.
fn is_unrecovered_error(event: &Event) -> bool {
    event.r#type == EventType::Error as i32
        && !matches!(&event.content, Some(Content::Error(error)) if error.recoverable)
}

impl EventRow {
    /// The `events` partition the row goes to: `toYYYYMM(event_date)` as ClickHouse
    /// computes it (days since 1970-01-01 to a civil date, proleptic Gregorian).
    pub fn partition(&self) -> u32 {
        let days = i64::from(self.event_date) + 719_468;
        let era = days / 146_097;
        let day_of_era = days - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        u32::try_from(year * 100 + month).expect("a date ClickHouse can hold")
    }
}

/// A protobuf timestamp as ns since the epoch, saturating far outside the gateway's
/// accepted range.
pub fn timestamp_nanos(timestamp: &prost_types::Timestamp) -> i64 {
    timestamp
        .seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(timestamp.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_the_client_time_or_else_the_ingest_time() {
        let mut event = Event {
            event_id: "e".into(),
            tenant_id: "t".into(),
            timestamp: Some(prost_types::Timestamp {
                seconds: 86_400 * 3 + 5,
                nanos: 7,
            }),
            ..Event::default()
        };
        let row = EventRow::new(&event, 1);
        assert_eq!(row.event_time_ns, (86_400 * 3 + 5) * 1_000_000_000 + 7);
        assert_eq!(row.has_event_time, 1);
        assert_eq!(row.event_date, 3);
        assert_eq!(row.payload, prost::Message::encode_to_vec(&event));

        event.timestamp = None;
        let mut row = EventRow::new(&event, NANOS_PER_DAY * 2 + 9);
        assert_eq!(row.event_time_ns, NANOS_PER_DAY * 2 + 9);
        assert_eq!(row.has_event_time, 0);
        assert_eq!(row.event_date, 2);
        assert_eq!(row.partition(), 197001);
        row.event_date = 20_423; // 2025-12-01
        assert_eq!(row.partition(), 202512);
        row.event_date = 20_422;
        assert_eq!(row.partition(), 202511);
        row.event_date = 11_016; // 2000-02-29
        assert_eq!(row.partition(), 200002);
    }

    #[test]
    fn rows_carry_the_usage_and_whether_an_error_is_unrecovered() {
        use chaukas_proto::common::v1::{CostDetails, ErrorInfo, LlmInvocation};
        let mut event = Event {
            event_id: "e".into(),
            tenant_id: "t".into(),
            content: Some(Content::LlmInvocation(LlmInvocation {
                prompt_tokens: 10,
                completion_tokens: -3,
                ..LlmInvocation::default()
            })),
            ..Event::default()
        };
        let row = EventRow::new(&event, 1);
        assert_eq!(
            (row.input_tokens, row.output_tokens, row.cost),
            (10, 0, 0.0)
        );
        // CostDetails' own counts win; a cost that is not a finite positive number is none.
        event.cost = Some(CostDetails {
            input_tokens: 7,
            output_tokens: 2,
            total_cost: 0.5,
            ..CostDetails::default()
        });
        let row = EventRow::new(&event, 1);
        assert_eq!((row.input_tokens, row.output_tokens, row.cost), (7, 2, 0.5));
        event.cost.as_mut().unwrap().total_cost = f64::NAN;
        assert_eq!(EventRow::new(&event, 1).cost, 0.0);

        event.r#type = EventType::Error as i32;
        event.content = None;
        assert_eq!(EventRow::new(&event, 1).unrecovered, 1);
        event.content = Some(Content::Error(ErrorInfo {
            recoverable: true,
            ..ErrorInfo::default()
        }));
        assert_eq!(EventRow::new(&event, 1).unrecovered, 0);
        event.r#type = EventType::ToolCallEnd as i32;
        event.content = None;
        assert_eq!(EventRow::new(&event, 1).unrecovered, 0);
    }
}
