//! The gateway: the one endpoint clients talk to.
//!
//! It serves both gRPC service names of the wire contract (`ChaukasServerService` and
//! `ChaukasClientService`) on one port, and health, metrics (and the HTTP API the
//! `chaukas-sdk` speaks) on another. It validates events, publishes them to JetStream and
//! answers only once JetStream has them. It keeps no state of its own, so any number of
//! replicas can run behind a load balancer.

mod access;
mod admission;
mod config;
mod grpc;
mod http;
mod http_body;
mod http_sessions;
mod http_tail;
mod http_ui;
mod ingest;
mod listener;
mod metrics;
mod otlp;
mod redaction;
mod service;
pub mod validate;
mod worm;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use chaukas_bus::BusError;
use chaukas_common::health::{self, BindError};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{GatewayConfig, GatewaySettings};
pub use ingest::{BatchOutcome, IngestError, Ingestor};
pub use metrics::GatewayMetrics;

/// How often stream setup is retried while NATS is unreachable at startup.
const STREAM_SETUP_RETRY: Duration = Duration::from_secs(2);

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listen address is taken or not allowed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The NATS settings are unusable.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Settings that contradict each other.
    #[error("invalid [gateway] settings: {0}")]
    InvalidSettings(String),
    /// The query service address is not a URL.
    #[error("invalid gateway.query_endpoint {endpoint:?}: {reason}")]
    QueryEndpoint {
        /// The configured value.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gRPC server failed while running.
    #[error("grpc server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed while running.
    #[error("http server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A gateway whose sockets are bound but which does not serve yet; binding first lets a
/// caller (or a test using port 0) learn the real addresses before traffic starts.
pub struct BoundGateway {
    grpc: TcpListener,
    http: TcpListener,
    /// OTLP's usual ports, serving the same as the two above.
    otlp_grpc: Option<TcpListener>,
    otlp_http: Option<TcpListener>,
    nats: async_nats::Client,
    ingestor: Arc<Ingestor>,
    query: service::QueryForwarder,
    guard: Arc<access::Guard>,
    redaction: Arc<redaction::RedactionGate>,
    worm: Arc<worm::WormStatus>,
    registry: Arc<Registry>,
    metrics: Arc<GatewayMetrics>,
    settings: GatewaySettings,
    /// The bus settings: the event stream's name also names the API key bucket.
    nats_config: chaukas_bus::NatsConfig,
}

/// Binds the listeners and starts connecting to NATS (which need not be up yet: requests
/// answer UNAVAILABLE and `/readyz` says why until it is).
pub async fn bind(config: &GatewayConfig) -> Result<BoundGateway, GatewayError> {
    config.nats.validate()?;
    let largest_body = admission::BYTE_COST.saturating_mul(config.gateway.max_request_bytes);
    if config.gateway.max_body_budget_bytes < largest_body {
        return Err(GatewayError::InvalidSettings(format!(
            "max_body_budget_bytes ({}) must be at least {} x max_request_bytes ({largest_body}), \
             or a request of the largest allowed size could never be admitted",
            config.gateway.max_body_budget_bytes,
            admission::BYTE_COST
        )));
    }
    if config.gateway.max_otlp_decoded_bytes > config.gateway.max_body_budget_bytes {
        return Err(GatewayError::InvalidSettings(format!(
            "max_otlp_decoded_bytes ({}) must not exceed max_body_budget_bytes ({}), which \
             pays for it",
            config.gateway.max_otlp_decoded_bytes, config.gateway.max_body_budget_bytes
        )));
    }
    let grpc = health::bind(&config.gateway.grpc_listen).await?;
    let http = health::bind(&config.gateway.http_listen).await?;
    let otlp_grpc = bind_if_set(&config.gateway.otlp_grpc_listen).await?;
    let otlp_http = bind_if_set(&config.gateway.otlp_http_listen).await?;
    let nats = config.nats.connect().await?;
    config.nats.refuse_mismatch(&nats).await?;
    let mut registry = Registry::default();
    let metrics = Arc::new(GatewayMetrics::register(&mut registry));
    let redaction = Arc::new(redaction::RedactionGate::default());
    let ingestor = Ingestor::new(
        nats.clone(),
        config.nats.clone(),
        config.gateway.clone(),
        metrics.clone(),
        redaction.clone(),
    );
    chaukas_proto::codec::set_max_batch_events(config.gateway.max_batch_events);
    let query = service::QueryForwarder::new(
        &config.gateway.query_endpoint,
        &config.gateway.query_token,
        Duration::from_millis(config.gateway.query_timeout_ms),
    )?;
    let guard = Arc::new(access::Guard::new(
        config.gateway.allow_unauthenticated,
        metrics.clone(),
    ));
    if config.gateway.allow_unauthenticated {
        tracing::warn!(
            "!!! gateway.allow_unauthenticated is ON: requests without an API key may write and \
             read ANY tenant. Use this on a laptop only; turn it off for anything shared. !!!"
        );
    }
    Ok(BoundGateway {
        grpc,
        http,
        otlp_grpc,
        otlp_http,
        query,
        guard,
        redaction,
        worm: Arc::default(),
        nats,
        ingestor: Arc::new(ingestor),
        registry: Arc::new(registry),
        metrics,
        settings: config.gateway.clone(),
        nats_config: config.nats.clone(),
    })
}

/// A listener, unless its address is empty (that port is not opened).
async fn bind_if_set(address: &str) -> Result<Option<TcpListener>, BindError> {
    if address.trim().is_empty() {
        return Ok(None);
    }
    health::bind(address).await.map(Some)
}

impl BoundGateway {
    /// Where OTLP/gRPC exporters connect by default, if that port is open.
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc.as_ref().map(health::local_addr)
    }

    /// Where OTLP/HTTP exporters connect by default, if that port is open.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http.as_ref().map(health::local_addr)
    }

    /// Where gRPC clients connect.
    pub fn grpc_addr(&self) -> SocketAddr {
        health::local_addr(&self.grpc)
    }

    /// Where HTTP clients connect.
    pub fn http_addr(&self) -> SocketAddr {
        health::local_addr(&self.http)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish (each waits at most the publish timeout) before returning.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let stop = CancellationToken::new();
        tracing::info!(
            grpc = %self.grpc_addr(),
            http = %self.http_addr(),
            otlp_grpc = ?self.otlp_grpc_addr(),
            otlp_http = ?self.otlp_http_addr(),
            "gateway listening"
        );
        let streams_ready = Arc::new(AtomicBool::new(false));
        let setup = tokio::spawn(keep_setting_up(
            self.ingestor.clone(),
            self.guard.clone(),
            self.redaction.clone(),
            jetstream::new(self.nats.clone()),
            self.nats_config.clone(),
            streams_ready.clone(),
            stop.clone(),
        ));
        let worm_watch = tokio::spawn(worm::watch(
            self.worm.clone(),
            jetstream::new(self.nats.clone()),
            self.nats_config.clone(),
            self.query.clone(),
            stop.clone(),
        ));
        let nats = self.nats.clone();
        let guard = self.guard.clone();
        let redaction = self.redaction.clone();
        let ready = move || {
            let nats = nats.clone();
            let streams_ready = streams_ready.clone();
            let keys_loaded = guard.loaded();
            let policies_loaded = redaction.loaded();
            async move {
                if !chaukas_bus::is_connected(&nats) {
                    Err("not connected to NATS".to_owned())
                } else if !streams_ready.load(Ordering::Relaxed) {
                    Err(
                        "JetStream streams are not set up yet (`chaukas migrate` makes them)"
                            .to_owned(),
                    )
                } else if !keys_loaded {
                    Err("API keys are not loaded yet".to_owned())
                } else if !policies_loaded {
                    Err("privacy policies are not loaded yet".to_owned())
                } else {
                    Ok(())
                }
            }
        };
        let grpc_addr = self.grpc_addr();
        let http_addr = self.http_addr();
        let flush = self.nats.clone();
        let otlp_grpc = self.otlp_grpc_addr();
        let otlp_http = self.otlp_http_addr();
        let servers = self.spawn_servers(ready, &stop);
        tracing::debug!(%grpc_addr, %http_addr, ?otlp_grpc, ?otlp_http, "servers started");
        shutdown.await;
        tracing::info!("gateway draining in-flight requests");
        stop.cancel();
        let (servers, _, _) =
            tokio::join!(futures_util::future::join_all(servers), setup, worm_watch);
        for server in servers {
            server.expect("server task panicked")?;
        }
        // Every accepted request already waited for its ack; the flush only speeds up a
        // clean goodbye, so it must not hold the exit while NATS is away.
        match tokio::time::timeout(Duration::from_secs(2), flush.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "nats flush on shutdown failed"),
            Err(_) => tracing::warn!("nats flush on shutdown timed out"),
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

impl BoundGateway {
    /// Starts the gRPC and HTTP servers (each also on its OTLP port, if open), sharing one
    /// connection cap and one body budget.
    fn spawn_servers<Ready, ReadyFuture>(
        self,
        ready: Ready,
        stop: &CancellationToken,
    ) -> Vec<ServerTask>
    where
        Ready: Fn() -> ReadyFuture + Clone + Send + Sync + 'static,
        ReadyFuture: Future<Output = Result<(), String>> + Send + 'static,
    {
        let settings = self.settings.clone();
        let service = service::GatewayService {
            ingestor: self.ingestor.clone(),
            query: self.query.clone(),
            guard: self.guard.clone(),
            worm: self.worm.clone(),
            otlp: otlp::OtlpLimits {
                max_decoded_bytes: settings.max_otlp_decoded_bytes,
            },
        };
        let cap = listener::ConnectionCap::new(settings.max_connections, self.metrics.clone());
        let budget =
            admission::BodyBudget::new(settings.max_body_budget_bytes, self.metrics.clone());
        let admission = admission::GrpcAdmission {
            guard: self.guard.clone(),
            budget: budget.clone(),
            max_request_bytes: settings.max_request_bytes,
        };
        let limits = grpc::GrpcLimits {
            max_request_bytes: settings.max_request_bytes,
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
            max_concurrent_streams: settings.max_concurrent_streams,
        };
        let mut tasks = Vec::new();
        for listener in std::iter::once(self.grpc).chain(self.otlp_grpc) {
            tasks.push(tokio::spawn(grpc::serve(
                listener,
                service.clone(),
                admission.clone(),
                cap.clone(),
                limits,
                stop.clone().cancelled_owned(),
            )));
        }
        let body_timeout = Duration::from_millis(settings.body_timeout_ms);
        let router = http::router(
            http::HttpState {
                tails: Arc::new(http_tail::TailSlots::new(
                    settings.max_tails,
                    settings.max_tails_per_tenant,
                )),
                service,
                ingest_limits: Arc::new(http_body::BodyLimits {
                    max_bytes: settings.max_request_bytes,
                    timeout: body_timeout,
                    metrics: self.metrics.clone(),
                }),
                read_limits: Arc::new(http_body::BodyLimits {
                    max_bytes: settings.max_read_request_bytes,
                    timeout: body_timeout,
                    metrics: self.metrics.clone(),
                }),
                budget,
                stop: stop.clone(),
            },
            health::routes(ready, self.registry.clone()),
        );
        let header_timeout = Duration::from_millis(settings.header_read_timeout_ms);
        for listener in std::iter::once(self.http).chain(self.otlp_http) {
            let (router, cap, stop) = (router.clone(), cap.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                listener::serve_http(
                    listener,
                    router,
                    cap,
                    header_timeout,
                    stop.cancelled_owned(),
                )
                .await
                .map_err(GatewayError::Http)
            }));
        }
        tasks
    }
}

/// A running server's task.
type ServerTask = tokio::task::JoinHandle<Result<(), GatewayError>>;

/// Sets up the streams, then loads (and starts watching) the API keys and the privacy
/// policies, retrying while NATS is unreachable; the gateway is ready once all are done.
async fn keep_setting_up(
    ingestor: Arc<Ingestor>,
    guard: Arc<access::Guard>,
    redaction: Arc<redaction::RedactionGate>,
    jetstream: jetstream::Context,
    nats: chaukas_bus::NatsConfig,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    loop {
        let streams = if ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            ingestor.verify_streams().await
        };
        match streams {
            Ok(()) => {
                ready.store(true, Ordering::Relaxed);
                if !guard.loaded() {
                    match chaukas_auth::KeyStore::open_watched(&jetstream, &nats).await {
                        Ok(keys) => guard.load(keys),
                        Err(error) => tracing::warn!(%error, "loading API keys failed, retrying"),
                    }
                }
                if guard.loaded() {
                    match chaukas_policies::PolicyStore::open_watched(&jetstream, &nats).await {
                        Ok(policies) => {
                            redaction.load(policies);
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "loading privacy policies failed, retrying");
                        }
                    }
                }
            }
            Err(error @ chaukas_bus::BusError::Mismatch { .. }) => {
                tracing::error!(%error, "the bus differs from this gateway's configuration");
            }
            Err(error) => tracing::warn!(%error, "bus not ready, retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(STREAM_SETUP_RETRY) => {}
        }
    }
}
