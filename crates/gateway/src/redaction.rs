//! Server-side redaction before publishing (issue #15): each event is rewritten under its
//! tenant's (and project's) policy, so plaintext the policy covers never reaches JetStream,
//! the dead letters, the logs or ClickHouse. It fails closed: until the policies are
//! loaded nothing is accepted, and an event the policy cannot be applied to is refused.

use std::sync::OnceLock;

use chaukas_policies::PolicyStore;
use chaukas_privacy::RedactError;
use chaukas_proto::common::v1::Event;
use prost::Message;

use crate::ingest::IngestError;
use crate::validate::Rejection;

/// The policies every ingestion path applies.
#[derive(Default)]
pub struct RedactionGate {
    /// Set once the policy bucket is loaded (NATS may be unreachable at startup).
    store: OnceLock<PolicyStore>,
}

/// Why one event was not redacted.
pub enum Refused {
    /// This event only: the policy cannot be applied to it.
    Event(Rejection),
    /// The whole request: retry later.
    Request(IngestError),
}

impl RedactionGate {
    /// Installs the loaded, watched policy store.
    pub fn load(&self, store: PolicyStore) {
        let _ = self.store.set(store);
    }

    /// Whether the policies are loaded (part of readiness).
    pub fn loaded(&self) -> bool {
        self.store.get().is_some()
    }

    /// Redacts `event` under its tenant's and project's policy; the event must have passed
    /// validation (its tenant is the one its key allows). A redacted event is checked
    /// against `max_event_bytes` again: a hash is longer than a short value it replaces.
    pub fn apply(&self, event: &mut Event, max_event_bytes: usize) -> Result<(), Refused> {
        let Some(store) = self.store.get() else {
            return Err(Refused::Request(IngestError::Unavailable {
                reason: "privacy policies are not loaded yet (waiting for NATS)".into(),
            }));
        };
        let Some(redactor) = store.redactor(&event.tenant_id, &event.project_id) else {
            return Ok(());
        };
        match redactor.apply(event) {
            Ok(changes) if changes.is_empty() => Ok(()),
            Ok(_) => {
                let size = event.encoded_len();
                if size > max_event_bytes {
                    return Err(Refused::Event(Rejection::redaction(
                        "event",
                        format!(
                            "is {size} bytes once redacted under the tenant's policy; at most \
                             {max_event_bytes} are accepted (send less text to hash)"
                        ),
                    )));
                }
                Ok(())
            }
            Err(error @ RedactError::Uninspectable) => Err(Refused::Event(Rejection::redaction(
                "event.extensions",
                error.to_string(),
            ))),
            Err(error @ RedactError::SecretMissing) => {
                Err(Refused::Request(IngestError::Unavailable {
                    reason: error.to_string(),
                }))
            }
        }
    }
}
