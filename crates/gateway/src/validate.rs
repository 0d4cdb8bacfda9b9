//! What makes an event acceptable. Limits are documented in the README ("Ingestion
//! limits"); every rejection names the field and says what to change.

use std::borrow::Cow;
use std::fmt;

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{Author, Event, EventStatus, EventType, Severity};
use prost::Message;

/// Longest id (event, tenant, project, session, trace, span, agent, invocation, ...).
pub const MAX_ID_BYTES: usize = 256;
/// Longest agent name or branch.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most tags on one event.
pub const MAX_TAGS: usize = 64;
/// Longest tag.
pub const MAX_TAG_BYTES: usize = 256;
/// Latest accepted timestamp: 2100-01-01T00:00:00Z (ClickHouse `Date` ends in 2149).
const MAX_TIMESTAMP_SECONDS: i64 = 4_102_444_800;

/// Why one event was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Dotted path of the offending field, e.g. `event.tenant_id`.
    pub field: Cow<'static, str>,
    /// What is wrong, phrased so the caller knows what to fix.
    pub problem: String,
    /// Short, stable label for metrics (the field for fixed fields).
    reason: &'static str,
}

impl Rejection {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field: Cow::Borrowed(field),
            problem: problem.into(),
            reason: field,
        }
    }

    /// The event names a tenant or project its API key may not write.
    pub(crate) fn forbidden(field: &'static str, problem: impl Into<String>) -> Self {
        Self::new(field, problem)
    }

    /// The tenant's redaction policy cannot be applied to the event (fail closed).
    pub(crate) fn redaction(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field: Cow::Borrowed(field),
            problem: problem.into(),
            reason: "redaction",
        }
    }

    /// Short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

/// Checks one event against the limits; `max_event_bytes` bounds its encoded size.
pub fn validate(event: &Event, max_event_bytes: usize) -> Result<(), Rejection> {
    required_id("event.event_id", &event.event_id)?;
    required_id("event.tenant_id", &event.tenant_id)?;
    if event.tenant_id.chars().any(char::is_control) {
        // The tenant names its audit log: a newline in it would let a tenant's checkpoint
        // text pass for another log's (docs/audit.md).
        return Err(Rejection::new(
            "event.tenant_id",
            "must not contain control characters (newlines, tabs, ...)",
        ));
    }
    for (field, value) in [
        ("event.hash_prev", &event.hash_prev),
        ("event.content_hash", &event.content_hash),
        ("event.worm_proof_id", &event.worm_proof_id),
    ] {
        if !value.is_empty() {
            return Err(Rejection::new(
                field,
                "is filled by the server (the event's place in its tenant's audit log, \
                 see docs/audit.md); send it empty",
            ));
        }
    }
    let spoofed = event.redaction.as_ref().is_some_and(|info| {
        info.fields
            .iter()
            .any(|field| field.starts_with(chaukas_privacy::SERVER_ENTRY_PREFIX))
    });
    if spoofed {
        // What the server redacted must be told apart from what a client says it did.
        return Err(Rejection::new(
            "event.redaction.fields",
            "entries starting with `server:` are written by the server's redaction \
             (docs/privacy.md); name the fields you redacted without that prefix",
        ));
    }
    match EventType::try_from(event.r#type) {
        Ok(EventType::Unspecified) => {
            return Err(Rejection::new(
                "event.type",
                "must be set (EVENT_TYPE_UNSPECIFIED is not a valid event type)",
            ));
        }
        Ok(_) => {}
        Err(_) => {
            return Err(Rejection::new(
                "event.type",
                format!("{} is not a known EventType", event.r#type),
            ));
        }
    }
    if EventStatus::try_from(event.status).is_err() {
        return Err(Rejection::new(
            "event.status",
            format!("{} is not a known EventStatus", event.status),
        ));
    }
    if Severity::try_from(event.severity).is_err() {
        return Err(Rejection::new(
            "event.severity",
            format!("{} is not a known Severity", event.severity),
        ));
    }
    if Author::try_from(event.author).is_err() {
        return Err(Rejection::new(
            "event.author",
            format!("{} is not a known Author", event.author),
        ));
    }
    for (field, value) in [
        ("event.project_id", &event.project_id),
        ("event.session_id", &event.session_id),
        ("event.span_id", &event.span_id),
        ("event.parent_span_id", &event.parent_span_id),
        ("event.trace_id", &event.trace_id),
        ("event.agent_id", &event.agent_id),
        ("event.invocation_id", &event.invocation_id),
        ("event.response_id", &event.response_id),
    ] {
        bounded(field, value, MAX_ID_BYTES)?;
    }
    bounded("event.agent_name", &event.agent_name, MAX_NAME_BYTES)?;
    bounded("event.branch", &event.branch, MAX_NAME_BYTES)?;
    // Keys of the figures by model (`GET /v1/stats/models`): bounded like the agent's name,
    // so an answer of 200 models stays small whatever clients send.
    if let Some(Content::LlmInvocation(llm)) = &event.content {
        bounded(
            "event.llm_invocation.provider",
            &llm.provider,
            MAX_NAME_BYTES,
        )?;
        bounded("event.llm_invocation.model", &llm.model, MAX_NAME_BYTES)?;
    }
    if let Some(cost) = &event.cost {
        bounded("event.cost.provider", &cost.provider, MAX_NAME_BYTES)?;
    }
    if event.tags.len() > MAX_TAGS {
        return Err(Rejection::new(
            "event.tags",
            format!(
                "has {} entries; at most {MAX_TAGS} are allowed",
                event.tags.len()
            ),
        ));
    }
    for tag in &event.tags {
        bounded("event.tags", tag, MAX_TAG_BYTES)?;
    }
    if let Some(timestamp) = &event.timestamp
        && (!(0..MAX_TIMESTAMP_SECONDS).contains(&timestamp.seconds)
            || !(0..1_000_000_000).contains(&timestamp.nanos))
    {
        return Err(Rejection::new(
            "event.timestamp",
            "must lie between 1970-01-01 and 2100-01-01 with nanos in 0..1e9",
        ));
    }
    let size = event.encoded_len();
    if size > max_event_bytes {
        return Err(Rejection::new(
            "event",
            format!("is {size} bytes encoded; at most {max_event_bytes} are accepted"),
        ));
    }
    // Whatever is acknowledged must be readable through every read path.
    chaukas_json::check_event(event).map_err(|unrenderable| Rejection {
        field: Cow::Owned(unrenderable.field),
        problem: unrenderable.problem,
        reason: "unrenderable",
    })
}

fn required_id(field: &'static str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() {
        return Err(Rejection::new(field, "is required"));
    }
    bounded(field, value, MAX_ID_BYTES)
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.len() > max {
        return Err(Rejection::new(
            field,
            format!("is {} bytes; at most {max} are allowed", value.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Event {
        Event {
            event_id: "e1".into(),
            tenant_id: "t1".into(),
            r#type: EventType::ToolCallStart as i32,
            ..Event::default()
        }
    }

    fn rejection(event: &Event) -> String {
        validate(event, 4096).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_event_is_valid() {
        assert_eq!(validate(&valid(), 4096), Ok(()));
    }

    #[test]
    fn a_client_cannot_pass_its_redactions_for_the_servers() {
        let mut event = valid();
        event.redaction = Some(chaukas_proto::common::v1::RedactionInfo {
            fields: vec!["message.text".into()],
            method: "mask".into(),
            salt_id: String::new(),
        });
        assert_eq!(
            validate(&event, 4096),
            Ok(()),
            "the client's own statement is kept"
        );
        event
            .redaction
            .as_mut()
            .unwrap()
            .fields
            .push("server:mask:email:/message/text".into());
        assert!(
            rejection(&event).starts_with("event.redaction.fields entries starting with `server:`")
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut event = valid();
        event.event_id.clear();
        assert_eq!(rejection(&event), "event.event_id is required");

        let mut event = valid();
        event.tenant_id.clear();
        assert_eq!(rejection(&event), "event.tenant_id is required");

        let mut event = valid();
        event.r#type = 0;
        assert!(rejection(&event).starts_with("event.type must be set"));

        let mut event = valid();
        event.tenant_id = "acme\n12\nAAAA".into();
        assert!(
            rejection(&event).starts_with("event.tenant_id must not contain control characters")
        );

        for field in [
            "event.hash_prev",
            "event.content_hash",
            "event.worm_proof_id",
        ] {
            let mut event = valid();
            match field {
                "event.hash_prev" => event.hash_prev = "00".into(),
                "event.content_hash" => event.content_hash = "ab".into(),
                _ => event.worm_proof_id = "1".into(),
            }
            assert!(
                rejection(&event).starts_with(&format!("{field} is filled by the server")),
                "{field}"
            );
        }

        let mut event = valid();
        event.r#type = 99;
        assert_eq!(rejection(&event), "event.type 99 is not a known EventType");

        let mut event = valid();
        event.status = 17;
        assert_eq!(
            rejection(&event),
            "event.status 17 is not a known EventStatus"
        );

        let mut event = valid();
        event.session_id = "s".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            rejection(&event),
            "event.session_id is 257 bytes; at most 256 are allowed"
        );

        let mut event = valid();
        event.content = Some(Content::LlmInvocation(
            chaukas_proto::common::v1::LlmInvocation {
                model: "m".repeat(MAX_NAME_BYTES + 1),
                ..Default::default()
            },
        ));
        assert_eq!(
            rejection(&event),
            "event.llm_invocation.model is 1025 bytes; at most 1024 are allowed"
        );

        let mut event = valid();
        event.tags = vec!["x".into(); MAX_TAGS + 1];
        assert!(rejection(&event).starts_with("event.tags has 65 entries"));

        let mut event = valid();
        event.timestamp = Some(prost_types::Timestamp {
            seconds: -1,
            nanos: 0,
        });
        assert!(rejection(&event).starts_with("event.timestamp"));

        let mut event = valid();
        event.agent_name = "a".repeat(1000);
        assert!(
            validate(&event, 512)
                .unwrap_err()
                .to_string()
                .starts_with("event is ")
        );
    }
}
