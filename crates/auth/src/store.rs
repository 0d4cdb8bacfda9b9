//! The key store: a JetStream key-value bucket, mirrored in memory by every replica.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;

use crate::key::{KeyRecord, NewKey, Principal, Scope, parse_token};
use crate::{AuthError, KeyStoreError};

/// Bucket entries are `keys.<id>`.
const ENTRY_PREFIX: &str = "keys.";
/// Pause before re-opening a watch that ended (NATS restarted, connection lost).
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Name of the key bucket of an event stream (each stream, so each test, has its own).
/// The API-key bucket as `chaukas migrate` creates it: entries never expire.
pub fn bucket_spec(nats: &chaukas_bus::NatsConfig) -> chaukas_bus::kv::BucketSpec {
    chaukas_bus::kv::BucketSpec {
        name: bucket_name(&nats.stream),
        description: "chaukas API keys (hashed secrets)".into(),
        max_age: Duration::ZERO,
        replicas: nats.replicas,
    }
}

/// Name of the API-key bucket of an event stream.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}_API_KEYS")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

type Cache = Arc<RwLock<HashMap<String, KeyRecord>>>;

/// Creates, lists and revokes keys, and (when watching) verifies them from memory.
pub struct KeyStore {
    kv: kv::Store,
    cache: Cache,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

fn decode(key: &str, value: &[u8]) -> Result<KeyRecord, KeyStoreError> {
    serde_json::from_slice(value).map_err(|error| KeyStoreError::Corrupt {
        key: key.to_owned(),
        reason: error.to_string(),
    })
}

impl KeyStore {
    /// The bucket of `nats`' event stream, without watching (for `chaukas keys`); it must
    /// exist (`chaukas migrate` creates it).
    pub async fn open(
        jetstream: &jetstream::Context,
        nats: &chaukas_bus::NatsConfig,
    ) -> Result<Self, KeyStoreError> {
        let kv = chaukas_bus::kv::open_bucket(jetstream, &bucket_spec(nats))
            .await
            .map_err(|error| KeyStoreError::Nats(error.to_string()))?;
        Ok(Self {
            kv,
            cache: Cache::default(),
            watcher: None,
        })
    }

    /// Opens, loads every key, and keeps the copy current by watching the bucket: a key
    /// created or revoked anywhere takes effect here within moments.
    pub async fn open_watched(
        jetstream: &jetstream::Context,
        nats: &chaukas_bus::NatsConfig,
    ) -> Result<Self, KeyStoreError> {
        let mut store = Self::open(jetstream, nats).await?;
        for record in store.list().await? {
            store.cache_put(record);
        }
        store.watcher = Some(tokio::spawn(watch(store.kv.clone(), store.cache.clone())));
        Ok(store)
    }

    fn cache_put(&self, record: KeyRecord) {
        self.cache
            .write()
            .expect("key cache lock")
            .insert(record.id.clone(), record);
    }

    /// Stores a new key and returns it with its token (shown once, stored nowhere).
    pub async fn create(
        &self,
        name: String,
        tenant: String,
        project: Option<String>,
        scopes: Vec<Scope>,
        expires_at_ms: Option<i64>,
    ) -> Result<NewKey, KeyStoreError> {
        if tenant.trim().is_empty() {
            return Err(KeyStoreError::Invalid(
                "a key needs a tenant (--tenant)".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(KeyStoreError::Invalid(
                "a key needs at least one scope (--scopes ingest,query,stats)".into(),
            ));
        }
        let now = now_ms();
        if expires_at_ms.is_some_and(|at| at <= now) {
            return Err(KeyStoreError::Invalid("the expiry is in the past".into()));
        }
        let new = KeyRecord::generate(
            name,
            tenant,
            project.filter(|p| !p.is_empty()),
            scopes,
            now,
            expires_at_ms,
        )
        .map_err(|error| KeyStoreError::Invalid(format!("no randomness available: {error}")))?;
        let value = serde_json::to_vec(&new.record).expect("a key record serializes");
        self.kv
            .create(format!("{ENTRY_PREFIX}{}", new.record.id), value.into())
            .await
            .map_err(|error| KeyStoreError::Nats(error.to_string()))?;
        self.cache_put(new.record.clone());
        Ok(new)
    }

    /// Every key, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, KeyStoreError> {
        let mut names = self
            .kv
            .keys()
            .await
            .map_err(|error| KeyStoreError::Nats(error.to_string()))?;
        let mut records = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(|error| KeyStoreError::Nats(error.to_string()))?;
            if !name.starts_with(ENTRY_PREFIX) {
                continue;
            }
            if let Some(value) = self
                .kv
                .get(&name)
                .await
                .map_err(|error| KeyStoreError::Nats(error.to_string()))?
            {
                records.push(decode(&name, &value)?);
            }
        }
        records.sort_by_key(|record| record.created_at_ms);
        Ok(records)
    }

    /// Marks key `id` revoked from now on; every watching replica refuses it moments later.
    pub async fn revoke(&self, id: &str) -> Result<KeyRecord, KeyStoreError> {
        let name = format!("{ENTRY_PREFIX}{id}");
        let entry = self
            .kv
            .entry(&name)
            .await
            .map_err(|error| KeyStoreError::Nats(error.to_string()))?
            .ok_or_else(|| KeyStoreError::NotFound(id.to_owned()))?;
        let mut record = decode(&name, &entry.value)?;
        if record.revoked_at_ms.is_none() {
            record.revoked_at_ms = Some(now_ms());
            let value = serde_json::to_vec(&record).expect("a key record serializes");
            self.kv
                .update(&name, value.into(), entry.revision)
                .await
                .map_err(|error| KeyStoreError::Nats(error.to_string()))?;
        }
        self.cache_put(record.clone());
        Ok(record)
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) for `scope`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<Principal, AuthError> {
        let header = authorization
            .map(str::trim)
            .filter(|value| !value.is_empty());
        let header = header.ok_or(AuthError::Missing)?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::Malformed),
        };
        let id = parse_token(token)?;
        let cache = self.cache.read().expect("key cache lock");
        let record = cache.get(id).ok_or_else(|| AuthError::Unknown {
            key_id: id.to_owned(),
        })?;
        record.verify(token, scope, now_ms())
    }
}

/// Applies every change of the bucket to `cache`, re-opening the watch when it ends.
async fn watch(kv: kv::Store, cache: Cache) {
    loop {
        match kv.watch_with_history(format!("{ENTRY_PREFIX}>")).await {
            Ok(mut changes) => {
                while let Some(change) = changes.next().await {
                    let Ok(entry) = change else { break };
                    let id = entry.key.trim_start_matches(ENTRY_PREFIX).to_owned();
                    let mut cache = cache.write().expect("key cache lock");
                    match entry.operation {
                        kv::Operation::Put => match decode(&entry.key, &entry.value) {
                            Ok(record) => {
                                cache.insert(id, record);
                            }
                            Err(error) => tracing::error!(%error, "ignoring a corrupt API key"),
                        },
                        kv::Operation::Delete | kv::Operation::Purge => {
                            cache.remove(&id);
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot watch the API key bucket; retrying"),
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}
