//! Which parts of an event a policy can address, by their canonical JSON names, and the
//! walk over each message type. Identifiers the server routes, joins or proves by
//! (`event_id`, `tenant_id`, `project_id`, the audit-log fields) and numbers, enums and
//! timestamps are not addressable; identifiers a user may want pseudonymised
//! (`session_id`, `agent_id`, …) are addressable by rules but not read by detectors.

use chaukas_proto::common::v1::{
    AgentHandoff, CostDetails, DataAccess, ErrorInfo, Event, InfrastructureMetrics, LlmInvocation,
    McpCall, MessageContent, PolicyDecision, RetryInfo, ToolCall, ToolResponse, event::Content,
};

use crate::walk::{Node, Walk};

/// What sits at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Text detectors read and rules rewrite.
    Text,
    /// An identifier rules may rewrite (to pseudonymise it) but detectors leave.
    Id,
    /// A list of texts.
    Texts,
    /// A `google.protobuf.Struct`: any key, any depth below.
    Struct,
    /// A typed message.
    Message(&'static [(&'static str, Shape)]),
    /// `extensions`: opaque `Any` values, which only `drop` can handle.
    Opaque,
}

const MESSAGE: &[(&str, Shape)] = &[
    ("role", Shape::Text),
    ("text", Shape::Text),
    ("metadata", Shape::Struct),
];
const TOOL_CALL: &[(&str, Shape)] = &[
    ("id", Shape::Id),
    ("name", Shape::Text),
    ("arguments", Shape::Struct),
    ("function_name", Shape::Text),
];
const TOOL_RESPONSE: &[(&str, Shape)] = &[
    ("tool_call_id", Shape::Id),
    ("output", Shape::Struct),
    ("error_message", Shape::Text),
];
const LLM_INVOCATION: &[(&str, Shape)] = &[
    ("provider", Shape::Text),
    ("model", Shape::Text),
    ("request", Shape::Struct),
    ("response", Shape::Struct),
    ("finish_reason", Shape::Text),
];
const POLICY: &[(&str, Shape)] = &[
    ("policy_id", Shape::Id),
    ("outcome", Shape::Text),
    ("rule_ids", Shape::Texts),
    ("rationale", Shape::Text),
];
const DATA_ACCESS: &[(&str, Shape)] = &[
    ("datasource", Shape::Text),
    ("document_ids", Shape::Texts),
    ("chunk_ids", Shape::Texts),
];
const ERROR: &[(&str, Shape)] = &[
    ("error_message", Shape::Text),
    ("error_code", Shape::Text),
    ("stack_trace", Shape::Text),
    ("recovery_action", Shape::Text),
];
const AGENT_HANDOFF: &[(&str, Shape)] = &[
    ("from_agent_id", Shape::Id),
    ("from_agent_name", Shape::Text),
    ("to_agent_id", Shape::Id),
    ("to_agent_name", Shape::Text),
    ("handoff_data", Shape::Struct),
    ("reason", Shape::Text),
    ("handoff_type", Shape::Text),
];
const MCP_CALL: &[(&str, Shape)] = &[
    ("server_name", Shape::Text),
    ("server_url", Shape::Text),
    ("operation", Shape::Text),
    ("method", Shape::Text),
    ("request", Shape::Struct),
    ("response", Shape::Struct),
    ("protocol_version", Shape::Text),
];
const RETRY: &[(&str, Shape)] = &[("strategy", Shape::Text)];
const INFRASTRUCTURE: &[(&str, Shape)] = &[
    ("resource_type", Shape::Text),
    ("metrics", Shape::Struct),
    ("host", Shape::Text),
    ("thread_id", Shape::Text),
];
const COST: &[(&str, Shape)] = &[
    ("provider", Shape::Text),
    ("service", Shape::Text),
    ("currency", Shape::Text),
];

/// The event, as rules address it.
pub const EVENT: &[(&str, Shape)] = &[
    ("session_id", Shape::Id),
    ("span_id", Shape::Id),
    ("parent_span_id", Shape::Id),
    ("agent_id", Shape::Id),
    ("agent_name", Shape::Text),
    ("invocation_id", Shape::Id),
    ("response_id", Shape::Id),
    ("branch", Shape::Text),
    ("tags", Shape::Texts),
    ("trace_id", Shape::Id),
    ("message", Shape::Message(MESSAGE)),
    ("tool_call", Shape::Message(TOOL_CALL)),
    ("tool_response", Shape::Message(TOOL_RESPONSE)),
    ("llm_invocation", Shape::Message(LLM_INVOCATION)),
    ("policy", Shape::Message(POLICY)),
    ("data_access", Shape::Message(DATA_ACCESS)),
    ("state_update", Shape::Struct),
    ("error", Shape::Message(ERROR)),
    ("agent_handoff", Shape::Message(AGENT_HANDOFF)),
    ("mcp_call", Shape::Message(MCP_CALL)),
    ("retry", Shape::Message(RETRY)),
    ("infrastructure", Shape::Message(INFRASTRUCTURE)),
    ("cost", Shape::Message(COST)),
    ("metadata", Shape::Struct),
    ("extensions", Shape::Opaque),
];

/// Walks a message whose fields are all texts, identifiers, lists of texts or structs.
macro_rules! walk_fields {
    ($ty:ty { $($field:ident: $kind:ident),* $(,)? }) => {
        impl Node for $ty {
            fn walk(&mut self, cx: &mut Walk<'_>) {
                $(walk_fields!(@field cx, self, $field, $kind);)*
            }
            fn clear(&mut self) {
                *self = <$ty>::default();
            }
            fn is_empty(&self) -> bool {
                *self == <$ty>::default()
            }
        }
    };
    (@field $cx:ident, $self:ident, $field:ident, text) => {
        $cx.field(stringify!($field), &mut $self.$field, true)
    };
    (@field $cx:ident, $self:ident, $field:ident, id) => {
        $cx.field(stringify!($field), &mut $self.$field, false)
    };
}

walk_fields!(MessageContent {
    role: text,
    text: text,
    metadata: text
});
walk_fields!(ToolCall {
    id: id,
    name: text,
    arguments: text,
    function_name: text
});
walk_fields!(ToolResponse {
    tool_call_id: id,
    output: text,
    error_message: text
});
walk_fields!(LlmInvocation {
    provider: text,
    model: text,
    request: text,
    response: text,
    finish_reason: text,
});
walk_fields!(PolicyDecision {
    policy_id: id,
    outcome: text,
    rule_ids: text,
    rationale: text
});
walk_fields!(DataAccess {
    datasource: text,
    document_ids: text,
    chunk_ids: text
});
walk_fields!(ErrorInfo {
    error_message: text,
    error_code: text,
    stack_trace: text,
    recovery_action: text,
});
walk_fields!(AgentHandoff {
    from_agent_id: id,
    from_agent_name: text,
    to_agent_id: id,
    to_agent_name: text,
    handoff_data: text,
    reason: text,
    handoff_type: text,
});
walk_fields!(McpCall {
    server_name: text,
    server_url: text,
    operation: text,
    method: text,
    request: text,
    response: text,
    protocol_version: text,
});
walk_fields!(RetryInfo { strategy: text });
walk_fields!(InfrastructureMetrics {
    resource_type: text,
    metrics: text,
    host: text,
    thread_id: text,
});
walk_fields!(CostDetails {
    provider: text,
    service: text,
    currency: text
});

/// The content union: one field, named by its variant.
fn walk_content(content: &mut Option<Content>, cx: &mut Walk<'_>) {
    let mut dropped = false;
    {
        let Some(content) = content.as_mut() else {
            return;
        };
        let mut cleared = Dropped::default();
        match content {
            Content::Message(inner) => cx.field("message", &mut cleared.wrap(inner), true),
            Content::ToolCall(inner) => cx.field("tool_call", &mut cleared.wrap(inner), true),
            Content::ToolResponse(inner) => {
                cx.field("tool_response", &mut cleared.wrap(inner), true);
            }
            Content::LlmInvocation(inner) => {
                cx.field("llm_invocation", &mut cleared.wrap(inner), true);
            }
            Content::Policy(inner) => cx.field("policy", &mut cleared.wrap(inner), true),
            Content::DataAccess(inner) => cx.field("data_access", &mut cleared.wrap(inner), true),
            Content::StateUpdate(inner) => {
                cx.field("state_update", &mut cleared.wrap(inner), true);
            }
            Content::Error(inner) => cx.field("error", &mut cleared.wrap(inner), true),
            Content::AgentHandoff(inner) => {
                cx.field("agent_handoff", &mut cleared.wrap(inner), true);
            }
            Content::McpCall(inner) => cx.field("mcp_call", &mut cleared.wrap(inner), true),
        }
        dropped |= cleared.0;
    }
    if dropped {
        *content = None;
    }
}

/// Remembers that a `drop` emptied a content variant, so the union itself is unset (an
/// empty variant would still name the kind of content).
#[derive(Default)]
struct Dropped(bool);

struct Wrapped<'n, 'd, T> {
    inner: &'n mut T,
    dropped: &'d mut bool,
}

impl Dropped {
    fn wrap<'n, 'd, T>(&'d mut self, inner: &'n mut T) -> Wrapped<'n, 'd, T> {
        Wrapped {
            inner,
            dropped: &mut self.0,
        }
    }
}

impl<T: Node> Node for Wrapped<'_, '_, T> {
    fn walk(&mut self, cx: &mut Walk<'_>) {
        self.inner.walk(cx);
    }
    fn clear(&mut self) {
        self.inner.clear();
        *self.dropped = true;
    }
    fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// `extensions`: opaque, so only a `drop` rule touches them (see [`crate::Redactor`]).
struct Extensions<'e>(&'e mut Vec<prost_types::Any>);

impl Node for Extensions<'_> {
    fn walk(&mut self, _cx: &mut Walk<'_>) {}
    fn clear(&mut self) {
        self.0.clear();
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Walks every addressable part of `event`.
pub fn walk_event(event: &mut Event, cx: &mut Walk<'_>) {
    cx.field("session_id", &mut event.session_id, false);
    cx.field("span_id", &mut event.span_id, false);
    cx.field("parent_span_id", &mut event.parent_span_id, false);
    cx.field("agent_id", &mut event.agent_id, false);
    cx.field("agent_name", &mut event.agent_name, true);
    cx.field("invocation_id", &mut event.invocation_id, false);
    cx.field("response_id", &mut event.response_id, false);
    cx.field("branch", &mut event.branch, true);
    cx.field("tags", &mut event.tags, true);
    cx.field("trace_id", &mut event.trace_id, false);
    walk_content(&mut event.content, cx);
    cx.field("retry", &mut event.retry, true);
    cx.field("infrastructure", &mut event.infrastructure, true);
    cx.field("cost", &mut event.cost, true);
    cx.field("metadata", &mut event.metadata, true);
    cx.field("extensions", &mut Extensions(&mut event.extensions), false);
}

/// Pointers of every text and identifier field the schema lists (lists and structs aside).
#[cfg(test)]
pub fn text_paths() -> Vec<&'static str> {
    fn collect(prefix: String, fields: &[(&str, Shape)], out: &mut Vec<String>) {
        for (name, shape) in fields {
            let path = format!("{prefix}/{name}");
            match shape {
                Shape::Text | Shape::Id => out.push(path),
                Shape::Message(inner) => collect(path, inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    collect(String::new(), EVENT, &mut out);
    out.into_iter()
        .map(|path| &*Box::leak(path.into_boxed_str()))
        .collect()
}

/// One event per content variant with every text and identifier field set to `value`;
/// the event-level fields are set on the first only.
#[cfg(test)]
pub fn populated_events(value: &str) -> Vec<Event> {
    let v = || value.to_owned();
    let contents = [
        Content::Message(MessageContent {
            role: v(),
            text: v(),
            metadata: None,
        }),
        Content::ToolCall(ToolCall {
            id: v(),
            name: v(),
            function_name: v(),
            ..ToolCall::default()
        }),
        Content::ToolResponse(ToolResponse {
            tool_call_id: v(),
            error_message: v(),
            ..ToolResponse::default()
        }),
        Content::LlmInvocation(LlmInvocation {
            provider: v(),
            model: v(),
            finish_reason: v(),
            ..LlmInvocation::default()
        }),
        Content::Policy(PolicyDecision {
            policy_id: v(),
            outcome: v(),
            rationale: v(),
            rule_ids: vec![],
        }),
        Content::DataAccess(DataAccess {
            datasource: v(),
            ..DataAccess::default()
        }),
        Content::Error(ErrorInfo {
            error_message: v(),
            error_code: v(),
            stack_trace: v(),
            recovery_action: v(),
            recoverable: false,
        }),
        Content::AgentHandoff(AgentHandoff {
            from_agent_id: v(),
            from_agent_name: v(),
            to_agent_id: v(),
            to_agent_name: v(),
            reason: v(),
            handoff_type: v(),
            handoff_data: None,
        }),
        Content::McpCall(McpCall {
            server_name: v(),
            server_url: v(),
            operation: v(),
            method: v(),
            protocol_version: v(),
            ..McpCall::default()
        }),
    ];
    contents
        .into_iter()
        .enumerate()
        .map(|(index, content)| {
            let mut event = Event {
                content: Some(content),
                ..Event::default()
            };
            if index == 0 {
                event.session_id = v();
                event.span_id = v();
                event.parent_span_id = v();
                event.agent_id = v();
                event.agent_name = v();
                event.invocation_id = v();
                event.response_id = v();
                event.branch = v();
                event.trace_id = v();
                event.retry = Some(RetryInfo {
                    strategy: v(),
                    ..RetryInfo::default()
                });
                event.infrastructure = Some(InfrastructureMetrics {
                    resource_type: v(),
                    host: v(),
                    thread_id: v(),
                    ..InfrastructureMetrics::default()
                });
                event.cost = Some(CostDetails {
                    provider: v(),
                    service: v(),
                    currency: v(),
                    ..CostDetails::default()
                });
            }
            event
        })
        .collect()
}
