//! What a span is, by the first convention that says: `gen_ai.operation.name` (GenAI
//! semantic conventions), `mcp.method.name` (MCP), `openinference.span.kind`
//! (OpenInference); anything else stays in the trace as `SYSTEM` events.

use chaukas_proto::common::v1::EventType;

use crate::values::Attributes;

/// The kind of action a span records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A model call (chat, completion, embeddings).
    Model,
    /// A tool execution.
    Tool,
    /// An MCP request.
    Mcp,
    /// An agent's run (invoke or create).
    Agent,
    /// A retrieval from a data source.
    Retrieval,
    /// A guardrail's decision.
    Guardrail,
    /// Anything else.
    Other,
}

impl SpanKind {
    /// The event types of the span's start and end.
    pub fn event_types(self) -> (EventType, EventType) {
        match self {
            Self::Model => (
                EventType::ModelInvocationStart,
                EventType::ModelInvocationEnd,
            ),
            Self::Tool => (EventType::ToolCallStart, EventType::ToolCallEnd),
            Self::Mcp => (EventType::McpCallStart, EventType::McpCallEnd),
            Self::Agent => (EventType::AgentStart, EventType::AgentEnd),
            Self::Retrieval => (EventType::DataAccess, EventType::DataAccess),
            Self::Guardrail => (EventType::PolicyDecision, EventType::PolicyDecision),
            Self::Other => (EventType::System, EventType::System),
        }
    }

    /// Lower-case name, as docs/otlp.md and the stored metadata say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Tool => "tool",
            Self::Mcp => "mcp",
            Self::Agent => "agent",
            Self::Retrieval => "retrieval",
            Self::Guardrail => "guardrail",
            Self::Other => "other",
        }
    }
}

/// The kind of the span whose attributes are `attributes`.
pub fn classify(attributes: Attributes<'_>) -> SpanKind {
    if let Some(operation) = attributes.text(&["gen_ai.operation.name"]) {
        let kind = match operation.as_str() {
            "chat" | "text_completion" | "generate_content" | "embeddings" => SpanKind::Model,
            "execute_tool" => SpanKind::Tool,
            "invoke_agent" | "create_agent" => SpanKind::Agent,
            "retrieval" => SpanKind::Retrieval,
            _ => SpanKind::Other,
        };
        if kind != SpanKind::Other {
            return kind;
        }
    }
    if attributes.get("mcp.method.name").is_some() {
        return SpanKind::Mcp;
    }
    match attributes.text(&["openinference.span.kind"]).as_deref() {
        Some("LLM" | "EMBEDDING") => SpanKind::Model,
        Some("TOOL") => SpanKind::Tool,
        Some("AGENT") => SpanKind::Agent,
        Some("RETRIEVER" | "RERANKER") => SpanKind::Retrieval,
        Some("GUARDRAIL") => SpanKind::Guardrail,
        _ => SpanKind::Other,
    }
}
