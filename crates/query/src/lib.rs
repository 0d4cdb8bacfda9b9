//! The query service: reads the audit trail back out of ClickHouse.
//!
//! It runs apart from the gateway so that heavy reads scale (and fail) independently of
//! ingestion; the gateway forwards query RPCs to it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chaukas_common::health::{self, BindError};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_server::{
    ChaukasServerService, ChaukasServerServiceServer,
};
use chaukas_store::{ClickHouseConfig, StoreError};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Everything the query service reads from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryConfig {
    /// The `[query]` section (`CHAUKAS_QUERY__*`).
    pub query: QuerySettings,
    /// The shared `[clickhouse]` section (`CHAUKAS_CLICKHOUSE__*`).
    pub clickhouse: ClickHouseConfig,
}

/// The `[query]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// gRPC listen address; internal, the gateway forwards to it.
    pub grpc_listen: String,
    /// HTTP listen address for health checks.
    pub http_listen: String,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            grpc_listen: "0.0.0.0:50052".into(),
            http_listen: "0.0.0.0:8082".into(),
        }
    }
}

/// Why the query service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A listen address is taken or not allowed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The ClickHouse settings are unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gRPC server failed while running.
    #[error("grpc server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed while running.
    #[error("http server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A query service with bound sockets, not serving yet.
pub struct BoundQuery {
    grpc: TcpListener,
    http: TcpListener,
    clickhouse: clickhouse::Client,
}

/// Binds the listeners and prepares the ClickHouse client (no connection is made yet: the
/// service starts even while ClickHouse is down and reports it through `/readyz`).
pub async fn bind(config: &QueryConfig) -> Result<BoundQuery, QueryError> {
    Ok(BoundQuery {
        grpc: health::bind(&config.query.grpc_listen).await?,
        http: health::bind(&config.query.http_listen).await?,
        clickhouse: config.clickhouse.client()?,
    })
}

impl BoundQuery {
    /// Where gRPC clients (the gateway) connect.
    pub fn grpc_addr(&self) -> SocketAddr {
        health::local_addr(&self.grpc)
    }

    /// Where health probes connect.
    pub fn http_addr(&self) -> SocketAddr {
        health::local_addr(&self.http)
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), QueryError> {
        tracing::info!(grpc = %self.grpc_addr(), http = %self.http_addr(), "query service listening");
        let stop = CancellationToken::new();
        let clickhouse = self.clickhouse.clone();
        let ready = move || {
            let clickhouse = clickhouse.clone();
            async move {
                chaukas_store::server_version(&clickhouse)
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            }
        };
        let http = tokio::spawn(health::serve(
            self.http,
            // Query metrics arrive with QueryEvents; the endpoint is there for scrapers now.
            health::routes(ready, Arc::new(Registry::default())),
            stop.clone().cancelled_owned(),
        ));
        let grpc = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ChaukasServerServiceServer::new(QueryService))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(self.grpc),
                    stop.clone().cancelled_owned(),
                ),
        );
        shutdown.await;
        stop.cancel();
        let (grpc, http) = tokio::join!(grpc, http);
        grpc.expect("grpc server task panicked")?;
        http.expect("http server task panicked")
            .map_err(QueryError::Http)?;
        tracing::info!("query service stopped");
        Ok(())
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not available in this build of chaukas-server yet"
    ))
}

fn ingest_elsewhere(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is served by the gateway, not the query service"
    ))
}

/// The handlers of the query service.
#[derive(Debug, Clone, Default)]
struct QueryService;

#[tonic::async_trait]
impl ChaukasServerService for QueryService {
    async fn healthz(
        &self,
        _request: Request<server::HealthzRequest>,
    ) -> Result<Response<server::HealthzResponse>, Status> {
        Ok(Response::new(server::HealthzResponse {}))
    }

    async fn get_capabilities(
        &self,
        _request: Request<server::GetCapabilitiesRequest>,
    ) -> Result<Response<server::GetCapabilitiesResponse>, Status> {
        Ok(Response::new(server::GetCapabilitiesResponse {
            capabilities: Some(chaukas_proto::capabilities()),
        }))
    }

    async fn ingest_event(
        &self,
        _request: Request<server::IngestEventRequest>,
    ) -> Result<Response<server::IngestEventResponse>, Status> {
        Err(ingest_elsewhere("IngestEvent"))
    }

    async fn ingest_event_batch(
        &self,
        _request: Request<server::IngestEventBatchRequest>,
    ) -> Result<Response<server::IngestEventBatchResponse>, Status> {
        Err(ingest_elsewhere("IngestEventBatch"))
    }

    async fn query_events(
        &self,
        _request: Request<server::QueryEventsRequest>,
    ) -> Result<Response<server::QueryEventsResponse>, Status> {
        Err(not_yet("QueryEvents"))
    }

    async fn get_event_stats(
        &self,
        _request: Request<server::GetEventStatsRequest>,
    ) -> Result<Response<server::GetEventStatsResponse>, Status> {
        Err(not_yet("GetEventStats"))
    }
}
