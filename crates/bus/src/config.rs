use std::time::Duration;

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};

use crate::BusError;

/// Where NATS is, and the layout and limits of the streams Chaukas keeps there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated, e.g. `nats://nats:4222`.
    pub url: String,
    /// User the services authenticate as; empty: no authentication (a server without
    /// `authorization`, as in tests). Every deployment this project ships sets one.
    pub user: String,
    /// Password of `user`; set it from a secret (`CHAUKAS_NATS__PASSWORD`), not a file.
    pub password: String,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// The stream accepted events wait in until a writer has stored them.
    pub stream: String,
    /// Subject prefix; events go to `<prefix>.<shard>`.
    pub subject_prefix: String,
    /// Copies JetStream keeps of every stream and bucket (1 on one server; 3 on a 3-node
    /// cluster, so losing a node loses no acknowledged event, key or lease).
    pub replicas: usize,
    /// Number of shard subjects. Fixed for the life of a stream: a tenant's shard must not
    /// move while its events are still queued, so change it only on an empty stream.
    pub shards: u16,
    /// Bytes the event stream may hold before the gateway answers UNAVAILABLE (a backlog
    /// while ClickHouse is down); never unbounded.
    pub max_bytes: i64,
    /// Age past which JetStream would delete events still waiting to be stored, in hours.
    /// 0 (the default): none. An age limit deletes acknowledged events that were never
    /// stored (say, after a week-long storage outage), so it is off unless chosen; writers
    /// warn when the oldest waiting event passes half of it.
    pub max_age_hours: u64,
    /// JetStream's duplicate window in seconds: a resend of an identical request within it
    /// is dropped by the bus; the writer's own check catches later resends.
    pub duplicate_window_secs: u64,
    /// Largest message a gateway publishes; requests are split below it. Must stay under
    /// the server's `max_payload` (1 MiB by default).
    pub max_message_bytes: usize,
    /// Stream for messages a writer can never store (undecodable), kept with the reason.
    pub dead_letter_stream: String,
    /// Subject of the dead-letter stream.
    pub dead_letter_subject: String,
    /// How long dead letters are kept, in days; 0 (the default): until replayed or removed
    /// by an operator (`chaukas dead-letters`). Dead letters are never dropped to make room:
    /// when the stream is full, new ones wait in the event stream (and are logged) instead.
    pub dead_letter_max_age_days: u64,
    /// Bytes the dead-letter stream may hold.
    pub dead_letter_max_bytes: i64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            user: String::new(),
            password: String::new(),
            connect_timeout_ms: 5_000,
            replicas: 1,
            stream: "CHAUKAS_EVENTS".into(),
            subject_prefix: "chaukas.events".into(),
            shards: 8,
            max_bytes: 8 * 1024 * 1024 * 1024,
            max_age_hours: 7 * 24,
            duplicate_window_secs: 120,
            max_message_bytes: 900 * 1024,
            dead_letter_stream: "CHAUKAS_DEAD_LETTER".into(),
            dead_letter_subject: "chaukas.deadletter".into(),
            dead_letter_max_age_days: 0,
            dead_letter_max_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl NatsConfig {
    /// Connects once; afterwards the client reconnects on its own for as long as the
    /// process lives, so a NATS restart does not need a service restart.
    pub async fn connect(&self) -> Result<async_nats::Client, BusError> {
        let options = if self.user.is_empty() {
            async_nats::ConnectOptions::new()
        } else {
            async_nats::ConnectOptions::with_user_and_password(
                self.user.clone(),
                self.password.clone(),
            )
        };
        options
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(self.servers()?)
            .await
            .map_err(|source| BusError::Connect {
                url: self.url.clone(),
                source,
            })
    }

    /// The server URLs of `url` (comma-separated seeds of a cluster); the client learns the
    /// other members from whichever it reaches.
    fn servers(&self) -> Result<Vec<async_nats::ServerAddr>, BusError> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                url.parse::<async_nats::ServerAddr>().map_err(|error| {
                    BusError::InvalidConfig(format!("nats.url {url:?} is not a NATS URL: {error}"))
                })
            })
            .collect()
    }

    /// Subject of one shard.
    pub fn shard_subject(&self, shard: u16) -> String {
        format!("{}.{shard}", self.subject_prefix)
    }

    /// Checks what a typo could turn into a silent failure later.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.shards == 0 {
            return Err(BusError::InvalidConfig("shards must be at least 1".into()));
        }
        if self.max_message_bytes < 64 * 1024 {
            return Err(BusError::InvalidConfig(
                "max_message_bytes must be at least 65536".into(),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(BusError::InvalidConfig(
                "replicas must be between 1 and 5 (JetStream's limit)".into(),
            ));
        }
        if self.dead_letter_max_bytes <= 0 {
            return Err(BusError::InvalidConfig(
                "dead_letter_max_bytes must be positive".into(),
            ));
        }
        if self.max_bytes <= 0 {
            return Err(BusError::InvalidConfig(
                "max_bytes must be positive: the stream is never unbounded".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn events_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            // The shard count is part of the layout: two deployments disagreeing on it would
            // send one tenant to two writers. Recorded here (NATS 2.9 streams have no
            // metadata) and checked by every service.
            description: Some(format!(
                "Chaukas events accepted by a gateway, not yet stored; shards={}",
                self.shards
            )),
            subjects: vec![format!("{}.*", self.subject_prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_bytes: self.max_bytes,
            // Zero is JetStream's "no age limit".
            max_age: Duration::from_secs(self.max_age_hours * 3600),
            max_message_size: i32::try_from(self.max_message_bytes + 64 * 1024).unwrap_or(i32::MAX),
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    pub(crate) fn dead_letter_stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.dead_letter_stream.clone(),
            description: Some(
                "Chaukas messages a writer could never store, with the reason".into(),
            ),
            subjects: vec![self.dead_letter_subject.clone()],
            retention: stream::RetentionPolicy::Limits,
            // Full: refuse the newest, never drop the oldest.
            discard: stream::DiscardPolicy::New,
            max_bytes: self.dead_letter_max_bytes,
            max_age: Duration::from_secs(self.dead_letter_max_age_days * 24 * 3600),
            max_message_size: -1,
            // A letter written again (its original's ack was lost) collapses into the first.
            duplicate_window: Duration::from_secs(120),
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_seed_urls_are_accepted_and_a_bad_one_is_named() {
        let cluster = NatsConfig {
            url: "nats://a:4222, nats://b:4222,nats://c:4222".into(),
            ..NatsConfig::default()
        };
        assert_eq!(cluster.servers().unwrap().len(), 3);
        let bad = NatsConfig {
            url: "nats://a:4222,nats://b:notaport".into(),
            ..NatsConfig::default()
        };
        assert!(
            bad.servers()
                .unwrap_err()
                .to_string()
                .contains("nats://b:notaport")
        );
    }

    #[test]
    fn replicas_beyond_jetstreams_limit_are_refused() {
        let config = NatsConfig {
            replicas: 7,
            ..NatsConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
