//! Server-side redaction before publishing (issue #15): each event is rewritten under its
//! tenant's (and project's) policy, so plaintext the policy covers never reaches JetStream,
//! the dead letters, the logs or ClickHouse. It fails closed: until the policies are
//! loaded nothing is accepted, and an event the policy cannot be applied to is refused.

use std::sync::{Arc, OnceLock};

use chaukas_policies::PolicyStore;
use chaukas_privacy::{RedactError, Redactor};
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

/// The policy of the last (tenant, project) a request's events were redacted under: a
/// batch's events nearly always share both, so the policy table (a lock and two map
/// lookups) is read once per batch instead of once per event. A request is redacted under
/// the policies as they were when it reached that tenant.
#[derive(Default)]
pub struct PolicyMemo {
    last: Option<(String, String, Option<Arc<Redactor>>)>,
}

impl PolicyMemo {
    fn redactor(&mut self, store: &PolicyStore, event: &Event) -> Option<Arc<Redactor>> {
        if let Some((tenant, project, redactor)) = &self.last
            && *tenant == event.tenant_id
            && *project == event.project_id
        {
            return redactor.clone();
        }
        let redactor = store.redactor(&event.tenant_id, &event.project_id);
        self.last = Some((
            event.tenant_id.clone(),
            event.project_id.clone(),
            redactor.clone(),
        ));
        redactor
    }
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
    pub fn apply(
        &self,
        event: &mut Event,
        max_event_bytes: usize,
        memo: &mut PolicyMemo,
    ) -> Result<(), Refused> {
        let Some(store) = self.store.get() else {
            return Err(Refused::Request(IngestError::Unavailable {
                reason: "privacy policies are not loaded yet (waiting for NATS)".into(),
            }));
        };
        let Some(redactor) = memo.redactor(store, event) else {
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
