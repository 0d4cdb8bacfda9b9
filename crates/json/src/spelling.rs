//! The OpenAPI document's spelling, translated to and from protobuf's canonical JSON.
//!
//! Both directions walk the JSON beside the message descriptor, so every message type gets
//! the same rules without a list of fields to keep in step with `proto/`:
//! * enums: a short name (`TOOL_CALL_START`, any case) gains the enum's prefix
//!   (`EVENT_TYPE_`), full names pass; rendering strips the prefix again;
//! * the `content` oneof: `{"content": {"kind": "tool_call", ...}}` becomes
//!   `{"tool_call": {...}}` and back (`policy_decision` and `error_info` are the document's
//!   names for the proto fields `policy` and `error`);
//! * timestamps without a zone (`chaukas-sdk` file mode writes naive UTC) are read as UTC;
//! * `Any` of a type this server does not know is carried opaquely (see `opaque_any`).

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor};
use serde_json::{Map, Value};

use crate::JsonError;
use crate::opaque_any;

const CONTENT: &str = "content";
const KIND: &str = "kind";
/// The OpenAPI `kind`s whose proto field has another name.
const KIND_ALIASES: &[(&str, &str)] = &[("policy_decision", "policy"), ("error_info", "error")];

/// Where the walk is, for error messages: `events[3].content.kind`.
pub(crate) struct Path(Vec<String>);

impl Path {
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    fn field(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_owned()
        } else {
            format!("{self}.{name}")
        }
    }

    fn error(&self, reason: impl Into<String>) -> JsonError {
        JsonError::Field {
            path: self.to_string(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("$");
        }
        for (index, segment) in self.0.iter().enumerate() {
            if index > 0 && !segment.starts_with('[') {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
        }
        Ok(())
    }
}

/// Rewrites `value`, JSON for a `descriptor` message in either spelling, into canonical JSON.
pub(crate) fn to_canonical(
    descriptor: &MessageDescriptor,
    value: &mut Value,
    path: &mut Path,
) -> Result<(), JsonError> {
    match descriptor.full_name() {
        "google.protobuf.Timestamp" => {
            if let Value::String(text) = value
                && is_naive(text)
            {
                text.push('Z');
            }
            return Ok(());
        }
        "google.protobuf.Any" => return any_to_canonical(value, path),
        name if name.starts_with("google.protobuf.") => return Ok(()),
        _ => {}
    }
    // Anything but an object is left for the parser, which names the type it expected.
    let Value::Object(object) = value else {
        return Ok(());
    };
    unfold_content(descriptor, object, path)?;
    for (key, child) in object.iter_mut() {
        let Some(field) = descriptor
            .get_field_by_name(key)
            .or_else(|| descriptor.get_field_by_json_name(key))
        else {
            continue;
        };
        path.0.push(key.clone());
        field_to_canonical(&field, child, path)?;
        path.0.pop();
    }
    Ok(())
}

fn field_to_canonical(
    field: &FieldDescriptor,
    value: &mut Value,
    path: &mut Path,
) -> Result<(), JsonError> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Ok(());
        };
        if let Value::Object(entries) = value {
            let value_field = entry.map_entry_value_field();
            for (key, entry_value) in entries.iter_mut() {
                path.0.push(format!("[{key:?}]"));
                single_to_canonical(&value_field.kind(), entry_value, path)?;
                path.0.pop();
            }
        }
        return Ok(());
    }
    if field.is_list() {
        if let Value::Array(items) = value {
            for (index, item) in items.iter_mut().enumerate() {
                path.0.push(format!("[{index}]"));
                single_to_canonical(&field.kind(), item, path)?;
                path.0.pop();
            }
        }
        return Ok(());
    }
    single_to_canonical(&field.kind(), value, path)
}

fn single_to_canonical(kind: &Kind, value: &mut Value, path: &mut Path) -> Result<(), JsonError> {
    match kind {
        Kind::Enum(descriptor) => enum_to_canonical(descriptor, value, path),
        Kind::Message(descriptor) => to_canonical(descriptor, value, path),
        _ => Ok(()),
    }
}

/// `"2026-11-24T10:00:00.123456"`: a date-time with no `Z` and no offset.
fn is_naive(text: &str) -> bool {
    let Some((_, time)) = text.split_once(['T', 't', ' ']) else {
        return false;
    };
    !time.ends_with(['Z', 'z']) && !time.contains(['+', '-'])
}

fn any_to_canonical(value: &mut Value, path: &Path) -> Result<(), JsonError> {
    let Value::Object(object) = value else {
        return Ok(());
    };
    let Some(type_url) = object.get("@type").and_then(Value::as_str) else {
        return Ok(());
    };
    if opaque_any::resolvable(crate::pool(), type_url) {
        return Ok(());
    }
    let payload_is_base64 = object.len() == 2 && object.get("value").is_some_and(Value::is_string);
    if !payload_is_base64 {
        return Err(path.error(format!(
            "@type {type_url:?} is not a message type this server knows; send it as \
             {{\"@type\": {type_url:?}, \"value\": \"<base64 of the encoded message>\"}}"
        )));
    }
    opaque_any::wrap_json(object);
    Ok(())
}

fn enum_prefix(descriptor: &EnumDescriptor) -> String {
    descriptor
        .values()
        .find(|value| value.number() == 0)
        .and_then(|value| value.name().strip_suffix("UNSPECIFIED").map(str::to_owned))
        .unwrap_or_default()
}

fn enum_to_canonical(
    descriptor: &EnumDescriptor,
    value: &mut Value,
    path: &Path,
) -> Result<(), JsonError> {
    let Value::String(name) = value else {
        return Ok(());
    };
    if descriptor.get_value_by_name(name).is_some() {
        return Ok(());
    }
    let prefix = enum_prefix(descriptor);
    let upper = name.to_ascii_uppercase();
    for candidate in [format!("{prefix}{upper}"), upper] {
        if descriptor.get_value_by_name(&candidate).is_some() {
            *name = candidate;
            return Ok(());
        }
    }
    let expected: Vec<String> = descriptor
        .values()
        .filter(|value| value.number() != 0)
        .map(|value| {
            let full = value.name();
            full.strip_prefix(prefix.as_str())
                .unwrap_or(full)
                .to_owned()
        })
        .collect();
    Err(path.error(format!(
        "unknown {} {name:?}; expected one of {} (or the full names, such as {prefix}{})",
        descriptor.name(),
        expected.join(", "),
        expected.first().map(String::as_str).unwrap_or_default(),
    )))
}

fn content_oneof(descriptor: &MessageDescriptor) -> Option<OneofDescriptor> {
    if descriptor.get_field_by_name(CONTENT).is_some() {
        return None;
    }
    descriptor.oneofs().find(|oneof| oneof.name() == CONTENT)
}

/// The OpenAPI `kind` of a content field.
fn kind_of(field: &FieldDescriptor) -> &str {
    KIND_ALIASES
        .iter()
        .find(|(_, proto)| *proto == field.name())
        .map_or(field.name(), |(kind, _)| kind)
}

fn unfold_content(
    descriptor: &MessageDescriptor,
    object: &mut Map<String, Value>,
    path: &mut Path,
) -> Result<(), JsonError> {
    let Some(oneof) = content_oneof(descriptor) else {
        return Ok(());
    };
    let Some(content) = object.remove(CONTENT) else {
        return Ok(());
    };
    let kinds = || {
        oneof
            .fields()
            .map(|field| kind_of(&field).to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let content_path = path.field(CONTENT);
    let Value::Object(mut fields) = content else {
        return Err(JsonError::Field {
            path: content_path,
            reason: format!(
                "expected an object with \"kind\" ({}) and that kind's fields",
                kinds()
            ),
        });
    };
    let kind = match fields.remove(KIND) {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(JsonError::Field {
                path: format!("{content_path}.{KIND}"),
                reason: format!("a string is required, one of {}", kinds()),
            });
        }
    };
    let Some(field) = oneof
        .fields()
        .find(|field| kind_of(field) == kind || field.name() == kind || field.json_name() == kind)
    else {
        return Err(JsonError::Field {
            path: format!("{content_path}.{KIND}"),
            reason: format!("unknown content kind {kind:?}; expected one of {}", kinds()),
        });
    };
    if let Some(other) = oneof
        .fields()
        .find(|other| object.contains_key(other.name()) || object.contains_key(other.json_name()))
    {
        return Err(path.error(format!(
            "both \"content\" and \"{}\" are set; an event has one content",
            other.name()
        )));
    }
    object.insert(field.name().to_owned(), Value::Object(fields));
    Ok(())
}

/// Rewrites canonical JSON (proto field names) of a `descriptor` message into the OpenAPI
/// document's spelling.
pub(crate) fn to_openapi(descriptor: &MessageDescriptor, value: &mut Value) {
    if descriptor.full_name().starts_with("google.protobuf.") {
        return;
    }
    let Value::Object(object) = value else {
        return;
    };
    for (key, child) in object.iter_mut() {
        let Some(field) = descriptor.get_field_by_name(key) else {
            continue;
        };
        let kind = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            }
        } else {
            field.kind()
        };
        match child {
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| single_to_openapi(&kind, item)),
            Value::Object(entries) if field.is_map() => entries
                .values_mut()
                .for_each(|entry| single_to_openapi(&kind, entry)),
            single => single_to_openapi(&kind, single),
        }
    }
    fold_content(descriptor, object);
}

fn single_to_openapi(kind: &Kind, value: &mut Value) {
    match kind {
        Kind::Enum(descriptor) => {
            if let Value::String(name) = value {
                let prefix = enum_prefix(descriptor);
                if let Some(short) = name.strip_prefix(prefix.as_str()) {
                    *name = short.to_owned();
                }
            }
        }
        Kind::Message(descriptor) => to_openapi(descriptor, value),
        _ => {}
    }
}

/// `{"tool_call": {...}}` becomes `{"content": {"kind": "tool_call", ...}}`. `state_update`
/// (a free-form Struct the document gives no `kind`) stays under its proto name.
fn fold_content(descriptor: &MessageDescriptor, object: &mut Map<String, Value>) {
    let Some(oneof) = content_oneof(descriptor) else {
        return;
    };
    for field in oneof.fields() {
        if field.name() == "state_update" {
            continue;
        }
        if let Some(Value::Object(fields)) = object.remove(field.name()) {
            let mut content = Map::new();
            content.insert(KIND.into(), Value::String(kind_of(&field).to_owned()));
            content.extend(fields);
            object.insert(CONTENT.into(), Value::Object(content));
            return;
        }
    }
}
