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

/// GETs `url` (e.g. `http://127.0.0.1:8081/readyz`) and fails unless it answers 200: the
/// check for the writer, which serves no gRPC, and for containers without curl or wget.
pub async fn check_http(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs are checked"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to {authority}"))?;
        let request = format!("GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .with_context(|| format!("{url} did not answer within 3 s"))??;
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        anyhow::bail!("{url} answered {status}: {body}");
    }
    Ok(())
}
