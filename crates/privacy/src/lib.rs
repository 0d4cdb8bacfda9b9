//! Tenant privacy policies (issue #15): retention terms, and the redaction the gateway
//! applies to every event before it is published, so personal data never reaches the bus,
//! the dead letters, the logs or the store in clear.
//!
//! Pure: no I/O. The policy store (NATS key-value) and the CLI live elsewhere.

mod detect;
mod hmac;
mod numbers;
mod pointer;
mod policy;
mod rules;
mod schema;
mod walk;

use std::collections::BTreeSet;

use chaukas_proto::common::v1::{Event, RedactionInfo};

pub use detect::{Detector, DetectorSet, Hit, scan};
pub use hmac::Keyed;
pub use pointer::{Pattern, PointerError};
pub use policy::{MAX_POINTER, MAX_RULES, Method, Policy, PolicyError, Redaction, Retention, Rule};
pub use walk::Change;

use rules::{CompiledRule, RuleBook};
use walk::{Buffers, Walk};

thread_local! {
    /// Each thread's walk memory, reused for every event it redacts.
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
}

/// How every entry the server adds to `redaction.fields` starts; a client's own entries may
/// not (the gateway refuses them), so the two can always be told apart.
pub const SERVER_ENTRY_PREFIX: &str = "server:";

/// A tenant secret for the `hash` method, and its public name.
#[derive(Clone)]
pub struct Salt {
    /// The name written into `redaction.salt_id`, so a verifier knows which secret.
    pub id: String,
    /// Keyed hasher for the secret.
    pub key: Keyed,
}

/// Why an event was refused instead of being stored raw (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// The event carries opaque `extensions` the policy's detectors cannot read.
    #[error(
        "extensions: the tenant's redaction policy cannot inspect opaque `Any` extensions; \
         send the event without them (or ask for a `drop` rule on /extensions)"
    )]
    Uninspectable,
    /// The policy hashes, but the tenant secret has not reached this gateway yet.
    #[error("the tenant's redaction secret is not available yet; retry shortly")]
    SecretMissing,
}

/// A policy compiled for one (tenant, project): the tenant's rules first, then the
/// project's; detectors of both, the stricter method winning.
pub struct Redactor {
    rules: RuleBook,
    detectors: DetectorSet,
    detector_methods: Vec<(Detector, Method)>,
    salt: Option<Salt>,
    hashes: bool,
}

impl Redactor {
    /// Compiles `policies` (validated) in order of precedence.
    pub fn new<'p>(policies: impl IntoIterator<Item = &'p Policy>, salt: Option<Salt>) -> Self {
        let mut rules = Vec::new();
        let mut detector_methods: Vec<(Detector, Method)> = Vec::new();
        let mut hashes = false;
        for policy in policies {
            hashes |= policy.hashes();
            for rule in &policy.redaction.rules {
                if let Ok(pattern) = Pattern::parse(&rule.path) {
                    rules.push(CompiledRule {
                        pattern,
                        method: rule.method,
                        category: rule.category().to_owned(),
                    });
                }
            }
            for (&detector, &method) in &policy.redaction.detectors {
                match detector_methods.iter_mut().find(|(d, _)| *d == detector) {
                    Some((_, current)) => *current = current.stricter(method),
                    None => detector_methods.push((detector, method)),
                }
            }
        }
        let mut detectors = DetectorSet::default();
        for (detector, _) in &detector_methods {
            detectors.insert(*detector);
        }
        Self {
            rules: RuleBook::new(rules),
            detectors,
            detector_methods,
            salt,
            hashes,
        }
    }

    /// Whether the policy changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.detectors.is_empty()
    }

    /// Redacts `event` in place and records what changed in its `redaction` and
    /// `pii_categories`; on error the event must not be published.
    pub fn apply(&self, event: &mut Event) -> Result<Vec<Change>, RedactError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        if self.hashes && self.salt.is_none() {
            return Err(RedactError::SecretMissing);
        }
        let key = self.salt.as_ref().map(|salt| &salt.key);
        let changes = BUFFERS.with_borrow_mut(|buffers| {
            let mut walk = Walk::new(
                &self.rules,
                self.detectors,
                &self.detector_methods,
                key,
                buffers,
            );
            schema::walk_event(event, &mut walk);
            walk.changes
        });
        if !event.extensions.is_empty() && !self.detectors.is_empty() {
            return Err(RedactError::Uninspectable);
        }
        if !changes.is_empty() {
            self.record(event, &changes);
        }
        Ok(changes)
    }

    /// Merges the server's changes into what the client said it redacted: the client's
    /// entries are kept as its statement, the server's are added as
    /// `server:<method>:<category>:<pointer>`.
    fn record(&self, event: &mut Event, changes: &[Change]) {
        let info = event.redaction.get_or_insert_with(RedactionInfo::default);
        let mut methods: BTreeSet<&str> = BTreeSet::new();
        if !info.method.is_empty() {
            methods.insert(info.method.as_str());
        }
        let mut fields = Vec::with_capacity(changes.len());
        let mut hashed = false;
        for change in changes {
            hashed |= change.method == Method::Hash;
            fields.push(format!(
                "{SERVER_ENTRY_PREFIX}{}:{}:{}",
                change.method.name(),
                change.category,
                change.pointer
            ));
        }
        let server_methods: BTreeSet<&str> = changes.iter().map(|c| c.method.name()).collect();
        let method = methods
            .into_iter()
            .chain(server_methods)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("+");
        info.method = method;
        info.fields.extend(fields);
        if hashed && let Some(salt) = &self.salt {
            info.salt_id = salt.id.clone();
        }
        let mut known: BTreeSet<String> = event.pii_categories.iter().cloned().collect();
        for change in changes {
            if known.insert(change.category.clone()) {
                event.pii_categories.push(change.category.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
