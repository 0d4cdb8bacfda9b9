//! The gRPC surface: both service names of the wire contract on one server, as thin adapters
//! over [`GatewayService`].
//!
//! Clients generated from `chaukas-spec-client` call `chaukas.spec.client.v1.…`, those from
//! `chaukas-spec-server` call `chaukas.spec.server.v1.…`; each name is served its own
//! message types. Keys are checked from the metadata before a body is decoded
//! ([`GrpcAdmission`]); handlers take the checked access from the request.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_server::{
    ChaukasClientService, ChaukasClientServiceServer,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_server::{
    ChaukasServerService, ChaukasServerServiceServer,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::GatewayError;
use crate::admission::{GrpcAdmission, access_of};
use crate::listener::ConnectionCap;
use crate::service::GatewayService;

fn processed_at_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn count(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

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
            capabilities: Some(self.capabilities()),
        }))
    }

    async fn ingest_event(
        &self,
        request: Request<server::IngestEventRequest>,
    ) -> Result<Response<server::IngestEventResponse>, Status> {
        let access = access_of(&request)?;
        let event_id =
            GatewayService::ingest_event(self, &access, request.into_inner().event).await?;
        Ok(Response::new(server::IngestEventResponse {
            event_id,
            status: "accepted".into(),
            processed_at: processed_at_ms(),
        }))
    }

    async fn ingest_event_batch(
        &self,
        request: Request<server::IngestEventBatchRequest>,
    ) -> Result<Response<server::IngestEventBatchResponse>, Status> {
        let access = access_of(&request)?;
        let (batch_id, outcome) = self
            .ingest_batch(&access, request.into_inner().event_batch)
            .await?;
        Ok(Response::new(server::IngestEventBatchResponse {
            batch_id,
            accepted_count: count(outcome.accepted),
            rejected_count: count(outcome.rejected.len()),
            rejected_event_ids: outcome.rejected.into_iter().map(|(id, _)| id).collect(),
        }))
    }

    async fn query_events(
        &self,
        request: Request<server::QueryEventsRequest>,
    ) -> Result<Response<server::QueryEventsResponse>, Status> {
        let access = access_of(&request)?;
        self.query(&access, request.into_inner().query)
            .await
            .map(Response::new)
    }

    async fn get_event_stats(
        &self,
        request: Request<server::GetEventStatsRequest>,
    ) -> Result<Response<server::GetEventStatsResponse>, Status> {
        let access = access_of(&request)?;
        self.stats(&access, request.into_inner())
            .await
            .map(Response::new)
    }
}

/// Metadata naming the events a `ChaukasClientService.IngestEventBatch` refused: its answer
/// message is empty by contract, so this is the only place the caller can learn of them.
pub const REJECTED_METADATA: &str = "chaukas-rejected-event-ids";
/// Metadata with the number of refused events (the list above is capped).
pub const REJECTED_COUNT_METADATA: &str = "chaukas-rejected-count";
/// Most ids listed in [`REJECTED_METADATA`], so the header stays small.
const MAX_LISTED_REJECTIONS: usize = 100;

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
            capabilities: Some(self.capabilities()),
        }))
    }

    async fn ingest_event(
        &self,
        request: Request<client::IngestEventRequest>,
    ) -> Result<Response<client::IngestEventResponse>, Status> {
        let access = access_of(&request)?;
        GatewayService::ingest_event(self, &access, request.into_inner().event).await?;
        Ok(Response::new(client::IngestEventResponse {}))
    }

    /// Refused events are named in the answer's metadata (`chaukas-rejected-count`,
    /// `chaukas-rejected-event-ids`); when every event was refused the call fails with
    /// INVALID_ARGUMENT and the first reason, since nothing at all was stored.
    async fn ingest_event_batch(
        &self,
        request: Request<client::IngestEventBatchRequest>,
    ) -> Result<Response<client::IngestEventBatchResponse>, Status> {
        let access = access_of(&request)?;
        let (_, outcome) = self
            .ingest_batch(&access, request.into_inner().event_batch)
            .await?;
        if outcome.accepted == 0
            && let Some((event_id, rejection)) = outcome.rejected.first()
        {
            return Err(
                chaukas_common::errors::ErrorKind::BadRequest.status(format!(
                    "all {} events were rejected; the first, {event_id:?}: {rejection}",
                    outcome.rejected.len()
                )),
            );
        }
        let mut response = Response::new(client::IngestEventBatchResponse {});
        if !outcome.rejected.is_empty() {
            let metadata = response.metadata_mut();
            metadata.insert(
                REJECTED_COUNT_METADATA,
                tonic::metadata::MetadataValue::from(outcome.rejected.len()),
            );
            let ids: Vec<&str> = outcome
                .rejected
                .iter()
                .take(MAX_LISTED_REJECTIONS)
                .map(|(id, _)| id.as_str())
                .collect();
            if let Ok(value) = ids.join(",").parse() {
                metadata.insert(REJECTED_METADATA, value);
            }
        }
        Ok(response)
    }

    async fn query_events(
        &self,
        request: Request<client::QueryEventsRequest>,
    ) -> Result<Response<client::QueryEventsResponse>, Status> {
        let access = access_of(&request)?;
        let response = self.query(&access, request.into_inner().query).await?;
        Ok(Response::new(client::QueryEventsResponse {
            response: response.response,
        }))
    }
}

/// What bounds one gRPC server.
#[derive(Clone, Copy)]
pub(crate) struct GrpcLimits {
    pub(crate) max_request_bytes: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) max_concurrent_streams: u32,
}

pub(crate) async fn serve(
    listener: TcpListener,
    service: GatewayService,
    admission: GrpcAdmission,
    cap: ConnectionCap,
    limits: GrpcLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(admission)
        .add_service(
            ChaukasServerServiceServer::new(service.clone())
                .max_decoding_message_size(limits.max_request_bytes),
        )
        .add_service(
            ChaukasClientServiceServer::new(service.clone())
                .max_decoding_message_size(limits.max_request_bytes),
        )
        .add_service(crate::otlp::grpc::TraceServiceServer::new(
            service,
            limits.max_request_bytes,
        ))
        .serve_with_incoming_shutdown(cap.incoming(listener), shutdown)
        .await?;
    Ok(())
}
