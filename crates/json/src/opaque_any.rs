//! `google.protobuf.Any` values whose type this server does not know.
//!
//! Canonical JSON writes an `Any` as its payload's own JSON, which needs the payload's
//! descriptor. Events carry `extensions` of the agent vendor's types, unknown here, and an
//! audit store must neither drop them nor fail a whole query page over one. Such values travel
//! as `{"@type": "<type url>", "value": "<base64 of the payload>"}` in both directions: before
//! parsing they are wrapped in a helper message the pool knows (`OpaqueAny`), and unwrapped
//! again afterwards; rendering does the reverse.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

const ANY: &str = "google.protobuf.Any";
/// The type URL of the wrapper, as it appears in `@type`.
pub(crate) const OPAQUE_TYPE_URL: &str = "type.googleapis.com/chaukas.json.v1.OpaqueAny";

/// The helper's wire form: the original type URL and payload, carried as plain fields.
#[derive(Clone, PartialEq, prost::Message)]
struct OpaqueAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Adds `chaukas.json.v1.OpaqueAny` to `pool`.
pub(crate) fn register(pool: &mut DescriptorPool) {
    let field = |name: &str, json_name: &str, number: i32, kind: Type| FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(json_name.into()),
        number: Some(number),
        label: Some(Label::Optional.into()),
        r#type: Some(kind.into()),
        ..Default::default()
    };
    pool.add_file_descriptor_proto(FileDescriptorProto {
        name: Some("chaukas/json/v1/opaque_any.proto".into()),
        package: Some("chaukas.json.v1".into()),
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("OpaqueAny".into()),
            field: vec![
                field("type_url", "typeUrl", 1, Type::String),
                field("value", "value", 2, Type::Bytes),
            ],
            ..Default::default()
        }],
        ..Default::default()
    })
    .expect("the OpaqueAny descriptor is valid");
}

/// Whether `pool` can render the payload named by `type_url` as JSON.
pub(crate) fn resolvable(pool: &DescriptorPool, type_url: &str) -> bool {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    pool.get_message_by_name(name).is_some()
}

/// Rewrites a JSON `Any` of an unknown type into the wrapper's JSON, so the parser accepts it.
pub(crate) fn wrap_json(object: &mut serde_json::Map<String, serde_json::Value>) {
    if let Some(type_url) = object.remove("@type") {
        object.insert("typeUrl".into(), type_url);
        object.insert("@type".into(), OPAQUE_TYPE_URL.into());
    }
}

/// Puts back the original type URL and payload of every wrapped `Any` in `message`.
pub(crate) fn unwrap_all(message: &mut DynamicMessage) {
    for_each_any(message, &mut |any| {
        if type_url(any) != OPAQUE_TYPE_URL {
            return;
        }
        if let Ok(opaque) = OpaqueAny::decode(payload(any).as_slice()) {
            any.set_field_by_name("type_url", Value::String(opaque.type_url));
            any.set_field_by_name("value", Value::Bytes(opaque.value.into()));
        }
    });
}

/// Wraps every `Any` in `message` whose type `pool` does not know, so it serializes.
pub(crate) fn wrap_unresolvable(pool: &DescriptorPool, message: &mut DynamicMessage) {
    for_each_any(message, &mut |any| {
        let original = type_url(any);
        if resolvable(pool, &original) {
            return;
        }
        let wrapped = OpaqueAny {
            type_url: original,
            value: payload(any),
        };
        any.set_field_by_name("type_url", Value::String(OPAQUE_TYPE_URL.into()));
        any.set_field_by_name("value", Value::Bytes(wrapped.encode_to_vec().into()));
    });
}

/// Turns rendered wrappers back into `{"@type": original, "value": base64}`.
pub(crate) fn unwrap_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if object.get("@type").and_then(serde_json::Value::as_str) == Some(OPAQUE_TYPE_URL) {
                let original = object
                    .remove("type_url")
                    .or_else(|| object.remove("typeUrl"))
                    .unwrap_or_default();
                object.insert("@type".into(), original);
                object
                    .entry("value")
                    .or_insert_with(|| serde_json::Value::String(String::new()));
                return;
            }
            object.values_mut().for_each(unwrap_json);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_json),
        _ => {}
    }
}

fn type_url(any: &DynamicMessage) -> String {
    any.get_field_by_name("type_url")
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn payload(any: &DynamicMessage) -> Vec<u8> {
    any.get_field_by_name("value")
        .and_then(|value| value.as_bytes().map(|bytes| bytes.to_vec()))
        .unwrap_or_default()
}

fn for_each_any(message: &mut DynamicMessage, visit: &mut impl FnMut(&mut DynamicMessage)) {
    if message.descriptor().full_name() == ANY {
        visit(message);
        return;
    }
    for (_, value) in message.fields_mut() {
        for_each_any_in(value, visit);
    }
}

fn for_each_any_in(value: &mut Value, visit: &mut impl FnMut(&mut DynamicMessage)) {
    match value {
        Value::Message(message) => for_each_any(message, visit),
        Value::List(items) => items
            .iter_mut()
            .for_each(|item| for_each_any_in(item, visit)),
        Value::Map(entries) => entries
            .values_mut()
            .for_each(|entry| for_each_any_in(entry, visit)),
        _ => {}
    }
}
