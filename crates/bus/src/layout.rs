//! The bus's layout: the event and dead-letter streams with their limits and shard count,
//! and the key-value buckets. Only `chaukas migrate` creates or changes it
//! ([`NatsConfig::apply_streams`], [`crate::kv::create_bucket`]); every service checks at
//! start that what it finds is what its own configuration says
//! ([`NatsConfig::verify_streams`], [`crate::kv::open_bucket`]) and refuses to run on a
//! mismatch, naming each difference. A service with other limits can then never shrink the
//! stream for everyone, and two shard counts can never be live at once.

use async_nats::jetstream::{self, stream};

use crate::{BusError, NatsConfig};

/// Differences between a stream as found and as configured, one per line item.
fn differences(found: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut differences = Vec::new();
    let mut compare = |what: &str, found: String, wanted: String| {
        if found != wanted {
            differences.push(format!(
                "{what}: the stream has {found}, configured {wanted}"
            ));
        }
    };
    compare(
        "description (shard count)",
        format!("{:?}", found.description),
        format!("{:?}", wanted.description),
    );
    compare(
        "subjects",
        format!("{:?}", found.subjects),
        format!("{:?}", wanted.subjects),
    );
    compare(
        "retention",
        format!("{:?}", found.retention),
        format!("{:?}", wanted.retention),
    );
    compare(
        "discard",
        format!("{:?}", found.discard),
        format!("{:?}", wanted.discard),
    );
    compare(
        "replicas",
        found.num_replicas.to_string(),
        wanted.num_replicas.to_string(),
    );
    compare(
        "max_bytes",
        found.max_bytes.to_string(),
        wanted.max_bytes.to_string(),
    );
    compare(
        "max_age",
        format!("{:?}", found.max_age),
        format!("{:?}", wanted.max_age),
    );
    compare(
        "duplicate_window",
        format!("{:?}", found.duplicate_window),
        format!("{:?}", wanted.duplicate_window),
    );
    compare(
        "max_message_size",
        found.max_message_size.to_string(),
        wanted.max_message_size.to_string(),
    );
    differences
}

impl NatsConfig {
    fn stream_configs(&self) -> [stream::Config; 2] {
        [
            self.events_stream_config(),
            self.dead_letter_stream_config(),
        ]
    }

    /// Creates the event and dead-letter streams or brings them to this configuration
    /// (`chaukas migrate` only). Returns what it did, one line per stream.
    pub async fn apply_streams(&self, js: &jetstream::Context) -> Result<Vec<String>, BusError> {
        self.validate()?;
        let mut done = Vec::new();
        for config in self.stream_configs() {
            let name = config.name.clone();
            let failed = |reason: String| BusError::Stream {
                stream: name.clone(),
                reason,
            };
            match js.get_stream(&config.name).await {
                Ok(mut existing) => {
                    let current = existing
                        .info()
                        .await
                        .map_err(|error| failed(error.to_string()))?
                        .config
                        .clone();
                    let changes = differences(&current, &config);
                    if changes.is_empty() {
                        done.push(format!("stream {name}: as configured"));
                    } else {
                        js.update_stream(config)
                            .await
                            .map_err(|error| failed(error.to_string()))?;
                        done.push(format!("stream {name}: updated ({})", changes.join("; ")));
                    }
                }
                Err(_) => {
                    js.create_stream(config)
                        .await
                        .map_err(|error| failed(error.to_string()))?;
                    done.push(format!("stream {name}: created"));
                }
            }
        }
        Ok(done)
    }

    /// Checks that both streams exist exactly as configured: [`BusError::Missing`] when one
    /// does not exist yet (run `chaukas migrate`; services wait for it),
    /// [`BusError::Mismatch`] naming every difference otherwise.
    pub async fn verify_streams(&self, js: &jetstream::Context) -> Result<(), BusError> {
        self.validate()?;
        for wanted in self.stream_configs() {
            let mut found =
                js.get_stream(&wanted.name)
                    .await
                    .map_err(|error| match error.kind() {
                        jetstream::context::GetStreamErrorKind::JetStream(_) => {
                            BusError::Missing(format!("stream {}", wanted.name))
                        }
                        _ => BusError::Stream {
                            stream: wanted.name.clone(),
                            reason: error.to_string(),
                        },
                    })?;
            let info = found.info().await.map_err(|error| BusError::Stream {
                stream: wanted.name.clone(),
                reason: error.to_string(),
            })?;
            let differences = differences(&info.config, &wanted);
            if !differences.is_empty() {
                return Err(BusError::Mismatch {
                    what: format!("stream {}", wanted.name),
                    differences: differences.join("; "),
                });
            }
        }
        Ok(())
    }
}

impl NatsConfig {
    /// The whole layout (`chaukas migrate`): both streams and the given buckets.
    pub async fn apply_layout(
        &self,
        js: &jetstream::Context,
        buckets: &[crate::kv::BucketSpec],
    ) -> Result<Vec<String>, BusError> {
        let mut done = self.apply_streams(js).await?;
        for bucket in buckets {
            done.push(crate::kv::create_bucket(js, bucket).await?);
        }
        Ok(done)
    }

    /// At a service's start: refuses a bus that differs from this configuration. NATS away
    /// or streams not made yet are not errors here (the service waits for them and is not
    /// ready meanwhile).
    pub async fn refuse_mismatch(&self, client: &async_nats::Client) -> Result<(), BusError> {
        let js = jetstream::new(client.clone());
        let check =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.verify_streams(&js));
        match check.await {
            Ok(Err(error @ BusError::Mismatch { .. })) => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_shard_count_is_named() {
        let live = NatsConfig::default();
        let other = NatsConfig {
            shards: live.shards * 2,
            ..NatsConfig::default()
        };
        let found = differences(&live.events_stream_config(), &other.events_stream_config());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("shard count") && found[0].contains("shards=16"));
    }

    #[test]
    fn the_same_settings_have_no_differences() {
        let config = NatsConfig::default();
        for stream in config.stream_configs() {
            assert!(differences(&stream, &stream).is_empty());
        }
    }
}
