//! The HTTP surface. Today: health checks for load balancers and Kubernetes probes.

use std::future::Future;

use chaukas_common::health;
use tokio::net::TcpListener;

use crate::GatewayError;

pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    // The gateway holds no connections of its own yet, so serving at all means ready.
    let router = health::routes(|| async { Ok(()) });
    health::serve(listener, router, shutdown)
        .await
        .map_err(GatewayError::Http)
}
