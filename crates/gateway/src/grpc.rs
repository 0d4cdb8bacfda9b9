//! The gRPC surface: both service names of the wire contract on one server.
//!
//! Clients generated from `chaukas-spec-client` call `chaukas.spec.client.v1.…`, those from
//! `chaukas-spec-server` call `chaukas.spec.server.v1.…`; each name is served its own
//! message types, both backed by the same [`Ingestor`]; reads are forwarded to the query
//! service.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaukas_auth::Scope;
use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_server::{
    ChaukasClientService, ChaukasClientServiceServer,
};
use chaukas_proto::common::v1::{Event, EventBatch, QueryRequest};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_proto::server::v1::chaukas_server_service_server::{
    ChaukasServerService, ChaukasServerServiceServer,
};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::GatewayError;
use crate::access::{Access, Guard};
use crate::ingest::{BatchOutcome, Ingestor};

/// The handlers behind both service names.
#[derive(Clone)]
pub(crate) struct GatewayService {
    pub(crate) ingestor: Arc<Ingestor>,
    pub(crate) query: QueryForwarder,
    pub(crate) guard: Arc<Guard>,
}

/// The `authorization` metadata of a call (`Bearer <key>`), as chaukas-sdk and gRPC clients
/// send it.
fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
}

/// Forwards reads to the query service, which scales apart from ingestion.
#[derive(Clone)]
pub(crate) struct QueryForwarder {
    client: ChaukasServerServiceClient<Channel>,
    endpoint: String,
}

impl QueryForwarder {
    /// A forwarder that connects on first use (and reconnects after failures), so the
    /// gateway starts and ingests even while the query service is down.
    pub(crate) fn new(endpoint: &str, timeout: Duration) -> Result<Self, GatewayError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|error| GatewayError::QueryEndpoint {
                endpoint: endpoint.to_owned(),
                reason: error.to_string(),
            })?
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            client: ChaukasServerServiceClient::new(channel)
                .max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES),
            endpoint: endpoint.to_owned(),
        })
    }

    fn unreachable(&self, status: Status) -> Status {
        // Statuses made from a connection failure carry its error as their source; those
        // the query service sends (e.g. ClickHouse unavailable) do not and pass unchanged.
        let from_transport = std::error::Error::source(&status).is_some();
        if status.code() == tonic::Code::Unavailable && from_transport {
            Status::unavailable(format!(
                "query service unreachable at {}; retry: {}",
                self.endpoint,
                status.message()
            ))
        } else {
            status
        }
    }

    pub(crate) async fn query_events(
        &self,
        query: Option<QueryRequest>,
    ) -> Result<server::QueryEventsResponse, Status> {
        self.client
            .clone()
            .query_events(server::QueryEventsRequest { query })
            .await
            .map(Response::into_inner)
            .map_err(|status| self.unreachable(status))
    }

    pub(crate) async fn get_event_stats(
        &self,
        request: server::GetEventStatsRequest,
    ) -> Result<server::GetEventStatsResponse, Status> {
        self.client
            .clone()
            .get_event_stats(request)
            .await
            .map(Response::into_inner)
            .map_err(|status| self.unreachable(status))
    }
}

/// Largest query response relayed: a page of 1000 events of up to 512 KiB each.
const MAX_QUERY_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

fn processed_at_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))
}

impl GatewayService {
    pub(crate) fn check(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<Access, Status> {
        self.guard
            .check(authorization, scope)
            .map_err(|error| error.to_status())
    }

    async fn ingest_event(&self, access: Access, event: Option<Event>) -> Result<String, Status> {
        let event = required(event, "event")?;
        let event_id = event.event_id.clone();
        self.ingestor
            .ingest_one(&access, event)
            .await
            .map_err(|error| error.to_status())?;
        Ok(event_id)
    }

    async fn ingest_batch(
        &self,
        access: Access,
        batch: Option<EventBatch>,
    ) -> Result<(String, BatchOutcome), Status> {
        let batch = required(batch, "event_batch")?;
        let outcome = self
            .ingestor
            .ingest_batch(&access, batch.events)
            .await
            .map_err(|error| error.to_status())?;
        for (event_id, rejection) in &outcome.rejected {
            tracing::debug!(event_id, %rejection, "event rejected");
        }
        Ok((batch.batch_id, outcome))
    }

    /// Confines the filter to what `access` (checked for `query`) may read, and forwards.
    pub(crate) async fn query(
        &self,
        access: &Access,
        query: Option<QueryRequest>,
    ) -> Result<server::QueryEventsResponse, Status> {
        let query = confine_query(access, query)?;
        self.query.query_events(query).await
    }

    /// Confines the scope to what `access` (checked for `stats`) may count, and forwards.
    pub(crate) async fn stats(
        &self,
        access: &Access,
        mut request: server::GetEventStatsRequest,
    ) -> Result<server::GetEventStatsResponse, Status> {
        access
            .confine(&mut request.tenant_id, &mut request.project_id)
            .map_err(Status::permission_denied)?;
        self.query.get_event_stats(request).await
    }
}

/// A query's filter confined to what `access` may read: empty tenant and project are filled
/// from the key, others must be the key's.
pub(crate) fn confine_query(
    access: &Access,
    query: Option<QueryRequest>,
) -> Result<Option<QueryRequest>, Status> {
    if matches!(access, Access::Anyone) {
        return Ok(query);
    }
    let mut query = query.unwrap_or_default();
    let filter = query.filter.get_or_insert_with(Default::default);
    access
        .confine(&mut filter.tenant_id, &mut filter.project_id)
        .map_err(|reason| Status::permission_denied(format!("filter.{reason}")))?;
    Ok(Some(query))
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
            capabilities: Some(chaukas_proto::capabilities(self.guard.enforced())),
        }))
    }

    async fn ingest_event(
        &self,
        request: Request<server::IngestEventRequest>,
    ) -> Result<Response<server::IngestEventResponse>, Status> {
        let access = self.check(authorization(&request), Scope::Ingest)?;
        let event_id =
            GatewayService::ingest_event(self, access, request.into_inner().event).await?;
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
        let access = self.check(authorization(&request), Scope::Ingest)?;
        let (batch_id, outcome) = self
            .ingest_batch(access, request.into_inner().event_batch)
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
        let access = self.check(authorization(&request), Scope::Query)?;
        self.query(&access, request.into_inner().query)
            .await
            .map(Response::new)
    }

    async fn get_event_stats(
        &self,
        request: Request<server::GetEventStatsRequest>,
    ) -> Result<Response<server::GetEventStatsResponse>, Status> {
        let access = self.check(authorization(&request), Scope::Stats)?;
        self.stats(&access, request.into_inner())
            .await
            .map(Response::new)
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
            capabilities: Some(chaukas_proto::capabilities(self.guard.enforced())),
        }))
    }

    async fn ingest_event(
        &self,
        request: Request<client::IngestEventRequest>,
    ) -> Result<Response<client::IngestEventResponse>, Status> {
        let access = self.check(authorization(&request), Scope::Ingest)?;
        GatewayService::ingest_event(self, access, request.into_inner().event).await?;
        Ok(Response::new(client::IngestEventResponse {}))
    }

    async fn ingest_event_batch(
        &self,
        request: Request<client::IngestEventBatchRequest>,
    ) -> Result<Response<client::IngestEventBatchResponse>, Status> {
        let access = self.check(authorization(&request), Scope::Ingest)?;
        self.ingest_batch(access, request.into_inner().event_batch)
            .await?;
        Ok(Response::new(client::IngestEventBatchResponse {}))
    }

    async fn query_events(
        &self,
        request: Request<client::QueryEventsRequest>,
    ) -> Result<Response<client::QueryEventsResponse>, Status> {
        let access = self.check(authorization(&request), Scope::Query)?;
        let response = self.query(&access, request.into_inner().query).await?;
        Ok(Response::new(client::QueryEventsResponse {
            response: response.response,
        }))
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    service: GatewayService,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    tonic::transport::Server::builder()
        .add_service(
            ChaukasServerServiceServer::new(service.clone())
                .max_decoding_message_size(max_request_bytes),
        )
        .add_service(
            ChaukasClientServiceServer::new(service).max_decoding_message_size(max_request_bytes),
        )
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
