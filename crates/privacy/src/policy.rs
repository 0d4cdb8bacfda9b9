//! A tenant's (or project's) policy as `chaukas policy set` takes it, and the checks that
//! keep it meaningful: every pointer must address something a policy can change, and a
//! minimum retention can only grow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use crate::pointer::{Pattern, Segment};
use crate::schema::{EVENT, Shape};

/// Most rules one policy may hold: a tenant's and a project's rules are matched together,
/// one bit each, at every node of every event.
pub const MAX_RULES: usize = 64;
/// Longest pointer accepted.
pub const MAX_POINTER: usize = 512;

/// How a value is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Replaced by `[REDACTED:<category>]`.
    Mask,
    /// Replaced by `[HMAC:<category>:<hex HMAC-SHA256 under the tenant secret>]`: equal
    /// values stay equal (joinable), and cannot be guessed back without the secret.
    Hash,
    /// Removed (a field emptied, a map entry or list element removed, a match cut out).
    Drop,
}

impl Method {
    /// The name used in files and in the event's `redaction.method`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Mask => "mask",
            Method::Hash => "hash",
            Method::Drop => "drop",
        }
    }

    /// Of two methods for one detector (a tenant's and a project's), the one that keeps
    /// less: drop, then mask, then hash.
    pub fn stricter(self, other: Method) -> Method {
        let rank = |method: Method| match method {
            Method::Drop => 2,
            Method::Mask => 1,
            Method::Hash => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// The whole policy file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// How long events are kept; absent: no retention terms (nothing enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// What is redacted before an event is published.
    #[serde(default)]
    pub redaction: Redaction,
}

/// Retention terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days every event is kept at least; nobody can delete it sooner, and the value can
    /// only be raised.
    pub min_days: u32,
    /// Days after which `chaukas retention apply` removes an event's content (its log leaf
    /// stays); absent: kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_days: Option<u32>,
    /// While on, nothing is removed, whatever its age.
    #[serde(default)]
    pub legal_hold: bool,
    /// Why the hold is on (required with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<String>,
    /// Who set the hold; filled in by `chaukas policy set` (`--by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_set_by: Option<String>,
}

/// Redaction rules and detectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redaction {
    /// Pointers and what to do there; the first rule matching a node applies.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Detectors run over every text no rule covered, each with its method.
    #[serde(default)]
    pub detectors: BTreeMap<Detector, Method>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// RFC 6901 pointer into the event's canonical JSON (proto field names); `*` matches
    /// every array element or map key.
    pub path: String,
    /// What to do there.
    pub method: Method,
    /// The category reported (`[REDACTED:<category>]`, `pii_categories`); default `pii`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl Rule {
    /// The category reported for this rule.
    pub fn category(&self) -> &str {
        self.category.as_deref().unwrap_or("pii")
    }
}

/// Why a policy was refused; the text says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file is not a policy.
    #[error("not a policy file: {0}")]
    Syntax(String),
    /// A field has a value the policy cannot take.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where, e.g. `redaction.rules[2].path`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The change would shorten what the current policy guarantees.
    #[error("refused: {0}")]
    Shortening(String),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Policy {
    /// Parses and checks a policy file.
    pub fn parse(json: &[u8]) -> Result<Self, PolicyError> {
        let policy: Policy =
            serde_json::from_slice(json).map_err(|error| PolicyError::Syntax(error.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(retention) = &self.retention {
            retention.validate()?;
        }
        let rules = &self.redaction.rules;
        if rules.len() > MAX_RULES {
            return Err(invalid(
                "redaction.rules",
                format!("{} rules; at most {MAX_RULES}", rules.len()),
            ));
        }
        for (index, rule) in rules.iter().enumerate() {
            check_rule(rule)
                .map_err(|reason| invalid(format!("redaction.rules[{index}]"), reason))?;
        }
        Ok(())
    }

    /// Whether any rule or detector hashes (the tenant then needs a secret).
    pub fn hashes(&self) -> bool {
        self.redaction
            .rules
            .iter()
            .any(|rule| rule.method == Method::Hash)
            || self
                .redaction
                .detectors
                .values()
                .any(|m| *m == Method::Hash)
    }

    /// Refuses a change from `current` that shortens the minimum retention or removes it.
    pub fn check_change(current: Option<&Policy>, next: &Policy) -> Result<(), PolicyError> {
        let Some(before) = current.and_then(|policy| policy.retention.as_ref()) else {
            return Ok(());
        };
        let Some(after) = &next.retention else {
            return Err(PolicyError::Shortening(format!(
                "the current policy keeps events at least {} days; a policy without \
                 retention would drop that guarantee",
                before.min_days
            )));
        };
        if after.min_days < before.min_days {
            return Err(PolicyError::Shortening(format!(
                "retention.min_days can only be raised: it is {} now, {} asked",
                before.min_days, after.min_days
            )));
        }
        Ok(())
    }
}

impl Retention {
    fn validate(&self) -> Result<(), PolicyError> {
        if let Some(max) = self.max_days
            && (max == 0 || max < self.min_days)
        {
            return Err(invalid(
                "retention.max_days",
                format!("must be at least min_days ({}) and above 0", self.min_days),
            ));
        }
        let reason = self.hold_reason.as_deref().unwrap_or("").trim();
        if self.legal_hold && reason.is_empty() {
            return Err(invalid(
                "retention.hold_reason",
                "a legal hold needs a reason (e.g. \"litigation 2026-114\")",
            ));
        }
        Ok(())
    }
}

fn check_rule(rule: &Rule) -> Result<(), String> {
    if rule.path.len() > MAX_POINTER {
        return Err(format!("path longer than {MAX_POINTER} bytes"));
    }
    if let Some(category) = &rule.category {
        let fine = !category.is_empty()
            && category.len() <= 64
            && category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !fine {
            return Err("category: 1 to 64 of a-z, 0-9 and _".into());
        }
    }
    let pattern = Pattern::parse(&rule.path).map_err(|error| format!("path: {error}"))?;
    let shape =
        resolve(pattern.segments()).map_err(|reason| format!("path `{}`: {reason}", rule.path))?;
    if shape == Shape::Opaque && rule.method != Method::Drop {
        return Err(format!(
            "path `{}`: extensions are opaque `Any` values; only `drop` applies to them",
            rule.path
        ));
    }
    Ok(())
}

/// What `segments` lead to, or why they lead nowhere a policy can change.
fn resolve(segments: &[Segment]) -> Result<Shape, String> {
    let mut shape = Shape::Message(EVENT);
    for (depth, segment) in segments.iter().enumerate() {
        shape = match (shape, segment) {
            (Shape::Struct, _) => return Ok(Shape::Struct),
            (Shape::Texts, Segment::Any) => Shape::Text,
            (Shape::Texts, Segment::Name(index)) if index.parse::<usize>().is_ok() => Shape::Text,
            (Shape::Message(fields), Segment::Name(name)) => fields
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, shape)| *shape)
                .ok_or_else(|| unknown_field(name, fields, depth))?,
            (Shape::Message(_), Segment::Any) => {
                return Err("`*` stands for list elements and map keys, not field names".into());
            }
            _ => return Err(format!("nothing below segment {depth}")),
        };
    }
    Ok(shape)
}

fn unknown_field(name: &str, fields: &[(&str, Shape)], depth: usize) -> String {
    let known: Vec<&str> = fields.iter().map(|(field, _)| *field).collect();
    let protected = [
        "event_id",
        "tenant_id",
        "project_id",
        "hash_prev",
        "content_hash",
        "worm_proof_id",
    ];
    if depth == 0 && protected.contains(&name) {
        return format!(
            "`{name}` is how the server routes, deduplicates or proves events; it cannot be redacted"
        );
    }
    format!(
        "no redactable field `{name}` here (numbers, enums and timestamps cannot be redacted); \
         fields: {}",
        known.join(", ")
    )
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
