//! The HTTP surface: health checks and metrics today; the SDK's ingestion routes join it.

use std::future::Future;

use axum::Router;
use chaukas_common::health;
use tokio::net::TcpListener;

use crate::GatewayError;

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    health::serve(listener, router, shutdown)
        .await
        .map_err(GatewayError::Http)
}
