//! The gateway's one service: what every RPC and route does, whichever protocol carried it.
//!
//! gRPC (`grpc`) and HTTP (`http`) are thin adapters over [`GatewayService`]: they decode,
//! call it with the already-checked [`Access`], and encode. Its failures are `tonic::Status`es
//! built from the error table (`chaukas_common::errors`), which HTTP turns into the same
//! table's HTTP statuses, so the two protocols cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use chaukas_common::errors::{ErrorKind, ServiceError};
use chaukas_common::internal::TokenAttach;
use chaukas_proto::common::v1::{Event, EventBatch, QueryRequest};
use chaukas_proto::internal::v1::audit_log_service_client::AuditLogServiceClient;
use chaukas_proto::internal::v1::session_service_client::SessionServiceClient;
use chaukas_proto::internal::v1::{
    LogResourceRequest, LogResourceResponse, ModelStatsRequest, SessionResourceRequest,
    SessionResourceResponse, TailRequest, TailResponse,
};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};

use crate::GatewayError;
use crate::access::{Access, Guard};
use crate::ingest::{BatchOutcome, Ingestor};

/// Largest query answer relayed from the query service. Its pages stop at
/// `query.max_page_bytes` (8 MiB by default) plus one event, so this leaves room and bounds
/// what a misbehaving query service could make the gateway hold.
pub(crate) const MAX_QUERY_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The handlers behind both service names and every HTTP route.
#[derive(Clone)]
pub(crate) struct GatewayService {
    pub(crate) ingestor: Arc<Ingestor>,
    pub(crate) query: QueryForwarder,
    pub(crate) guard: Arc<Guard>,
    /// Whether write-once retention is enforced right now.
    pub(crate) worm: Arc<crate::worm::WormStatus>,
    /// What one OTLP export may cost once decoded.
    pub(crate) otlp: crate::otlp::OtlpLimits,
}

impl GatewayService {
    /// What this deployment does, as GetCapabilities reports it.
    pub(crate) fn capabilities(&self) -> chaukas_proto::common::v1::Capabilities {
        chaukas_proto::capabilities(
            self.guard.enforced(),
            self.worm.enforced(),
            self.worm.sealing(),
        )
    }
}

/// Forwards reads to the query service, which scales apart from ingestion.
#[derive(Clone)]
pub(crate) struct QueryForwarder {
    client: ChaukasServerServiceClient<InterceptedService<Channel, TokenAttach>>,
    log: AuditLogServiceClient<InterceptedService<Channel, TokenAttach>>,
    sessions: SessionServiceClient<InterceptedService<Channel, TokenAttach>>,
}

impl QueryForwarder {
    /// A forwarder that connects on first use (and reconnects after failures), so the
    /// gateway starts and ingests even while the query service is down.
    pub(crate) fn new(
        endpoint: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|error| GatewayError::QueryEndpoint {
                endpoint: endpoint.to_owned(),
                reason: error.to_string(),
            })?
            .timeout(timeout)
            .connect_lazy();
        Ok(Self {
            client: ChaukasServerServiceClient::with_interceptor(
                channel.clone(),
                TokenAttach::new(token),
            )
            .max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES),
            log: AuditLogServiceClient::with_interceptor(channel.clone(), TokenAttach::new(token))
                .max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES),
            sessions: SessionServiceClient::with_interceptor(channel, TokenAttach::new(token))
                .max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES),
        })
    }

    /// A status from the query service, re-made from its kind so nothing of the internal hop
    /// (addresses, transport errors) reaches the client.
    fn relayed(status: Status) -> Status {
        // Statuses made from a connection failure carry its error as their source; those
        // the query service sent do not, and keep their message.
        if std::error::Error::source(&status).is_some() {
            let message = chaukas_common::errors::internal(
                "query service unreachable; retry shortly",
                &status,
            );
            return ErrorKind::Unavailable.status(message);
        }
        let kind = ErrorKind::of_status(&status);
        kind.status(status.message())
    }

    /// What the query service says of itself (its user's confinement, for `worm_retention`).
    pub(crate) async fn capabilities(
        &self,
    ) -> Result<chaukas_proto::common::v1::Capabilities, Status> {
        self.client
            .clone()
            .get_capabilities(server::GetCapabilitiesRequest {})
            .await
            .map_err(Self::relayed)?
            .into_inner()
            .capabilities
            .ok_or_else(|| ErrorKind::Unavailable.status("the query service sent no capabilities"))
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
            .map_err(Self::relayed)
    }

    pub(crate) async fn log_resource(
        &self,
        request: LogResourceRequest,
    ) -> Result<LogResourceResponse, Status> {
        self.log
            .clone()
            .get_log_resource(request)
            .await
            .map(Response::into_inner)
            .map_err(Self::relayed)
    }

    pub(crate) async fn session_resource(
        &self,
        request: SessionResourceRequest,
    ) -> Result<SessionResourceResponse, Status> {
        self.sessions
            .clone()
            .get_session_resource(request)
            .await
            .map(Response::into_inner)
            .map_err(Self::relayed)
    }

    pub(crate) async fn model_stats(
        &self,
        request: ModelStatsRequest,
    ) -> Result<SessionResourceResponse, Status> {
        self.sessions
            .clone()
            .get_model_stats(request)
            .await
            .map(Response::into_inner)
            .map_err(Self::relayed)
    }

    pub(crate) async fn tail(&self, request: TailRequest) -> Result<TailResponse, Status> {
        self.sessions
            .clone()
            .tail(request)
            .await
            .map(Response::into_inner)
            .map_err(Self::relayed)
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
            .map_err(Self::relayed)
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Status> {
    value.ok_or_else(|| ErrorKind::BadRequest.status(format!("{field} is required")))
}

impl GatewayService {
    /// IngestEvent: the event's id once JetStream has it.
    pub(crate) async fn ingest_event(
        &self,
        access: &Access,
        event: Option<Event>,
    ) -> Result<String, Status> {
        let event = required(event, "event")?;
        let event_id = event.event_id.clone();
        self.ingestor
            .ingest_one(access, event)
            .await
            .map_err(|error| error.to_status())?;
        Ok(event_id)
    }

    /// IngestEventBatch: the batch's id and what happened to each event.
    pub(crate) async fn ingest_batch(
        &self,
        access: &Access,
        batch: Option<EventBatch>,
    ) -> Result<(String, BatchOutcome), Status> {
        let batch = required(batch, "event_batch")?;
        let outcome = self
            .ingestor
            .ingest_batch(access, batch.events)
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
            .map_err(|reason| ErrorKind::Forbidden.status(reason))?;
        self.query.get_event_stats(request).await
    }
}

impl GatewayService {
    /// A resource of `tenant`'s audit log (or, with `tenant` empty and path `key`, the log's
    /// key), for a caller whose key belongs to that tenant. A project-scoped key reads its
    /// tenant's log: it holds content hashes only, never content.
    pub(crate) async fn log_resource(
        &self,
        access: &Access,
        mut tenant: String,
        path: String,
    ) -> Result<LogResourceResponse, Status> {
        if path != "key" {
            if tenant.is_empty() {
                return Err(ErrorKind::BadRequest.status("the tenant in the path is empty"));
            }
            access
                .confine(&mut tenant, &mut String::new())
                .map_err(|reason| ErrorKind::Forbidden.status(reason))?;
        }
        self.query
            .log_resource(LogResourceRequest {
                tenant_id: tenant,
                path,
            })
            .await
    }
}

impl GatewayService {
    /// The sessions API (docs/sessions.md): `path` is "" for the list, "<id>" or
    /// "<id>/prov"; confined to the key's tenant (and project, for a project key).
    pub(crate) async fn session_resource(
        &self,
        access: &Access,
        path: String,
        query: String,
    ) -> Result<SessionResourceResponse, Status> {
        let (tenant, project) = confined_reader(access, &query)?;
        self.query
            .session_resource(SessionResourceRequest {
                tenant_id: tenant,
                project_id: project,
                path,
                query,
            })
            .await
    }

    /// Tokens, cost and calls by model (`GET /v1/stats/models`), confined like the sessions.
    pub(crate) async fn model_stats(
        &self,
        access: &Access,
        query: String,
    ) -> Result<SessionResourceResponse, Status> {
        let (tenant, project) = confined_reader(access, &query)?;
        self.query
            .model_stats(ModelStatsRequest {
                tenant_id: tenant,
                project_id: project,
                query,
            })
            .await
    }
}

/// The tenant and project a GET of the sessions API reads: the key's tenant, or `?tenant=`
/// (which a key's holder may give only as its own, and which dev mode needs); the key's
/// project for a project key.
fn confined_reader(access: &Access, query: &str) -> Result<(String, String), Status> {
    let mut tenant = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "tenant")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let mut project = String::new();
    access
        .confine(&mut tenant, &mut project)
        .map_err(|reason| ErrorKind::Forbidden.status(reason))?;
    if tenant.is_empty() {
        return Err(ErrorKind::BadRequest
            .status("tenant is required: without API keys (dev mode), pass ?tenant=<tenant id>"));
    }
    Ok((tenant, project))
}

impl GatewayService {
    /// One page of the live tail (docs/sessions.md), confined like the sessions API.
    pub(crate) async fn tail(
        &self,
        access: &Access,
        mut request: TailRequest,
    ) -> Result<TailResponse, Status> {
        access
            .confine(&mut request.tenant_id, &mut request.project_id)
            .map_err(|reason| ErrorKind::Forbidden.status(reason))?;
        if request.tenant_id.is_empty() {
            return Err(ErrorKind::BadRequest.status(
                "tenant is required: without API keys (dev mode), pass ?tenant=<tenant id>",
            ));
        }
        self.query.tail(request).await
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
        .map_err(|reason| ErrorKind::Forbidden.status(format!("filter.{reason}")))?;
    Ok(Some(query))
}
