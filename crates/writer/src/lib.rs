//! The writer: the only path from the bus into the audit trail.
//!
//! Today it connects to NATS and ClickHouse and reports on `/readyz` whether both are
//! usable; consuming JetStream into ClickHouse arrives with the ingestion pipeline.

use std::future::Future;
use std::net::SocketAddr;

use chaukas_bus::{BusError, NatsConfig};
use chaukas_common::health::{self, BindError};
use chaukas_store::{ClickHouseConfig, StoreError};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Everything the writer reads from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterConfig {
    /// The `[writer]` section (`CHAUKAS_WRITER__*`).
    pub writer: WriterSettings,
    /// The shared `[nats]` section (`CHAUKAS_NATS__*`).
    pub nats: NatsConfig,
    /// The shared `[clickhouse]` section (`CHAUKAS_CLICKHOUSE__*`).
    pub clickhouse: ClickHouseConfig,
}

/// The `[writer]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// HTTP listen address for health checks.
    pub http_listen: String,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:8081".into(),
        }
    }
}

/// Why the writer could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A listen address is taken or not allowed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// NATS could not be reached.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The ClickHouse settings are unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP server failed while running.
    #[error("http server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A writer with its health port bound and its clients prepared.
pub struct BoundWriter {
    http: TcpListener,
    nats: async_nats::Client,
    clickhouse: clickhouse::Client,
}

/// Binds the health port and starts connecting to NATS; neither NATS nor ClickHouse has
/// to be up yet, `/readyz` reports when they are.
pub async fn bind(config: &WriterConfig) -> Result<BoundWriter, WriterError> {
    Ok(BoundWriter {
        http: health::bind(&config.writer.http_listen).await?,
        nats: config.nats.connect().await?,
        clickhouse: config.clickhouse.client()?,
    })
}

impl BoundWriter {
    /// Where health probes connect.
    pub fn http_addr(&self) -> SocketAddr {
        health::local_addr(&self.http)
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WriterError> {
        tracing::info!(http = %self.http_addr(), "writer listening");
        let nats = self.nats.clone();
        let clickhouse = self.clickhouse.clone();
        let ready = move || {
            let nats = nats.clone();
            let clickhouse = clickhouse.clone();
            async move {
                if !chaukas_bus::is_connected(&nats) {
                    return Err("not connected to NATS".to_owned());
                }
                chaukas_store::server_version(&clickhouse)
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            }
        };
        health::serve(self.http, health::routes(ready), shutdown)
            .await
            .map_err(WriterError::Http)?;
        if let Err(error) = self.nats.drain().await {
            tracing::warn!(%error, "nats connection did not drain cleanly");
        }
        tracing::info!("writer stopped");
        Ok(())
    }
}
