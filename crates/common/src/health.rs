//! Health and metrics endpoints every service exposes on its HTTP port, shaped for
//! Kubernetes probes and Prometheus scrapes.
//!
//! `/healthz` (liveness) answers as long as the process serves requests at all; `/readyz`
//! (readiness) runs the service's own check of its dependencies and answers 503 with the
//! reason while they are not usable, so a load balancer stops routing to a replica that
//! cannot do its job without the orchestrator killing it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Routes `/healthz`, `/readyz` and `/metrics`; `ready` says why the service is not ready,
/// if it isn't; `metrics` is rendered in the Prometheus text format.
pub fn routes<Check, Fut>(ready: Check, metrics: Arc<Registry>) -> Router
where
    Check: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    let mut text = String::new();
                    match prometheus_client::encoding::text::encode(&mut text, &metrics) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        ),
                        Err(_) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            "cannot encode metrics".to_owned(),
                        ),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, "ready".to_owned()),
                        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                    }
                }
            }),
        )
}

/// Serves `router` on `listener` until `shutdown` resolves, letting requests in flight end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds a listener, naming the address in the error so a port clash is obvious.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_owned(),
        source,
    })
}

/// A listen address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address from the configuration.
    pub addr: String,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// The local address of a bound listener, for logs and tests.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound TCP listener has a local address")
}
