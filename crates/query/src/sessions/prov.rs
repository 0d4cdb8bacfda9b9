//! A session as W3C PROV-O (https://www.w3.org/TR/prov-o/), in JSON-LD:
//!
//! - the session and each action (span) are `prov:Activity`, with `prov:startedAtTime` /
//!   `prov:endedAtTime`; each action is `dcterms:isPartOf` the session and
//!   `prov:wasInformedBy` the action started before it (the sequence; an action without a
//!   start event is placed at its end);
//! - agents are `prov:SoftwareAgent`, actions `prov:wasAssociatedWith` theirs; a handoff
//!   makes the receiving agent `prov:actedOnBehalfOf` the handing one (delegation);
//! - an action's start event is a `prov:Entity` it `prov:used` (its input), its end event
//!   one that `prov:wasGeneratedBy` it (its output);
//! - what PROV has no term for is kept under `chaukas:` — outcome, reasons, status, failure
//!   and the evidence (event ids, audit-log leaves).
//!
//! Identifiers are URNs under `urn:chaukas:<tenant>:`, each part percent-encoded.

use serde_json::{Value, json};

use super::detail::SessionDetail;

/// The JSON-LD context: PROV-O, XML Schema datatypes, Dublin Core terms, ours.
fn context() -> Value {
    json!({
        "prov": "http://www.w3.org/ns/prov#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "dcterms": "http://purl.org/dc/terms/",
        "chaukas": "https://chaukas.dev/ns/audit#"
    })
}

/// The session's provenance graph.
pub fn graph(tenant: &str, detail: &SessionDetail) -> Value {
    let summary = &detail.summary;
    let urn =
        |kind: &str, id: &str| format!("urn:chaukas:{}:{kind}:{}", encode(tenant), encode(id));
    let session_id = urn("session", &summary.session_id);
    let mut nodes = vec![json!({
        "@id": session_id,
        "@type": "prov:Activity",
        "dcterms:identifier": summary.session_id,
        "chaukas:project": summary.project_id,
        "prov:startedAtTime": time(&summary.start),
        "prov:endedAtTime": summary.end.as_deref().map(time),
        "chaukas:outcome": summary.outcome.as_str(),
        "chaukas:reason": summary.reasons,
    })];
    let mut agents: Vec<&str> = Vec::new();
    let mut previous: Option<String> = None;
    let mut spans: Vec<_> = detail
        .spans
        .iter()
        .filter(|s| s.kind != "session")
        .collect();
    spans.sort_by_key(|span| (span.first_ns(), span.span_id.clone()));
    for span in spans {
        let id = urn("action", &span.span_id);
        let evidence: Vec<&str> = [span.start_event_id.as_str(), span.end_event_id.as_str()]
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect();
        let mut node = json!({
            "@id": id,
            "@type": "prov:Activity",
            "dcterms:isPartOf": {"@id": session_id},
            "dcterms:identifier": span.span_id,
            "chaukas:kind": span.kind,
            "chaukas:name": span.name,
            "chaukas:status": span.status,
            "prov:startedAtTime": span.start.as_deref().map(time),
            "prov:endedAtTime": span.end.as_deref().map(time),
            "chaukas:failure": span.failure,
            "chaukas:evidence": evidence,
        });
        if !span.agent.is_empty() {
            node["prov:wasAssociatedWith"] = json!({"@id": urn("agent", &span.agent)});
            if !agents.contains(&span.agent.as_str()) {
                agents.push(&span.agent);
            }
        }
        if let Some(previous) = &previous {
            node["prov:wasInformedBy"] = json!({"@id": previous});
        }
        if !span.start_event_id.is_empty() {
            let input = urn("event", &span.start_event_id);
            node["prov:used"] = json!({"@id": input});
            nodes.push(json!({"@id": input, "@type": "prov:Entity", "chaukas:role": "input"}));
        }
        if !span.end_event_id.is_empty() {
            nodes.push(json!({
                "@id": urn("event", &span.end_event_id),
                "@type": "prov:Entity",
                "chaukas:role": "output",
                "prov:wasGeneratedBy": {"@id": id},
            }));
        }
        previous = Some(id);
        nodes.push(node);
    }
    for handoff in &detail.handoffs {
        for agent in [&handoff.from_agent, &handoff.to_agent] {
            if !agent.is_empty() && !agents.contains(&agent.as_str()) {
                agents.push(agent);
            }
        }
    }
    for agent in agents {
        let mut node = json!({
            "@id": urn("agent", agent),
            "@type": ["prov:SoftwareAgent", "prov:Agent"],
            "dcterms:title": agent,
        });
        let principals: Vec<Value> = detail
            .handoffs
            .iter()
            .filter(|h| h.to_agent == agent && !h.from_agent.is_empty())
            .map(|h| json!({"@id": urn("agent", &h.from_agent)}))
            .collect();
        if !principals.is_empty() {
            node["prov:actedOnBehalfOf"] = Value::Array(principals);
        }
        nodes.push(node);
    }
    for node in &mut nodes {
        if let Value::Object(map) = node {
            map.retain(|_, value| !value.is_null());
        }
    }
    json!({"@context": context(), "@graph": nodes})
}

fn time(rfc3339: &str) -> Value {
    json!({"@value": rfc3339, "@type": "xsd:dateTime"})
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so any id is a valid
/// URN part.
fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
