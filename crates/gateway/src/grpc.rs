//! The gRPC surface: both service names of the wire contract on one server.
//!
//! Clients generated from `chaukas-spec-client` call `chaukas.spec.client.v1.…`, those from
//! `chaukas-spec-server` call `chaukas.spec.server.v1.…`; each name is served its own
//! message types.

use std::future::Future;

use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_server::{
    ChaukasClientService, ChaukasClientServiceServer,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_server::{
    ChaukasServerService, ChaukasServerServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::GatewayError;

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not available in this build of chaukas-server yet"
    ))
}

/// The handlers behind both service names.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayService;

#[tonic::async_trait]
impl ChaukasServerService for GatewayService {
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
        Err(not_yet("IngestEvent"))
    }

    async fn ingest_event_batch(
        &self,
        _request: Request<server::IngestEventBatchRequest>,
    ) -> Result<Response<server::IngestEventBatchResponse>, Status> {
        Err(not_yet("IngestEventBatch"))
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

#[tonic::async_trait]
impl ChaukasClientService for GatewayService {
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
            capabilities: Some(chaukas_proto::capabilities()),
        }))
    }

    async fn ingest_event(
        &self,
        _request: Request<client::IngestEventRequest>,
    ) -> Result<Response<client::IngestEventResponse>, Status> {
        Err(not_yet("IngestEvent"))
    }

    async fn ingest_event_batch(
        &self,
        _request: Request<client::IngestEventBatchRequest>,
    ) -> Result<Response<client::IngestEventBatchResponse>, Status> {
        Err(not_yet("IngestEventBatch"))
    }

    async fn query_events(
        &self,
        _request: Request<client::QueryEventsRequest>,
    ) -> Result<Response<client::QueryEventsResponse>, Status> {
        Err(not_yet("QueryEvents"))
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let service = GatewayService;
    tonic::transport::Server::builder()
        .add_service(ChaukasServerServiceServer::new(service.clone()))
        .add_service(ChaukasClientServiceServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await?;
    Ok(())
}
