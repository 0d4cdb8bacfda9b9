//! The cost of an OTLP/JSON request (see [`crate::cost`]), read with the OTLP/JSON key names.
//!
//! A small tokenizer: strings (escapes decoded only for keys, which decide shapes), the six
//! structural characters, and scalars skipped. Every object is charged as the message its
//! key names (an unknown key's objects are charged as small ones: serde skips them), every
//! string as a string. A key written with escapes is decoded first, so `"sp\u0061ns"` costs
//! what `"spans"` does. Malformed JSON is left to the decoder to refuse; what was charged up
//! to that point covers what the decoder builds before it fails.

use std::borrow::Cow;

use crate::cost::{Cost, MAX_NESTING, Shape};

/// One open object or array.
struct Frame {
    /// The object's message, or the array's element message.
    shape: Option<Shape>,
    is_array: bool,
    /// Objects: the message of the value under the latest key.
    value: Option<Shape>,
    /// Objects: the next string is a key.
    expect_key: bool,
}

/// The cost of an OTLP/JSON `ExportTraceServiceRequest`, or why it is not JSON we can read.
pub fn of_json(bytes: &[u8]) -> Result<Cost, String> {
    let mut cost = Cost::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        at += 1;
        match byte {
            b'{' | b'[' => {
                if stack.len() >= MAX_NESTING * 2 {
                    return Err(format!(
                        "JSON is nested deeper than {} levels",
                        MAX_NESTING * 2
                    ));
                }
                let shape = match stack.last() {
                    None => Some(Shape::Request),
                    Some(parent) => value_shape(parent),
                };
                if byte == b'{' {
                    cost.add(shape.unwrap_or(Shape::Other));
                }
                stack.push(Frame {
                    shape,
                    is_array: byte == b'[',
                    value: None,
                    expect_key: byte == b'{',
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.expect_key = !frame.is_array;
                }
            }
            b'"' => {
                let end = string_end(bytes, at)?;
                let text = &bytes[at..end];
                at = end + 1;
                match stack.last_mut() {
                    Some(frame) if frame.expect_key => {
                        frame.expect_key = false;
                        frame.value = frame
                            .shape
                            .and_then(|shape| shape.json_child(&key_text(text)?));
                    }
                    _ => cost.add_text(text.len()),
                }
            }
            _ => {}
        }
    }
    Ok(cost)
}

/// The message a value opened inside `parent` is.
fn value_shape(parent: &Frame) -> Option<Shape> {
    if parent.is_array {
        parent.shape
    } else {
        parent.value
    }
}

/// Index of the quote closing the string that starts at `from`.
fn string_end(bytes: &[u8], from: usize) -> Result<usize, String> {
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => return Ok(at),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    Err("body is not valid JSON: a string is not closed".into())
}

/// A key's text with its escapes decoded; `None` when it is not a valid JSON string (the
/// decoder refuses the body then).
fn key_text(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted)
        .ok()
        .map(Cow::Owned)
}
