//! `chaukas healthcheck`: asks a running gateway (or query service) for `Healthz` over gRPC,
//! under every service name it should serve. Used by `make up` and container health
//! checks, where no gRPC tooling is installed.

use std::time::Duration;

use anyhow::Context;
use chaukas_proto::client::v1::HealthzRequest as ClientHealthz;
use chaukas_proto::client::v1::chaukas_client_service_client::ChaukasClientServiceClient;
use chaukas_proto::server::v1::HealthzRequest as ServerHealthz;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use tonic::transport::Endpoint;

/// Calls `Healthz` on `ChaukasServerService` and, unless `server_only`, on
/// `ChaukasClientService`; fails naming the first that does not answer.
pub async fn check(address: &str, server_only: bool) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(address.to_owned())
        .with_context(|| format!("invalid gRPC address {address:?}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    ChaukasServerServiceClient::new(channel.clone())
        .healthz(ServerHealthz {})
        .await
        .with_context(|| {
            format!("chaukas.spec.server.v1.ChaukasServerService/Healthz at {address}")
        })?;
    if !server_only {
        ChaukasClientServiceClient::new(channel)
            .healthz(ClientHealthz {})
            .await
            .with_context(|| {
                format!("chaukas.spec.client.v1.ChaukasClientService/Healthz at {address}")
            })?;
    }
    Ok(())
}
