//! The message bus between the gateway and the writer.
//!
//! Everything both sides must agree on lives here, so they cannot drift apart: where NATS
//! is, the stream and its limits, how events are spread over shard subjects, and the
//! envelope an accepted request travels in.
//!
//! Layout: one work-queue stream (`CHAUKAS_EVENTS` by default) with subjects
//! `<prefix>.<shard>`, `shard = fnv1a(tenant_id) % shards`. A gateway packs the events of
//! one request that share a shard into as few messages as the message size allows (one
//! JetStream message per event cannot go faster than the ~90k messages/s JetStream takes on
//! a small machine). Every event of a tenant lands in the same shard, and each shard is
//! consumed by exactly one writer at a time (see the writer's leases), which is what makes
//! deduplication in the writer race-free.

mod config;
pub mod dead_letters;
mod envelope;
pub mod kv;
mod layout;
pub mod status;

pub use config::NatsConfig;
pub use envelope::{
    Envelope, EnvelopeError, INGEST_TIME_HEADER, MessageChunk, message_id, pack, shard_of,
};

/// Why the bus could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No server answered at the configured URL.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// What the client said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A stream could not be created or brought to the configured settings.
    #[error("cannot set up JetStream stream {stream}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        reason: String,
    },
    /// A stream or bucket does not exist yet: `chaukas migrate` creates them.
    #[error("{0} does not exist yet: run `chaukas migrate` with the same [nats] settings")]
    Missing(String),
    /// A stream or bucket differs from this service's configuration.
    #[error(
        "{what} differs from this service's configuration: {differences}. Run `chaukas \
         migrate` with these settings to change it, or give this service the settings it was \
         created with"
    )]
    Mismatch {
        /// The stream or bucket.
        what: String,
        /// Each difference.
        differences: String,
    },
    /// The configuration is unusable (for example zero shards).
    #[error("invalid [nats] configuration: {0}")]
    InvalidConfig(String),
}

/// Whether a client is connected right now; used by readiness checks.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}
