//! The query service: reads the audit trail back out of ClickHouse.
//!
//! It runs apart from the gateway so that heavy reads scale (and fail) independently of
//! ingestion; the gateway forwards query RPCs to it. It serves `QueryEvents` under both
//! service names and `GetEventStats` under the server's.

pub mod audit_log;
mod error;
mod events;
pub mod guardrails;
mod metrics;
pub mod model_stats;
pub mod page_token;
pub mod sessions;
mod sql;
pub mod stats;

pub use error::QueryError;
use metrics::QueryMetrics;
use page_token::PageTokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chaukas_common::errors::ServiceError as _;
use chaukas_common::health::{self, BindError};
use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_server::{
    ChaukasClientService, ChaukasClientServiceServer,
};
use chaukas_proto::common::v1::{QueryRequest, QueryResponse};
use chaukas_proto::internal::v1::audit_log_service_server::AuditLogServiceServer;
use chaukas_proto::internal::v1::session_service_server::SessionServiceServer;
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_server::{
    ChaukasServerService, ChaukasServerServiceServer,
};
use chaukas_store::confinement::Role;
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
    /// The shared `[log]` section (`CHAUKAS_LOG__*`): the log's name and verifier keys.
    pub log: chaukas_audit::LogConfig,
}

/// The `[query]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerySettings {
    /// gRPC listen address; internal, the gateway forwards to it.
    pub grpc_listen: String,
    /// HTTP listen address for health checks and metrics.
    pub http_listen: String,
    /// Secret that signs page tokens; every query replica behind one gateway must share it
    /// (set `CHAUKAS_QUERY__PAGE_TOKEN_SECRET` from a Kubernetes secret). The signature
    /// keeps a corrupted or hand-edited token from silently returning the wrong page; a
    /// token can only ever move through the caller's own query.
    pub page_token_secret: String,
    /// The credential gateways present (`x-chaukas-internal-token`); calls without it are
    /// refused, so reaching the port is not enough to read any tenant's events. Every gateway's
    /// `gateway.query_token` must equal it; set both from one secret
    /// (`CHAUKAS_QUERY__INTERNAL_TOKEN`).
    pub internal_token: String,
    /// A QueryEvents page stops once its events reach this many bytes (at least one event
    /// is always returned) and hands back a page token for the rest, so a page of large
    /// events costs bounded memory here, in the gateway and in the client.
    pub max_page_bytes: usize,
    /// Reads one tenant may run at once; more are refused with RESOURCE_EXHAUSTED / 429.
    pub max_reads_per_tenant: usize,
    /// ClickHouse `max_execution_time` of every read statement, in seconds.
    pub max_execution_secs: u64,
    /// ClickHouse `max_memory_usage` of every read statement, in bytes.
    pub max_memory_bytes: u64,
    /// A session without SESSION_END whose last event is older than this many seconds is
    /// `abandoned` (docs/sessions.md); younger, it is `in_progress`.
    pub session_idle_secs: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            grpc_listen: "0.0.0.0:50052".into(),
            http_listen: "0.0.0.0:8082".into(),
            page_token_secret: "chaukas-local-page-token-secret".into(),
            internal_token: chaukas_common::internal::LOCAL_TOKEN.into(),
            max_page_bytes: 8 * 1024 * 1024,
            max_reads_per_tenant: 8,
            max_execution_secs: 20,
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            session_idle_secs: 1800,
        }
    }
}

/// Why the query service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
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
    /// The audit log's keys are unusable.
    #[error(transparent)]
    Keys(#[from] chaukas_audit::KeyError),
}

/// A query service with bound sockets, not serving yet.
pub struct BoundQuery {
    grpc: TcpListener,
    http: TcpListener,
    clickhouse: clickhouse::Client,
    settings: QuerySettings,
    log_name: String,
    log_verifiers: Vec<chaukas_audit::VerifierKey>,
}

/// Binds the listeners and prepares the ClickHouse client (no connection is made yet: the
/// service starts even while ClickHouse is down and reports it through `/readyz`).
pub async fn bind(config: &QueryConfig) -> Result<BoundQuery, ServiceError> {
    Ok(BoundQuery {
        grpc: health::bind(&config.query.grpc_listen).await?,
        http: health::bind(&config.query.http_listen).await?,
        // Every read statement runs under these limits on the server itself, so a query
        // that outlives its caller still ends.
        clickhouse: config
            .clickhouse
            .client()?
            .with_setting(
                "max_execution_time",
                config.query.max_execution_secs.to_string(),
            )
            .with_setting(
                "max_memory_usage",
                config.query.max_memory_bytes.to_string(),
            ),
        settings: config.query.clone(),
        log_name: config.log.name.clone(),
        log_verifiers: config.log.verifiers()?,
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
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        tracing::info!(grpc = %self.grpc_addr(), http = %self.http_addr(), "query service listening");
        let stop = CancellationToken::new();
        let mut registry = Registry::default();
        let service = QueryService {
            clickhouse: Arc::new(RwLock::new(self.clickhouse.clone())),
            tokens: Arc::new(PageTokens::new(&self.settings.page_token_secret)),
            metrics: Arc::new(QueryMetrics::register(&mut registry)),
            reads: guardrails::TenantReads::new(self.settings.max_reads_per_tenant),
            max_page_bytes: self.settings.max_page_bytes,
        };
        let log_reader = audit_log::LogReader::new(
            self.clickhouse.clone(),
            self.log_name.clone(),
            self.log_verifiers.clone(),
            service.reads.clone(),
        );
        let session_reader = sessions::SessionReader::new(
            self.clickhouse.clone(),
            service.reads.clone(),
            service.tokens.clone(),
            std::time::Duration::from_secs(self.settings.session_idle_secs),
        );
        let check = chaukas_common::internal::TokenCheck::new(&self.settings.internal_token);
        if chaukas_common::internal::exposed_with_local_token(
            &self.settings.grpc_listen,
            &self.settings.internal_token,
        ) {
            tracing::warn!(
                "query.internal_token is the built-in development token while the query service \
                 listens on {}: set CHAUKAS_QUERY__INTERNAL_TOKEN (and every gateway's \
                 CHAUKAS_GATEWAY__QUERY_TOKEN) from a secret",
                self.settings.grpc_listen
            );
        }
        tokio::spawn(cancel_reads_on_disconnect(
            service.clickhouse.clone(),
            stop.clone(),
        ));
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
            health::routes(ready, Arc::new(registry)),
            stop.clone().cancelled_owned(),
        ));
        let grpc = tokio::spawn(
            tonic::transport::Server::builder()
                .max_concurrent_streams(256)
                .layer(check)
                .add_service(ChaukasServerServiceServer::new(service.clone()))
                .add_service(ChaukasClientServiceServer::new(service))
                .add_service(AuditLogServiceServer::new(log_reader))
                .add_service(SessionServiceServer::new(session_reader))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                    stop.clone().cancelled_owned(),
                ),
        );
        shutdown.await;
        stop.cancel();
        let (grpc, http) = tokio::join!(grpc, http);
        grpc.expect("grpc server task panicked")?;
        http.expect("http server task panicked")
            .map_err(ServiceError::Http)?;
        tracing::info!("query service stopped");
        Ok(())
    }
}

/// The ClickHouse setting that stops a read when its HTTP client disconnects (the caller went
/// away, so the gateway dropped the call). Newer servers have it; 18.16 does not, and there
/// `max_execution_time` alone bounds an abandoned read.
const CANCEL_ON_CLOSE: &str = "cancel_http_readonly_queries_on_client_close";

/// Asks the server (retrying until it answers) whether it knows [`CANCEL_ON_CLOSE`], and if
/// so switches the shared client to use it.
async fn cancel_reads_on_disconnect(
    shared: Arc<RwLock<clickhouse::Client>>,
    stop: CancellationToken,
) {
    let client = shared.read().expect("client lock").clone();
    loop {
        let known = client
            .query("SELECT count() FROM system.settings WHERE name = ?")
            .bind(CANCEL_ON_CLOSE)
            .fetch_one::<u64>()
            .await;
        match known {
            Ok(count) => {
                if count > 0 {
                    *shared.write().expect("client lock") =
                        client.with_setting(CANCEL_ON_CLOSE, "1");
                    tracing::info!("reads are cancelled on the server when their caller goes away");
                } else {
                    tracing::info!(
                        "this ClickHouse cannot cancel reads whose caller went away; \
                         max_execution_time bounds them"
                    );
                }
                return;
            }
            Err(_) => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

fn ingest_elsewhere(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is served by the gateway, not the query service"
    ))
}

/// The handlers of the query service, for both service names.
#[derive(Clone)]
struct QueryService {
    /// Replaced once, when the server turns out to cancel reads whose client went away.
    clickhouse: Arc<RwLock<clickhouse::Client>>,
    tokens: Arc<PageTokens>,
    metrics: Arc<QueryMetrics>,
    reads: Arc<guardrails::TenantReads>,
    max_page_bytes: usize,
}

impl QueryService {
    /// Whether this service's ClickHouse user can only read, as the server says (its half
    /// of `worm_retention`: gateways ask it). Unknown counts as no.
    async fn read_only(&self) -> bool {
        let client = self.client();
        let check = async {
            let version = chaukas_store::server_version(&client).await?;
            chaukas_store::confinement::check(&client, &version, Role::ReadOnly).await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
            Ok(Ok(confinement)) => confinement.confined,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot tell whether this service's user is read-only");
                false
            }
            Err(_) => false,
        }
    }

    fn client(&self) -> clickhouse::Client {
        self.clickhouse.read().expect("client lock").clone()
    }

    #[tracing::instrument(name = "query_events", skip_all, fields(tenant))]
    async fn query_events(&self, query: Option<QueryRequest>) -> Result<QueryResponse, Status> {
        let started = Instant::now();
        let result = async {
            let query = events::validate(query.unwrap_or_default(), &self.tokens)?;
            let _slot = self.reads.start(query.tenant())?;
            events::run(&self.client(), &query, &self.tokens, self.max_page_bytes).await
        }
        .await;
        self.metrics.observe("QueryEvents", started, result.is_ok());
        result.map_err(|error| error.to_status())
    }
}

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
            // It serves proofs of whatever is sealed; whether writers seal, gateways know.
            capabilities: Some(chaukas_proto::capabilities(
                false,
                self.read_only().await,
                true,
            )),
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
        request: Request<server::QueryEventsRequest>,
    ) -> Result<Response<server::QueryEventsResponse>, Status> {
        let response = QueryService::query_events(self, request.into_inner().query).await?;
        Ok(Response::new(server::QueryEventsResponse {
            response: Some(response),
        }))
    }

    #[tracing::instrument(name = "get_event_stats", skip_all)]
    async fn get_event_stats(
        &self,
        request: Request<server::GetEventStatsRequest>,
    ) -> Result<Response<server::GetEventStatsResponse>, Status> {
        let started = Instant::now();
        let request = request.get_ref();
        let result = async {
            let _slot = self.reads.start(&request.tenant_id)?;
            stats::run(&self.client(), request).await
        }
        .await;
        self.metrics
            .observe("GetEventStats", started, result.is_ok());
        result.map(Response::new).map_err(|error| error.to_status())
    }
}

#[tonic::async_trait]
impl ChaukasClientService for QueryService {
    async fn healthz(
        &self,
        _request: Request<client::HealthzRequest>,
    ) -> Result<Response<client::HealthzResponse>, Status> {
        Ok(Response::new(client::HealthzResponse {}))
    }

    async fn get_capabilities(
        &self,
        _request: Request<client::GetCapabilitiesRequest>,
    ) -> Result<Response<client::GetCapabilitiesResponse>, Status> {
        Ok(Response::new(client::GetCapabilitiesResponse {
            // It serves proofs of whatever is sealed; whether writers seal, gateways know.
            capabilities: Some(chaukas_proto::capabilities(
                false,
                self.read_only().await,
                true,
            )),
        }))
    }

    async fn ingest_event(
        &self,
        _request: Request<client::IngestEventRequest>,
    ) -> Result<Response<client::IngestEventResponse>, Status> {
        Err(ingest_elsewhere("IngestEvent"))
    }

    async fn ingest_event_batch(
        &self,
        _request: Request<client::IngestEventBatchRequest>,
    ) -> Result<Response<client::IngestEventBatchResponse>, Status> {
        Err(ingest_elsewhere("IngestEventBatch"))
    }

    async fn query_events(
        &self,
        request: Request<client::QueryEventsRequest>,
    ) -> Result<Response<client::QueryEventsResponse>, Status> {
        let response = QueryService::query_events(self, request.into_inner().query).await?;
        Ok(Response::new(client::QueryEventsResponse {
            response: Some(response),
        }))
    }
}
