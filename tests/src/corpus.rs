//! Events as real agents send them: every type, every content variant, every optional
//! block, nested Struct values and non-ASCII text.

use std::collections::BTreeMap;

use chaukas_proto::common::v1::{
    AgentHandoff, Author, CostDetails, DataAccess, ErrorInfo, Event, EventStatus, EventType,
    InfrastructureMetrics, LlmInvocation, McpCall, MessageContent, PerformanceMetrics,
    PolicyDecision, RedactionInfo, RetryInfo, Severity, ToolCall, ToolResponse, event::Content,
};
use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};

/// Every `EventType` except UNSPECIFIED.
pub const EVENT_TYPES: [EventType; 19] = [
    EventType::SessionStart,
    EventType::SessionEnd,
    EventType::AgentStart,
    EventType::AgentEnd,
    EventType::AgentHandoff,
    EventType::ModelInvocationStart,
    EventType::ModelInvocationEnd,
    EventType::ToolCallStart,
    EventType::ToolCallEnd,
    EventType::McpCallStart,
    EventType::McpCallEnd,
    EventType::InputReceived,
    EventType::OutputEmitted,
    EventType::Error,
    EventType::Retry,
    EventType::PolicyDecision,
    EventType::DataAccess,
    EventType::StateUpdate,
    EventType::System,
];

fn string(text: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(text.into())),
    }
}

/// A Struct with strings, numbers, booleans, null, a list and a nested struct.
pub fn nested_struct(label: &str) -> Struct {
    let inner = Struct {
        fields: BTreeMap::from([
            (
                "depth".to_owned(),
                Value {
                    kind: Some(Kind::NumberValue(2.5)),
                },
            ),
            ("emoji".to_owned(), string("🤖 agent — ünïcödé")),
        ]),
    };
    Struct {
        fields: BTreeMap::from([
            ("label".to_owned(), string(label)),
            (
                "count".to_owned(),
                Value {
                    kind: Some(Kind::NumberValue(42.0)),
                },
            ),
            (
                "ok".to_owned(),
                Value {
                    kind: Some(Kind::BoolValue(true)),
                },
            ),
            (
                "nothing".to_owned(),
                Value {
                    kind: Some(Kind::NullValue(0)),
                },
            ),
            (
                "list".to_owned(),
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![
                            string("a"),
                            Value {
                                kind: Some(Kind::NumberValue(-1.0)),
                            },
                        ],
                    })),
                },
            ),
            (
                "inner".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            ),
        ]),
    }
}

fn content_for(kind: EventType) -> Option<Content> {
    use EventType as T;
    Some(match kind {
        T::SessionStart | T::InputReceived | T::OutputEmitted => Content::Message(MessageContent {
            role: "user".into(),
            text: "Résumé des ventes — 北京 📈".into(),
            metadata: Some(nested_struct("message")),
        }),
        T::AgentHandoff => Content::AgentHandoff(AgentHandoff {
            from_agent_id: "a1".into(),
            from_agent_name: "Planner".into(),
            to_agent_id: "a2".into(),
            to_agent_name: "Researcher".into(),
            handoff_data: Some(nested_struct("handoff")),
            reason: "needs research".into(),
            handoff_type: "delegate".into(),
        }),
        T::ModelInvocationStart | T::ModelInvocationEnd => Content::LlmInvocation(LlmInvocation {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            request: Some(nested_struct("request")),
            response: Some(nested_struct("response")),
            prompt_tokens: 120,
            completion_tokens: 80,
            total_tokens: 200,
            temperature: 0.2,
            max_tokens: 512,
            top_p: 0.9,
            frequency_penalty: 0.1,
            presence_penalty: -0.1,
            start_time: Some(Timestamp {
                seconds: 1_764_000_000,
                nanos: 1,
            }),
            end_time: Some(Timestamp {
                seconds: 1_764_000_001,
                nanos: 999_999_999,
            }),
            duration_ms: 1999.5,
            finish_reason: "stop".into(),
        }),
        T::ToolCallStart => Content::ToolCall(ToolCall {
            id: "call-1".into(),
            name: "web_search".into(),
            arguments: Some(nested_struct("arguments")),
            auth_required: true,
            function_name: "search".into(),
        }),
        T::ToolCallEnd => Content::ToolResponse(ToolResponse {
            tool_call_id: "call-1".into(),
            output: Some(nested_struct("output")),
            error_message: String::new(),
            execution_time_ms: 12.5,
            http_status: 200,
        }),
        T::McpCallStart | T::McpCallEnd => Content::McpCall(McpCall {
            server_name: "files".into(),
            server_url: "stdio://files".into(),
            operation: "tools/call".into(),
            method: "read_file".into(),
            request: Some(nested_struct("mcp request")),
            response: Some(nested_struct("mcp response")),
            protocol_version: "2025-06-18".into(),
            execution_time_ms: 3.25,
        }),
        T::Error | T::Retry => Content::Error(ErrorInfo {
            error_message: "Rate limit exceeded: 'quota' \\ \"burst\"".into(),
            error_code: "429".into(),
            stack_trace: "at main()\n at run()".into(),
            recoverable: true,
            recovery_action: "backoff".into(),
        }),
        T::PolicyDecision => Content::Policy(PolicyDecision {
            policy_id: "pii-guard".into(),
            outcome: "deny".into(),
            rule_ids: vec!["r1".into(), "r2".into()],
            rationale: "contains an e-mail address".into(),
        }),
        T::DataAccess => Content::DataAccess(DataAccess {
            datasource: "crm".into(),
            document_ids: vec!["d1".into(), "d2".into()],
            chunk_ids: vec!["c1".into()],
            pii_categories: vec!["email".into()],
        }),
        T::StateUpdate => Content::StateUpdate(nested_struct("state")),
        T::SessionEnd | T::AgentStart | T::AgentEnd | T::System => return None,
        T::Unspecified => unreachable!("not a valid event type"),
    })
}

/// One event of each type for `tenant`, each with a content variant where the type has
/// one, and every optional block filled on alternate events.
pub fn every_kind_of_event(tenant: &str) -> Vec<Event> {
    EVENT_TYPES
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            let full = index % 2 == 0;
            let seconds = 1_764_000_000 + i64::try_from(index).unwrap();
            Event {
                event_id: format!("{tenant}-event-{index:02}"),
                tenant_id: tenant.into(),
                project_id: "project-ü".into(),
                session_id: "session-1".into(),
                span_id: format!("span-{index}"),
                parent_span_id: "span-root".into(),
                r#type: *kind as i32,
                severity: Severity::Info as i32,
                status: EventStatus::Completed as i32,
                author: Author::Agent as i32,
                timestamp: Some(Timestamp {
                    seconds,
                    nanos: 123_456_789,
                }),
                agent_id: "agent-1".into(),
                agent_name: "Résumé agent 🤖".into(),
                invocation_id: "inv-1".into(),
                response_id: "resp-1".into(),
                is_partial: full,
                is_final: !full,
                // The server fills these (docs/audit.md); a client must send them empty.
                hash_prev: String::new(),
                content_hash: String::new(),
                worm_proof_id: String::new(),
                branch: "main".into(),
                tags: vec!["prod".into(), "λ".into()],
                trace_id: "trace-1".into(),
                content: content_for(*kind),
                retry: full.then(|| RetryInfo {
                    attempt: 2,
                    strategy: "exponential".into(),
                    backoff_ms: 250,
                }),
                redaction: full.then(|| RedactionInfo {
                    fields: vec!["$.message.text".into()],
                    method: "mask".into(),
                    salt_id: "salt-1".into(),
                }),
                pii_categories: if full {
                    vec!["email".into(), "phone".into()]
                } else {
                    vec![]
                },
                performance: full.then_some(PerformanceMetrics {
                    cpu_percent: 12.5,
                    memory_mb: 256.0,
                    duration_ms: 10.0,
                    throughput: 3.5,
                    latency_ms: 1.25,
                }),
                infrastructure: full.then(|| InfrastructureMetrics {
                    resource_type: "pod".into(),
                    metrics: Some(nested_struct("infra")),
                    host: "node-1".into(),
                    process_id: 4242,
                    thread_id: "t-1".into(),
                }),
                cost: full.then(|| CostDetails {
                    provider: "openai".into(),
                    service: "chat".into(),
                    input_tokens: 100,
                    output_tokens: 50,
                    total_tokens: 150,
                    input_cost: 0.001,
                    output_cost: 0.002,
                    total_cost: 0.003,
                    currency: "USD".into(),
                    input_rate_per_token: 0.000_01,
                    output_rate_per_token: 0.000_04,
                }),
                metadata: full.then(|| nested_struct("metadata")),
                extensions: if full {
                    vec![prost_types::Any {
                        type_url: "type.googleapis.com/example.Extension".into(),
                        value: vec![0, 1, 2, 255],
                    }]
                } else {
                    vec![]
                },
            }
        })
        .collect()
}

/// A small valid event.
pub fn simple_event(tenant: &str, event_id: &str) -> Event {
    Event {
        event_id: event_id.into(),
        tenant_id: tenant.into(),
        project_id: "p".into(),
        session_id: "s".into(),
        r#type: EventType::ToolCallStart as i32,
        timestamp: Some(Timestamp {
            seconds: 1_764_000_000,
            nanos: 0,
        }),
        ..Event::default()
    }
}
