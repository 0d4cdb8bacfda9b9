//! The policy bucket, and every gateway's compiled copy of it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use chaukas_privacy::{Policy, Redactor, Salt};
use futures_util::StreamExt;

use crate::PolicyStoreError;
use crate::record::{PolicyRecord, SaltRecord, hex, unhex};

const POLICY_PREFIX: &str = "policies.";
const SALT_PREFIX: &str = "salts.";
/// Pause before re-opening a watch that ended (NATS restarted, connection lost).
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The policy bucket of an event stream, as `chaukas migrate` creates it.
pub fn bucket_spec(nats: &chaukas_bus::NatsConfig) -> chaukas_bus::kv::BucketSpec {
    chaukas_bus::kv::BucketSpec {
        name: bucket_name(&nats.stream),
        description: "chaukas privacy policies and redaction secrets".into(),
        max_age: Duration::ZERO,
        replicas: nats.replicas,
    }
}

/// Name of the policy bucket of an event stream.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_POLICIES")
}

fn policy_key(tenant: &str, project: Option<&str>) -> String {
    match project {
        Some(project) => format!(
            "{POLICY_PREFIX}{}.{}",
            hex(tenant.as_bytes()),
            hex(project.as_bytes())
        ),
        None => format!("{POLICY_PREFIX}{}", hex(tenant.as_bytes())),
    }
}

fn salt_key(tenant: &str) -> String {
    format!("{SALT_PREFIX}{}", hex(tenant.as_bytes()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn unavailable(error: impl std::fmt::Display) -> PolicyStoreError {
    PolicyStoreError::Nats(error.to_string())
}

/// One tenant's policies, compiled.
#[derive(Default)]
struct Tenant {
    own: Option<PolicyRecord>,
    projects: HashMap<String, PolicyRecord>,
    salt: Option<Salt>,
    default: Option<Arc<Redactor>>,
    per_project: HashMap<String, Arc<Redactor>>,
}

impl Tenant {
    /// Recompiles after any change: the tenant's rules, then each project's.
    fn compile(&mut self) {
        let own = self.own.as_ref().map(|record| &record.policy);
        let redactor = |project: Option<&Policy>| {
            let redactor = Redactor::new(own.into_iter().chain(project), self.salt.clone());
            (!redactor.is_empty()).then(|| Arc::new(redactor))
        };
        self.default = redactor(None);
        self.per_project = self
            .projects
            .iter()
            .filter_map(|(name, record)| Some((name.clone(), redactor(Some(&record.policy))?)))
            .collect();
    }
}

type Cache = Arc<RwLock<HashMap<String, Tenant>>>;

/// Sets and shows policies; when watching, answers which redaction applies to an event.
pub struct PolicyStore {
    kv: kv::Store,
    cache: Cache,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for PolicyStore {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

impl PolicyStore {
    /// The bucket of `nats`' event stream (`chaukas migrate` creates it), not watched.
    pub async fn open(
        jetstream: &jetstream::Context,
        nats: &chaukas_bus::NatsConfig,
    ) -> Result<Self, PolicyStoreError> {
        let kv = chaukas_bus::kv::open_bucket(jetstream, &bucket_spec(nats))
            .await
            .map_err(nats_error)?;
        Ok(Self {
            kv,
            cache: Cache::default(),
            watcher: None,
        })
    }

    /// Opens, loads every policy and secret, and keeps the copy current: a policy set
    /// anywhere applies here within moments. Returns once everything stored is loaded, so
    /// a gateway never publishes an event under a policy it has not read yet.
    pub async fn open_watched(
        jetstream: &jetstream::Context,
        nats: &chaukas_bus::NatsConfig,
    ) -> Result<Self, PolicyStoreError> {
        let mut store = Self::open(jetstream, nats).await?;
        let mut changes = store
            .kv
            .watch_with_history(">")
            .await
            .map_err(unavailable)?;
        // The watch delivers every stored entry first; `delta` 0 marks the last of them.
        let status = store.kv.status().await.map_err(unavailable)?;
        if status.values() > 0 {
            while let Some(change) = changes.next().await {
                let entry = change.map_err(unavailable)?;
                apply(&store.cache, &entry);
                if entry.delta == 0 {
                    break;
                }
            }
        }
        store.watcher = Some(tokio::spawn(watch(
            store.kv.clone(),
            store.cache.clone(),
            changes,
        )));
        Ok(store)
    }

    /// The redaction for an event of `tenant` and `project`; `None`: nothing to redact.
    pub fn redactor(&self, tenant: &str, project: &str) -> Option<Arc<Redactor>> {
        let cache = self.cache.read().expect("policy cache lock");
        let entry = cache.get(tenant)?;
        entry
            .per_project
            .get(project)
            .or(entry.default.as_ref())
            .cloned()
    }

    /// The stored policy of `tenant` (or of one `project`), if any.
    pub async fn get(
        &self,
        tenant: &str,
        project: Option<&str>,
    ) -> Result<Option<(PolicyRecord, u64)>, PolicyStoreError> {
        let key = policy_key(tenant, project);
        let Some(entry) = self.kv.entry(&key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let record = decode(&key, &entry.value)?;
        Ok(Some((record, entry.revision)))
    }

    /// Every stored policy, tenants' and projects'.
    pub async fn list(&self) -> Result<Vec<PolicyRecord>, PolicyStoreError> {
        let mut names = self.kv.keys().await.map_err(unavailable)?;
        let mut records = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(unavailable)?;
            if !name.starts_with(POLICY_PREFIX) {
                continue;
            }
            if let Some(value) = self.kv.get(&name).await.map_err(unavailable)? {
                records.push(decode(&name, &value)?);
            }
        }
        Ok(records)
    }

    /// The id of the tenant's hashing secret, if it has one.
    pub async fn salt_id(&self, tenant: &str) -> Result<Option<String>, PolicyStoreError> {
        let key = salt_key(tenant);
        let Some(value) = self.kv.get(&key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let salt: SaltRecord = decode(&key, &value)?;
        Ok(Some(salt.id))
    }

    /// Stores `policy` for `tenant` (or one `project`), refusing a shorter minimum
    /// retention than the stored one; makes the tenant's secret first if the policy hashes.
    pub async fn set(
        &self,
        tenant: &str,
        project: Option<&str>,
        mut policy: Policy,
        set_by: &str,
    ) -> Result<PolicyRecord, PolicyStoreError> {
        check_owner(tenant, project)?;
        policy.validate()?;
        let current = self.get(tenant, project).await?;
        Policy::check_change(current.as_ref().map(|(record, _)| &record.policy), &policy)?;
        if let Some(retention) = policy.retention.as_mut()
            && retention.legal_hold
            && retention.hold_set_by.is_none()
        {
            retention.hold_set_by = Some(set_by.to_owned());
        }
        if policy.hashes() {
            self.ensure_salt(tenant).await?;
        }
        let record = PolicyRecord {
            tenant: tenant.to_owned(),
            project: project.map(str::to_owned),
            policy,
            set_at_ms: now_ms(),
            set_by: set_by.to_owned(),
        };
        let key = policy_key(tenant, project);
        let value = serde_json::to_vec(&record).expect("a policy record serializes");
        let written = match current {
            Some((_, revision)) => self
                .kv
                .update(&key, value.into(), revision)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string()),
            None => self
                .kv
                .create(&key, value.into())
                .await
                .map(|_| ())
                .map_err(|error| error.to_string()),
        };
        if let Err(error) = written {
            // JetStream's "wrong last sequence": another `policy set` won the race.
            let raced = error.contains("wrong last sequence") || error.contains("already exists");
            return Err(if raced {
                PolicyStoreError::Concurrent
            } else {
                PolicyStoreError::Nats(error)
            });
        }
        Ok(record)
    }

    /// Makes the tenant's secret unless it has one (two racing callers: the first wins).
    async fn ensure_salt(&self, tenant: &str) -> Result<(), PolicyStoreError> {
        let key = salt_key(tenant);
        if self.kv.get(&key).await.map_err(unavailable)?.is_some() {
            return Ok(());
        }
        let salt = SaltRecord::generate(tenant).map_err(|error| {
            PolicyStoreError::Invalid(format!("no randomness available: {error}"))
        })?;
        let value = serde_json::to_vec(&salt).expect("a salt record serializes");
        if self.kv.create(&key, value.into()).await.is_err()
            && self.kv.get(&key).await.map_err(unavailable)?.is_none()
        {
            return Err(PolicyStoreError::Nats(
                "cannot store the tenant secret".into(),
            ));
        }
        Ok(())
    }
}

fn nats_error(error: chaukas_bus::BusError) -> PolicyStoreError {
    PolicyStoreError::Nats(error.to_string())
}

fn check_owner(tenant: &str, project: Option<&str>) -> Result<(), PolicyStoreError> {
    if tenant.trim().is_empty() {
        return Err(PolicyStoreError::Invalid(
            "a policy needs a tenant (--tenant)".into(),
        ));
    }
    if project.is_some_and(|p| p.trim().is_empty()) {
        return Err(PolicyStoreError::Invalid("--project is empty".into()));
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, PolicyStoreError> {
    serde_json::from_slice(value).map_err(|error| PolicyStoreError::Corrupt {
        key: key.to_owned(),
        reason: error.to_string(),
    })
}

/// Applies one bucket entry to the compiled copy.
fn apply(cache: &Cache, entry: &kv::Entry) {
    let put = entry.operation == kv::Operation::Put;
    let mut cache = cache.write().expect("policy cache lock");
    if let Some(rest) = entry.key.strip_prefix(SALT_PREFIX) {
        let Some(tenant) = unhex(rest).and_then(|bytes| String::from_utf8(bytes).ok()) else {
            return;
        };
        let salt = put
            .then(|| decode::<SaltRecord>(&entry.key, &entry.value).ok()?.salt())
            .flatten();
        let tenant = cache.entry(tenant).or_default();
        tenant.salt = salt;
        tenant.compile();
        return;
    }
    let Some(rest) = entry.key.strip_prefix(POLICY_PREFIX) else {
        return;
    };
    let mut names = rest
        .split('.')
        .map(|part| unhex(part).and_then(|b| String::from_utf8(b).ok()));
    let (Some(Some(tenant)), project) = (names.next(), names.next()) else {
        return;
    };
    let record = if put {
        match decode::<PolicyRecord>(&entry.key, &entry.value) {
            Ok(record) => Some(record),
            Err(error) => {
                // Keep the last good policy rather than redacting less.
                tracing::error!(%error, "ignoring an unreadable policy");
                return;
            }
        }
    } else {
        None
    };
    let slot = cache.entry(tenant).or_default();
    match project {
        Some(Some(project)) => match record {
            Some(record) => {
                slot.projects.insert(project, record);
            }
            None => {
                slot.projects.remove(&project);
            }
        },
        Some(None) => return,
        None => slot.own = record,
    }
    slot.compile();
}

/// Applies every later change, re-opening the watch when it ends.
async fn watch(kv: kv::Store, cache: Cache, mut changes: kv::Watch) {
    loop {
        while let Some(change) = changes.next().await {
            match change {
                Ok(entry) => apply(&cache, &entry),
                Err(_) => break,
            }
        }
        loop {
            tokio::time::sleep(WATCH_RETRY).await;
            // Re-reading everything also catches what changed while the watch was down.
            match kv.watch_with_history(">").await {
                Ok(reopened) => {
                    changes = reopened;
                    break;
                }
                Err(error) => tracing::warn!(%error, "cannot watch the policy bucket; retrying"),
            }
        }
    }
}
