//! An accepted event as a row of the `events` table.

use chaukas_proto::common::v1::Event;
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
    /// The event's protobuf encoding; once sealed, canonical with its log fields filled.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Its leaf index in the tenant's log, once sealed.
    pub leaf_index: u64,
    /// SHA-256 of its canonical encoding without the log fields (32 bytes) once sealed;
    /// empty until then.
    #[serde(with = "serde_bytes")]
    pub content_hash: Vec<u8>,
}

impl EventRow {
    /// Builds the row of an event accepted at `ingest_time_ns`; its payload is the event's
    /// canonical encoding, re-made from the decoded event whatever bytes carried it.
    pub fn new(event: &Event, ingest_time_ns: i64) -> Self {
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
        }
    }
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
}
