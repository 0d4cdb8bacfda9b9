//! JetStream key-value buckets (writer leases, API keys): created by `chaukas migrate`
//! ([`create_bucket`]), opened and checked by the services ([`open_bucket`]).

use std::time::Duration;

use async_nats::jetstream::{self, kv};

use crate::BusError;

/// What a bucket is: its name, what it holds, how long entries live (`Duration::ZERO`:
/// forever) and how many copies a NATS cluster keeps.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// Bucket name.
    pub name: String,
    /// What it holds, shown by `nats kv ls`.
    pub description: String,
    /// Entries older than this vanish.
    pub max_age: Duration,
    /// Copies on a NATS cluster.
    pub replicas: usize,
}

impl BucketSpec {
    /// The backing stream's configuration. Created here with the settings a key-value bucket
    /// has, rather than through `create_key_value`: that call first reads account
    /// information in a shape NATS 2.9 (Debian's, used locally and in CI) does not send.
    fn stream_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: format!("KV_{}", self.name),
            description: Some(self.description.clone()),
            subjects: vec![format!("$KV.{}.>", self.name)],
            max_messages_per_subject: 1,
            max_bytes: -1,
            max_message_size: -1,
            max_age: self.max_age,
            duplicate_window: if self.max_age.is_zero() {
                Duration::from_secs(120)
            } else {
                self.max_age.min(Duration::from_secs(120))
            },
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

fn failed(spec: &BucketSpec, error: impl std::fmt::Display) -> BusError {
    BusError::Stream {
        stream: format!("KV_{}", spec.name),
        reason: error.to_string(),
    }
}

/// Creates the bucket or brings its lifetime and replicas to `spec` (`chaukas migrate`
/// only); says which.
pub async fn create_bucket(
    jetstream: &jetstream::Context,
    spec: &BucketSpec,
) -> Result<String, BusError> {
    let wanted = spec.stream_config();
    match jetstream.get_stream(&wanted.name).await {
        Ok(mut existing) => {
            let found = existing
                .info()
                .await
                .map_err(|e| failed(spec, e))?
                .config
                .clone();
            if found.max_age == wanted.max_age && found.num_replicas == wanted.num_replicas {
                return Ok(format!("bucket {}: as configured", spec.name));
            }
            jetstream
                .update_stream(wanted)
                .await
                .map_err(|e| failed(spec, e))?;
            Ok(format!("bucket {}: updated", spec.name))
        }
        Err(_) => {
            jetstream
                .create_stream(wanted)
                .await
                .map_err(|e| failed(spec, e))?;
            Ok(format!("bucket {}: created", spec.name))
        }
    }
}

/// Opens the bucket after checking that it exists with `spec`'s lifetime and replicas.
pub async fn open_bucket(
    jetstream: &jetstream::Context,
    spec: &BucketSpec,
) -> Result<kv::Store, BusError> {
    let wanted = spec.stream_config();
    let mut found =
        jetstream
            .get_stream(&wanted.name)
            .await
            .map_err(|error| match error.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(_) => {
                    BusError::Missing(format!("key-value bucket {}", spec.name))
                }
                _ => failed(spec, error),
            })?;
    let config = found
        .info()
        .await
        .map_err(|e| failed(spec, e))?
        .config
        .clone();
    let mut differences = Vec::new();
    if config.max_age != wanted.max_age {
        differences.push(format!(
            "entry lifetime: the bucket has {:?}, configured {:?}",
            config.max_age, wanted.max_age
        ));
    }
    if config.num_replicas != wanted.num_replicas {
        differences.push(format!(
            "replicas: the bucket has {}, configured {}",
            config.num_replicas, wanted.num_replicas
        ));
    }
    if !differences.is_empty() {
        return Err(BusError::Mismatch {
            what: format!("key-value bucket {}", spec.name),
            differences: differences.join("; "),
        });
    }
    jetstream
        .get_key_value(&spec.name)
        .await
        .map_err(|e| failed(spec, e))
}
