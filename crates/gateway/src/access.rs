//! Who may do what: API keys checked on every ingest and read, events and filters confined to
//! the key's tenant (and project).
//!
//! One guard serves gRPC and HTTP alike, so both answer the same way: no, unknown, revoked or
//! expired key -> UNAUTHENTICATED / 401; a key without the scope -> PERMISSION_DENIED / 403; an
//! event or filter naming another tenant or project -> rejected / PERMISSION_DENIED. Failures
//! are counted by reason and logged with the key id (never the secret), at most a few lines a
//! second however many bad requests arrive.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chaukas_auth::{AuthError, KeyStore, Principal, Scope, TOKEN_PREFIX};
use chaukas_proto::common::v1::Event;

use crate::ingest::IngestError;
use crate::metrics::GatewayMetrics;
use crate::validate::Rejection;

/// Log lines about refused credentials per window, and the window.
const LOG_BURST: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(1);

/// The `Authorization` value of a request (`Bearer <key>`): the HTTP header chaukas-sdk
/// sends, and the gRPC metadata entry of the same name, read the same way for both.
pub(crate) fn authorization(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// What a request may touch.
#[derive(Debug, Clone)]
pub enum Access {
    /// A valid key: its tenant (and project) only.
    Key(Principal),
    /// No key, and the gateway runs with `gateway.allow_unauthenticated` (local development).
    Anyone,
}

/// Checks credentials; shared by every handler.
pub struct Guard {
    /// Set once the key bucket is loaded (NATS may be unreachable at startup).
    keys: OnceLock<KeyStore>,
    allow_unauthenticated: bool,
    metrics: Arc<GatewayMetrics>,
    log: Mutex<LogBudget>,
}

struct LogBudget {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl Guard {
    /// A guard without keys yet (see [`Guard::load`]). With `allow_unauthenticated`, requests
    /// without a Chaukas key pass, including those carrying a placeholder such as
    /// `Bearer dev` (chaukas-sdk insists on some key); a real `chk_` key is still checked, so
    /// the development key behaves as it will in production.
    pub fn new(allow_unauthenticated: bool, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            keys: OnceLock::new(),
            allow_unauthenticated,
            metrics,
            log: Mutex::new(LogBudget {
                window_start: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Installs the loaded, watched key store.
    pub fn load(&self, keys: KeyStore) {
        let _ = self.keys.set(keys);
    }

    /// Whether the key store is loaded (part of readiness).
    pub fn loaded(&self) -> bool {
        self.keys.get().is_some()
    }

    /// Whether keys and scopes are enforced for every caller (what `rbac` advertises).
    pub fn enforced(&self) -> bool {
        !self.allow_unauthenticated
    }

    /// Checks the `Authorization` value for `scope`.
    pub fn check(&self, authorization: Option<&str>, scope: Scope) -> Result<Access, IngestError> {
        // Any spelling of the prefix is a key attempt, checked (and refused if malformed):
        // `CHK_...` must not slip through as "no key" in development mode.
        let chaukas_key =
            authorization.is_some_and(|value| value.to_ascii_lowercase().contains(TOKEN_PREFIX));
        if !chaukas_key && self.allow_unauthenticated {
            return Ok(Access::Anyone);
        }
        let Some(keys) = self.keys.get() else {
            return Err(IngestError::Unavailable {
                reason: "API keys are not loaded yet (waiting for NATS)".into(),
            });
        };
        match keys.authenticate(authorization, scope) {
            Ok(principal) => Ok(Access::Key(principal)),
            Err(error) => {
                self.refused(&error, scope);
                Err(error.into())
            }
        }
    }

    fn refused(&self, error: &AuthError, scope: Scope) {
        self.metrics
            .auth_failures
            .get_or_create(&[("reason", error.reason())])
            .inc();
        let mut budget = self.log.lock().expect("log budget lock");
        if budget.window_start.elapsed() >= LOG_WINDOW {
            budget.window_start = Instant::now();
            budget.logged = 0;
        }
        if budget.logged >= LOG_BURST {
            budget.suppressed += 1;
            return;
        }
        budget.logged += 1;
        let suppressed = std::mem::take(&mut budget.suppressed);
        tracing::warn!(
            reason = error.reason(),
            key_id = error.key_id().unwrap_or("-"),
            %scope,
            suppressed_since_last = suppressed,
            "request refused: {error}"
        );
    }
}

impl Access {
    /// Fills an event's empty tenant (and project) from the key, or says why the event may not
    /// be written with this key.
    pub fn admit(&self, event: &mut Event) -> Result<(), Rejection> {
        let Self::Key(principal) = self else {
            return Ok(());
        };
        if event.tenant_id.is_empty() {
            event.tenant_id.clone_from(&principal.tenant);
        } else if event.tenant_id != principal.tenant {
            return Err(Rejection::forbidden(
                "event.tenant_id",
                format!(
                    "{:?} is not the tenant of API key {} ({:?})",
                    event.tenant_id, principal.key_id, principal.tenant
                ),
            ));
        }
        if let Some(project) = &principal.project {
            if event.project_id.is_empty() {
                event.project_id.clone_from(project);
            } else if &event.project_id != project {
                return Err(Rejection::forbidden(
                    "event.project_id",
                    format!(
                        "{:?} is not the project of API key {} ({project:?})",
                        event.project_id, principal.key_id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Confines a read's tenant and project to the key's: empty ones are filled, others must
    /// match. The error names the field.
    pub fn confine(&self, tenant: &mut String, project: &mut String) -> Result<(), String> {
        let Self::Key(principal) = self else {
            return Ok(());
        };
        if tenant.is_empty() {
            tenant.clone_from(&principal.tenant);
        } else if *tenant != principal.tenant {
            return Err(format!(
                "tenant_id {tenant:?} is not the tenant of API key {}",
                principal.key_id
            ));
        }
        if let Some(own) = &principal.project {
            if project.is_empty() {
                project.clone_from(own);
            } else if project != own {
                return Err(format!(
                    "project_id {project:?} is not the project of API key {}",
                    principal.key_id
                ));
            }
        }
        Ok(())
    }
}
