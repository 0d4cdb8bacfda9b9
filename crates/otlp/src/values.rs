//! OTLP attribute values as `google.protobuf.Value`s, and typed lookups by key.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// Nesting kept as structure; anything deeper is kept as its debug text, so a hostile
/// export cannot make the mapping recurse without end.
const MAX_DEPTH: usize = 32;

/// `value` as a protobuf `Value`. Bytes become base64-free lowercase hex (JSON has no bytes),
/// integers beyond 2^53 become strings so that no digit is lost in a double.
pub fn to_value(value: &AnyValue) -> Value {
    convert(value, 0)
}

fn convert(value: &AnyValue, depth: usize) -> Value {
    let kind = match &value.value {
        None => Kind::NullValue(0),
        Some(any_value::Value::StringValue(text)) => Kind::StringValue(text.clone()),
        Some(any_value::Value::BoolValue(flag)) => Kind::BoolValue(*flag),
        Some(any_value::Value::IntValue(number)) => int_kind(*number),
        Some(any_value::Value::DoubleValue(number)) => Kind::NumberValue(*number),
        Some(any_value::Value::BytesValue(bytes)) => Kind::StringValue(crate::hex(bytes)),
        // Only profiles have a string table; in a trace the index means nothing, keep it.
        Some(any_value::Value::StringValueStrindex(index)) => {
            Kind::StringValue(format!("string_table[{index}]"))
        }
        Some(_) if depth >= MAX_DEPTH => Kind::StringValue(format!("{value:?}")),
        Some(any_value::Value::ArrayValue(array)) => Kind::ListValue(ListValue {
            values: array.values.iter().map(|v| convert(v, depth + 1)).collect(),
        }),
        Some(any_value::Value::KvlistValue(list)) => {
            Kind::StructValue(to_struct_at(&list.values, depth + 1))
        }
    };
    Value { kind: Some(kind) }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "only integers a double holds exactly"
)]
fn int_kind(number: i64) -> Kind {
    const EXACT: i64 = 1 << 53;
    if (-EXACT..=EXACT).contains(&number) {
        Kind::NumberValue(number as f64)
    } else {
        Kind::StringValue(number.to_string())
    }
}

/// Attributes as a `Struct`, keyed by attribute name (a repeated key keeps the last value,
/// as the OpenTelemetry SDKs do).
pub fn to_struct(attributes: &[KeyValue]) -> Struct {
    to_struct_at(attributes, 0)
}

fn to_struct_at(attributes: &[KeyValue], depth: usize) -> Struct {
    Struct {
        fields: attributes
            .iter()
            .map(|pair| {
                let value = pair.value.as_ref().map_or(
                    Value {
                        kind: Some(Kind::NullValue(0)),
                    },
                    |v| convert(v, depth),
                );
                (pair.key.clone(), value)
            })
            .collect(),
    }
}

/// Typed reads of one attribute list.
#[derive(Clone, Copy)]
pub struct Attributes<'a>(pub &'a [KeyValue]);

impl<'a> Attributes<'a> {
    /// The value of `key` (the last one, if repeated).
    pub fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.0
            .iter()
            .rev()
            .find(|pair| pair.key == key)
            .and_then(|pair| pair.value.as_ref())
    }

    /// The first of `keys` present, as text (numbers and booleans written out).
    pub fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|key| match &self.get(key)?.value {
            Some(any_value::Value::StringValue(text)) => Some(text.clone()),
            Some(any_value::Value::IntValue(number)) => Some(number.to_string()),
            Some(any_value::Value::DoubleValue(number)) => Some(number.to_string()),
            Some(any_value::Value::BoolValue(flag)) => Some(flag.to_string()),
            _ => None,
        })
    }

    /// The first of `keys` present as an integer (or as text holding one).
    pub fn int(&self, keys: &[&str]) -> Option<i64> {
        keys.iter().find_map(|key| match &self.get(key)?.value {
            Some(any_value::Value::IntValue(number)) => Some(*number),
            Some(any_value::Value::StringValue(text)) => text.trim().parse().ok(),
            _ => None,
        })
    }

    /// The first of `keys` present as a number.
    pub fn number(&self, keys: &[&str]) -> Option<f64> {
        keys.iter().find_map(|key| match &self.get(key)?.value {
            Some(any_value::Value::DoubleValue(number)) => Some(*number),
            #[allow(clippy::cast_precision_loss, reason = "model parameters, small")]
            Some(any_value::Value::IntValue(number)) => Some(*number as f64),
            Some(any_value::Value::StringValue(text)) => text.trim().parse().ok(),
            _ => None,
        })
    }

    /// The first of `keys` present, as a protobuf `Value`; text holding JSON is parsed (the
    /// GenAI conventions put structured content in JSON strings).
    pub fn structured(&self, keys: &[&str]) -> Option<Value> {
        keys.iter().find_map(|key| {
            let value = self.get(key)?;
            Some(match &value.value {
                Some(any_value::Value::StringValue(text)) => {
                    parse_json(text).unwrap_or_else(|| Value {
                        kind: Some(Kind::StringValue(text.clone())),
                    })
                }
                _ => to_value(value),
            })
        })
    }

    /// Attributes `<prefix>.<n>.<field>` (n = 0, 1, … up to the first missing one) as a list
    /// of objects of their fields: the flattened message lists of the older conventions
    /// (`gen_ai.prompt.0.role`, OpenInference's `llm.input_messages.0.message.content`). One
    /// pass over the attributes, however many there are.
    pub fn indexed(&self, prefix: &str) -> Vec<Value> {
        let mut by_index: std::collections::BTreeMap<usize, Vec<KeyValue>> =
            std::collections::BTreeMap::new();
        for pair in self.0 {
            let Some(rest) = pair
                .key
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
            else {
                continue;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            by_index.entry(index).or_default().push(KeyValue {
                key: field.to_owned(),
                ..pair.clone()
            });
        }
        by_index
            .into_iter()
            .enumerate()
            .take_while(|(position, (index, _))| position == index)
            .map(|(_, (_, fields))| Value {
                kind: Some(Kind::StructValue(to_struct(&fields))),
            })
            .collect()
    }
}

/// `text` as JSON turned into a protobuf `Value`, when it is a JSON object or array.
pub fn parse_json(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .map(|json| from_json(&json, 0))
}

fn from_json(json: &serde_json::Value, depth: usize) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(int) => int_kind(int),
            None => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(text) => Kind::StringValue(text.clone()),
        _ if depth >= MAX_DEPTH => Kind::StringValue(json.to_string()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items
                .iter()
                .map(|item| from_json(item, depth + 1))
                .collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(key, value)| (key.clone(), from_json(value, depth + 1)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}
