//! A realistic event mix: agent sessions of every event type, ~1 KB on average with a long
//! tail of large LLM payloads, spread over many tenants, projects, sessions and traces.
//!
//! Deterministic (a seeded splitmix64), so runs are comparable and the query benchmarks know
//! which sessions and traces exist without asking.

use std::time::{SystemTime, UNIX_EPOCH};

use chaukas_proto::common::v1::event::Content;
use chaukas_proto::common::v1::{
    AgentHandoff, DataAccess, ErrorInfo, Event, EventStatus, EventType, LlmInvocation, McpCall,
    MessageContent, PolicyDecision, RetryInfo, Severity, ToolCall, ToolResponse,
};
use prost_types::{Struct, Timestamp, Value, value::Kind};

/// Events per session; a session starts and ends with SESSION_START / SESSION_END.
pub const SESSION_EVENTS: u64 = 40;
/// Events per trace.
pub const TRACE_EVENTS: u64 = 10;

/// splitmix64: small, fast, good enough for a load mix.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// Where the events of one simulated client (an SDK instance: one tenant and project) go.
pub struct Client {
    run: String,
    tenant: String,
    project: String,
    client: u64,
    sequence: u64,
    rng: Rng,
}

/// Tenant name of client `client` out of `tenants`.
pub fn tenant_of(run: &str, client: u64, tenants: u64) -> String {
    format!("bench-{run}-tenant-{:03}", client % tenants)
}

/// Session id of the `session`-th session of client `client`.
pub fn session_id(run: &str, client: u64, session: u64) -> String {
    format!("{run}-c{client}-s{session}")
}

/// Trace id of the `trace`-th trace of client `client`.
pub fn trace_id(run: &str, client: u64, trace: u64) -> String {
    format!("{run}-c{client}-t{trace}")
}

/// Filler text of `len` bytes (varied, so compression does not make it free).
fn text(rng: &mut Rng, len: usize) -> String {
    const WORDS: &[&str] = &[
        "agent",
        "tool",
        "weather",
        "invoice",
        "search",
        "policy",
        "customer",
        "refund",
        "summary",
        "the",
        "of",
        "and",
        "retrieved",
        "document",
        "model",
        "answer",
        "because",
        "latency",
        "budget",
        "account",
        "shipping",
        "contract",
        "review",
        "approved",
    ];
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        out.push(' ');
    }
    out.truncate(len);
    out
}

/// Payload size: ~800 bytes on average: 90% 100-700, 9% 1-5 KB, 1% 8-24 KB (LLM transcripts).
fn payload_len(rng: &mut Rng) -> usize {
    let roll = rng.below(100);
    let len = if roll < 90 {
        100 + rng.below(600)
    } else if roll < 99 {
        1_000 + rng.below(4_000)
    } else {
        8_000 + rng.below(16_000)
    };
    usize::try_from(len).unwrap_or(1_000)
}

fn object(entries: &[(&str, String)]) -> Struct {
    Struct {
        fields: entries
            .iter()
            .map(|(key, value)| {
                (
                    (*key).to_owned(),
                    Value {
                        kind: Some(Kind::StringValue(value.clone())),
                    },
                )
            })
            .collect(),
    }
}

fn now() -> Timestamp {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(elapsed.as_secs()).unwrap_or_default(),
        nanos: i32::try_from(elapsed.subsec_nanos()).unwrap_or_default(),
    }
}

/// The type of the `position`-th event of a session.
fn type_at(rng: &mut Rng, position: u64) -> EventType {
    use EventType as T;
    match position {
        0 => return T::SessionStart,
        1 => return T::AgentStart,
        2 => return T::InputReceived,
        p if p == SESSION_EVENTS - 3 => return T::OutputEmitted,
        p if p == SESSION_EVENTS - 2 => return T::AgentEnd,
        p if p == SESSION_EVENTS - 1 => return T::SessionEnd,
        _ => {}
    }
    // Weighted: model and tool calls dominate real agent traffic.
    const MIX: &[(EventType, u64)] = &[
        (T::ModelInvocationStart, 18),
        (T::ModelInvocationEnd, 18),
        (T::ToolCallStart, 16),
        (T::ToolCallEnd, 16),
        (T::McpCallStart, 5),
        (T::McpCallEnd, 5),
        (T::PolicyDecision, 5),
        (T::DataAccess, 5),
        (T::StateUpdate, 4),
        (T::AgentHandoff, 2),
        (T::Retry, 2),
        (T::Error, 2),
        (T::System, 2),
    ];
    let total: u64 = MIX.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.below(total);
    for (kind, weight) in MIX {
        if roll < *weight {
            return *kind;
        }
        roll -= weight;
    }
    T::System
}

impl Client {
    /// Client `client` of run `run`, with `tenants` tenants and 4 projects per tenant.
    pub fn new(run: &str, client: u64, tenants: u64) -> Self {
        Self {
            run: run.to_owned(),
            tenant: tenant_of(run, client, tenants),
            project: format!("project-{}", client % 4),
            client,
            sequence: 0,
            rng: Rng::new(client.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC4A0_C45E),
        }
    }

    /// The next `count` events.
    pub fn batch(&mut self, count: usize) -> Vec<Event> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        let sequence = self.sequence;
        self.sequence += 1;
        let position = sequence % SESSION_EVENTS;
        let rng = &mut self.rng;
        let kind = type_at(rng, position);
        let len = payload_len(rng);
        let body = text(rng, len);
        let content = match kind {
            EventType::InputReceived | EventType::OutputEmitted | EventType::System => {
                Some(Content::Message(MessageContent {
                    role: "user".into(),
                    text: body,
                    metadata: None,
                }))
            }
            EventType::ModelInvocationStart | EventType::ModelInvocationEnd => {
                Some(Content::LlmInvocation(LlmInvocation {
                    provider: "openai".into(),
                    model: "gpt-4o".into(),
                    request: Some(object(&[("prompt", body)])),
                    prompt_tokens: 812,
                    completion_tokens: 96,
                    total_tokens: 908,
                    temperature: 0.2,
                    finish_reason: "stop".into(),
                    ..LlmInvocation::default()
                }))
            }
            EventType::ToolCallStart => Some(Content::ToolCall(ToolCall {
                id: format!("call-{sequence}"),
                name: "search".into(),
                arguments: Some(object(&[("query", body)])),
                ..ToolCall::default()
            })),
            EventType::ToolCallEnd => Some(Content::ToolResponse(ToolResponse {
                tool_call_id: format!("call-{}", sequence.saturating_sub(1)),
                output: Some(object(&[("result", body)])),
                execution_time_ms: 41.5,
                http_status: 200,
                ..ToolResponse::default()
            })),
            EventType::McpCallStart | EventType::McpCallEnd => Some(Content::McpCall(McpCall {
                server_name: "files".into(),
                server_url: "stdio://files".into(),
                operation: "tools/call".into(),
                method: "read".into(),
                request: Some(object(&[("path", body)])),
                ..McpCall::default()
            })),
            EventType::PolicyDecision => Some(Content::Policy(PolicyDecision {
                policy_id: "pii-guard".into(),
                outcome: if rng.below(4) == 0 { "deny" } else { "allow" }.into(),
                rule_ids: vec!["r1".into(), "r7".into()],
                rationale: body,
            })),
            EventType::DataAccess => Some(Content::DataAccess(DataAccess {
                datasource: "crm".into(),
                document_ids: vec![format!("doc-{}", rng.below(10_000))],
                pii_categories: vec!["email".into()],
                chunk_ids: vec![body],
            })),
            EventType::Error => Some(Content::Error(ErrorInfo {
                error_message: "rate limited".into(),
                error_code: "429".into(),
                stack_trace: body,
                recoverable: true,
                ..ErrorInfo::default()
            })),
            EventType::AgentHandoff => Some(Content::AgentHandoff(AgentHandoff {
                from_agent_id: "planner".into(),
                to_agent_id: "researcher".into(),
                reason: body,
                ..AgentHandoff::default()
            })),
            EventType::StateUpdate => Some(Content::StateUpdate(object(&[("state", body)]))),
            _ => None,
        };
        let session = sequence / SESSION_EVENTS;
        Event {
            event_id: format!("{}-c{}-e{sequence}", self.run, self.client),
            tenant_id: self.tenant.clone(),
            project_id: self.project.clone(),
            session_id: session_id(&self.run, self.client, session),
            trace_id: trace_id(&self.run, self.client, sequence / TRACE_EVENTS),
            span_id: format!("span-{sequence}"),
            agent_id: format!("agent-{}", position % 3),
            agent_name: "Planner".into(),
            r#type: kind as i32,
            status: EventStatus::Completed as i32,
            severity: if kind == EventType::Error {
                Severity::Error
            } else {
                Severity::Info
            } as i32,
            timestamp: Some(now()),
            tags: vec!["bench".into()],
            retry: (kind == EventType::Retry).then(|| RetryInfo {
                attempt: 2,
                strategy: "exponential".into(),
                backoff_ms: 250,
            }),
            content,
            ..Event::default()
        }
    }
}
