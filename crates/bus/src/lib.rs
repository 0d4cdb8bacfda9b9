//! The message bus between the gateway and the writer: how to reach NATS JetStream.
//!
//! Stream layout (names, subjects, limits) joins this crate with the ingestion pipeline;
//! keeping it here means the gateway and the writer can never disagree about it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where NATS is and how patiently to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated, e.g. `nats://nats:4222`.
    pub url: String,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            connect_timeout_ms: 5_000,
        }
    }
}

/// Why the bus could not be reached.
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
}

impl NatsConfig {
    /// Connects once; afterwards the client reconnects on its own for as long as the
    /// process lives, so a NATS restart does not need a service restart.
    pub async fn connect(&self) -> Result<async_nats::Client, BusError> {
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(self.url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: self.url.clone(),
                source,
            })
    }
}

/// Whether a client is connected right now; used by readiness checks.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}
