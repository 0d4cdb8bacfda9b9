//! The gateway: the one endpoint clients talk to.
//!
//! It serves both gRPC service names of the wire contract (`ChaukasServerService` and
//! `ChaukasClientService`) on one port, and the HTTP API the `chaukas-sdk` speaks on
//! another. It keeps no state of its own, so any number of replicas can run behind a load
//! balancer.

mod config;
mod grpc;
mod http;

use std::future::Future;
use std::net::SocketAddr;

use chaukas_common::health::{self, BindError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{GatewayConfig, GatewaySettings};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listen address is taken or not allowed.
    #[error(transparent)]
    Bind(#[from] BindError),
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
}

/// Binds the gRPC and HTTP listeners named in the configuration.
pub async fn bind(config: &GatewayConfig) -> Result<BoundGateway, GatewayError> {
    Ok(BoundGateway {
        grpc: health::bind(&config.gateway.grpc_listen).await?,
        http: health::bind(&config.gateway.http_listen).await?,
    })
}

impl BoundGateway {
    /// Where gRPC clients connect.
    pub fn grpc_addr(&self) -> SocketAddr {
        health::local_addr(&self.grpc)
    }

    /// Where HTTP clients connect.
    pub fn http_addr(&self) -> SocketAddr {
        health::local_addr(&self.http)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish before returning.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let stop = CancellationToken::new();
        tracing::info!(
            grpc = %self.grpc_addr(),
            http = %self.http_addr(),
            "gateway listening"
        );
        let grpc = grpc::serve(self.grpc, stop.clone().cancelled_owned());
        let http = http::serve(self.http, stop.clone().cancelled_owned());
        let grpc = tokio::spawn(grpc);
        let http = tokio::spawn(http);
        shutdown.await;
        stop.cancel();
        let (grpc, http) = tokio::join!(grpc, http);
        grpc.expect("grpc server task panicked")?;
        http.expect("http server task panicked")?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}
