//! The text `text_query` searches: the human-readable parts of an event, lower-cased once at
//! insert so a query is a plain substring search.

use chaukas_proto::common::v1::{Event, event::Content};
use prost_types::{Struct, Value, value::Kind};

/// Longest search text kept per event; the full event is always in `payload`.
pub const MAX_SEARCH_TEXT_BYTES: usize = 64 * 1024;

/// Lower-cased text of the event's message, tool and function names and arguments, tool
/// output, errors, policy rationale, agent names, MCP operation and payloads, joined by
/// newlines and cut at [`MAX_SEARCH_TEXT_BYTES`].
pub fn search_text(event: &Event) -> String {
    let mut text = Text::default();
    text.push(&event.agent_name);
    match &event.content {
        Some(Content::Message(message)) => {
            text.push(&message.text);
            text.push_struct(message.metadata.as_ref());
        }
        Some(Content::ToolCall(call)) => {
            text.push(&call.name);
            text.push(&call.function_name);
            text.push_struct(call.arguments.as_ref());
        }
        Some(Content::ToolResponse(response)) => {
            text.push_struct(response.output.as_ref());
            text.push(&response.error_message);
        }
        Some(Content::LlmInvocation(llm)) => {
            text.push(&llm.provider);
            text.push(&llm.model);
            text.push_struct(llm.request.as_ref());
            text.push_struct(llm.response.as_ref());
            text.push(&llm.finish_reason);
        }
        Some(Content::Policy(policy)) => {
            text.push(&policy.policy_id);
            text.push(&policy.outcome);
            text.push(&policy.rationale);
            for rule in &policy.rule_ids {
                text.push(rule);
            }
        }
        Some(Content::DataAccess(access)) => {
            text.push(&access.datasource);
        }
        Some(Content::StateUpdate(state)) => text.push_struct(Some(state)),
        Some(Content::Error(error)) => {
            text.push(&error.error_message);
            text.push(&error.error_code);
            text.push(&error.recovery_action);
        }
        Some(Content::AgentHandoff(handoff)) => {
            text.push(&handoff.from_agent_name);
            text.push(&handoff.to_agent_name);
            text.push(&handoff.reason);
            text.push_struct(handoff.handoff_data.as_ref());
        }
        Some(Content::McpCall(mcp)) => {
            text.push(&mcp.server_name);
            text.push(&mcp.operation);
            text.push(&mcp.method);
            text.push_struct(mcp.request.as_ref());
            text.push_struct(mcp.response.as_ref());
        }
        None => {}
    }
    text.finish()
}

#[derive(Default)]
struct Text {
    buffer: String,
}

impl Text {
    fn push(&mut self, part: &str) {
        if part.is_empty() || self.buffer.len() >= MAX_SEARCH_TEXT_BYTES {
            return;
        }
        if !self.buffer.is_empty() {
            self.buffer.push('\n');
        }
        self.buffer.push_str(part);
    }

    fn push_struct(&mut self, value: Option<&Struct>) {
        if let Some(value) = value {
            for (key, field) in &value.fields {
                self.push(key);
                self.push_value(field);
            }
        }
    }

    fn push_value(&mut self, value: &Value) {
        match &value.kind {
            Some(Kind::StringValue(text)) => self.push(text),
            Some(Kind::NumberValue(number)) => self.push(&number.to_string()),
            Some(Kind::BoolValue(flag)) => self.push(if *flag { "true" } else { "false" }),
            Some(Kind::StructValue(inner)) => self.push_struct(Some(inner)),
            Some(Kind::ListValue(list)) => {
                for item in &list.values {
                    self.push_value(item);
                }
            }
            Some(Kind::NullValue(_)) | None => {}
        }
    }

    fn finish(self) -> String {
        let mut text = self.buffer.to_lowercase();
        if text.len() > MAX_SEARCH_TEXT_BYTES {
            let mut cut = MAX_SEARCH_TEXT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaukas_proto::common::v1::{ToolCall, event::Content};
    use std::collections::BTreeMap;

    #[test]
    fn collects_names_arguments_and_lowercases() {
        let arguments = Struct {
            fields: BTreeMap::from([(
                "Query".to_owned(),
                Value {
                    kind: Some(Kind::StringValue("Weather in ZÜRICH".into())),
                },
            )]),
        };
        let event = Event {
            agent_name: "Planner".into(),
            content: Some(Content::ToolCall(ToolCall {
                name: "Search".into(),
                function_name: "web_search".into(),
                arguments: Some(arguments),
                ..ToolCall::default()
            })),
            ..Event::default()
        };
        assert_eq!(
            search_text(&event),
            "planner\nsearch\nweb_search\nquery\nweather in zürich"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let event = Event {
            agent_name: "é".repeat(MAX_SEARCH_TEXT_BYTES),
            ..Event::default()
        };
        let text = search_text(&event);
        assert!(text.len() <= MAX_SEARCH_TEXT_BYTES);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
