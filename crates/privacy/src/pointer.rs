//! RFC 6901 JSON Pointers into an event's canonical protobuf JSON form (proto field names),
//! extended with a `*` segment that stands for every array element or map key.

use std::fmt;

/// One segment of a pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A field name, map key or array index, unescaped.
    Name(String),
    /// `*`: any one array element or map key.
    Any,
}

/// A parsed pointer pattern, e.g. `/llm_invocation/request/messages/*/content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

/// Why a pointer could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    /// RFC 6901 pointers start with `/` (the empty pointer, the whole event, is refused).
    #[error("`{0}` must start with `/` (e.g. `/message/text`)")]
    NoLeadingSlash(String),
    /// `~` must be followed by `0` (for `~`) or `1` (for `/`).
    #[error("`{0}` has a `~` not followed by 0 or 1 (write `~0` for `~` and `~1` for `/`)")]
    BadEscape(String),
}

impl Pattern {
    /// Parses `text`; `*` as a whole segment is the wildcard (`~2A` is not special: to
    /// address a key literally named `*`, no escape exists, as in RFC 6901 there is none).
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| PointerError::NoLeadingSlash(text.to_owned()))?;
        let segments = rest
            .split('/')
            .map(|raw| {
                if raw == "*" {
                    Ok(Segment::Any)
                } else {
                    unescape(raw)
                        .map(Segment::Name)
                        .ok_or_else(|| PointerError::BadEscape(text.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether the pattern has no segment (never: parsing refuses the empty pointer).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether segment `depth` of the pattern admits `step` (`*` admits anything).
    pub fn admits(&self, depth: usize, step: &str) -> bool {
        match self.segments.get(depth) {
            Some(Segment::Any) => true,
            Some(Segment::Name(name)) => name == step,
            None => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Writes a concrete path as an RFC 6901 pointer (escaping `~` and `/`).
pub fn render<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::new();
    for step in path {
        out.push('/');
        for c in step.as_ref().chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escapes_and_wildcards() {
        let pattern = Pattern::parse("/metadata/a~1b/*/c~0d").unwrap();
        assert_eq!(
            pattern.segments(),
            &[
                Segment::Name("metadata".into()),
                Segment::Name("a/b".into()),
                Segment::Any,
                Segment::Name("c~d".into()),
            ]
        );
        let path = ["metadata", "a/b", "7", "c~d"];
        assert!(
            path.iter()
                .enumerate()
                .all(|(depth, step)| pattern.admits(depth, step))
        );
        assert_eq!(pattern.len(), path.len());
        assert!(!pattern.admits(1, "a~1b"), "segments compare unescaped");
        assert!(!pattern.admits(4, "deeper"));
        assert_eq!(render(&["a/b", "c~d"]), "/a~1b/c~0d");
    }

    #[test]
    fn refuses_what_rfc_6901_refuses() {
        assert!(matches!(
            Pattern::parse("message/text"),
            Err(PointerError::NoLeadingSlash(_))
        ));
        assert!(matches!(
            Pattern::parse("/a~2"),
            Err(PointerError::BadEscape(_))
        ));
    }
}
