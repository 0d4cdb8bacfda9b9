//! STATE_UPDATE events as changes: each update's state is the "after"; the "before" is the
//! previous update of the same agent in the session (nothing for its first); the diff lists
//! every JSON Pointer (RFC 6901) whose value was added, removed or replaced.

use std::collections::HashMap;

use prost_types::value::Kind;
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Deepest nesting walked by the diff; deeper values are compared whole.
const MAX_DIFF_DEPTH: usize = 32;
/// Most entries one diff lists.
const MAX_DIFF_ENTRIES: usize = 1000;

/// One STATE_UPDATE, with what it changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StateChange {
    pub event_id: String,
    pub agent: String,
    pub time: String,
    pub before: Value,
    pub after: Value,
    pub diff: Vec<DiffEntry>,
}

/// One changed place.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiffEntry {
    /// add, remove or replace.
    pub op: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The changes of a session's updates, given in time order as (event id, agent, time, state).
pub fn state_changes(updates: Vec<(String, String, i64, Value)>) -> Vec<StateChange> {
    let mut last: HashMap<String, Value> = HashMap::new();
    updates
        .into_iter()
        .map(|(event_id, agent, time_ns, after)| {
            let before = last
                .insert(agent.clone(), after.clone())
                .unwrap_or(Value::Null);
            let mut diff = Vec::new();
            diff_values(&before, &after, &mut String::new(), 0, &mut diff);
            StateChange {
                event_id,
                agent,
                time: super::list::rfc3339(time_ns),
                before,
                after,
                diff,
            }
        })
        .collect()
}

fn diff_values(
    before: &Value,
    after: &Value,
    path: &mut String,
    depth: usize,
    out: &mut Vec<DiffEntry>,
) {
    if out.len() >= MAX_DIFF_ENTRIES || before == after {
        return;
    }
    match (before, after) {
        (Value::Object(old), Value::Object(new)) if depth < MAX_DIFF_DEPTH => {
            for (key, old_value) in old {
                let len = path.len();
                push_segment(path, key);
                match new.get(key) {
                    Some(new_value) => diff_values(old_value, new_value, path, depth + 1, out),
                    None => out.push(DiffEntry {
                        op: "remove",
                        path: path.clone(),
                        before: Some(old_value.clone()),
                        after: None,
                    }),
                }
                path.truncate(len);
            }
            for (key, new_value) in new {
                if !old.contains_key(key) && out.len() < MAX_DIFF_ENTRIES {
                    let len = path.len();
                    push_segment(path, key);
                    out.push(DiffEntry {
                        op: "add",
                        path: path.clone(),
                        before: None,
                        after: Some(new_value.clone()),
                    });
                    path.truncate(len);
                }
            }
        }
        (Value::Null, _) => out.push(DiffEntry {
            op: "add",
            path: path.clone(),
            before: None,
            after: Some(after.clone()),
        }),
        _ => out.push(DiffEntry {
            op: "replace",
            path: path.clone(),
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

/// Appends `/key` with RFC 6901's escapes (`~` as `~0`, `/` as `~1`).
fn push_segment(path: &mut String, key: &str) {
    path.push('/');
    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

/// A protobuf Struct as JSON (its canonical JSON form).
pub fn struct_to_json(value: &prost_types::Struct) -> Value {
    Value::Object(
        value
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect::<Map<String, Value>>(),
    )
}

fn value_to_json(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(value_to_json).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_update_is_diffed_against_the_same_agents_previous_one() {
        let changes = state_changes(vec![
            (
                "s1".into(),
                "a".into(),
                1,
                json!({"step": 1, "plan": {"goal": "x"}}),
            ),
            ("s2".into(), "b".into(), 2, json!({"other": true})),
            (
                "s3".into(),
                "a".into(),
                3,
                json!({"step": 2, "plan": {"goal": "x", "a/b": [1]}}),
            ),
        ]);
        assert_eq!(changes[0].before, Value::Null);
        assert_eq!(changes[0].diff[0].op, "add");
        assert_eq!(changes[2].before, json!({"step": 1, "plan": {"goal": "x"}}));
        let ops: Vec<(&str, &str)> = changes[2]
            .diff
            .iter()
            .map(|d| (d.op, d.path.as_str()))
            .collect();
        assert_eq!(ops, vec![("add", "/plan/a~1b"), ("replace", "/step")]);
    }
}
