//! The sessions API's read side (docs/sessions.md), for gateways to serve over HTTP:
//! `GET /v1/sessions` (the list), `/v1/sessions/{id}` (one session, `{id}` may be a unique
//! prefix) and `/v1/sessions/{id}/prov` (its W3C PROV-O graph as JSON-LD); and the pages
//! the gateway's live tail (`GET /v1/tail`) is made of.
//!
//! Every read is confined to the tenant (and project) the gateway forwards, and shares the
//! tenant's read slots with its queries.

pub mod detail;
pub mod list;
pub mod outcome;
pub mod prov;
pub mod state;
pub mod tail;
mod tree;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chaukas_common::errors::ServiceError as _;
use chaukas_proto::internal::v1::session_service_server::SessionService;
use chaukas_proto::internal::v1::{
    SessionResourceRequest, SessionResourceResponse, TailRequest, TailResponse,
};
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::QueryError;
use crate::guardrails::TenantReads;
use crate::page_token::{Cursor, PageTokens};

const JSON: &str = "application/json";
const JSON_LD: &str = "application/ld+json";
/// One event, encoded: the gateway renders it in the OpenAPI JSON spelling.
pub const PROTOBUF_EVENT: &str = "application/x-protobuf; proto=chaukas.spec.common.v1.Event";

/// What a path under `/v1/sessions/{id}` asks for.
enum View<'a> {
    Detail,
    Prov,
    Event(&'a str),
}

/// Serves session resources from ClickHouse.
#[derive(Clone)]
pub struct SessionReader {
    clickhouse: clickhouse::Client,
    reads: Arc<TenantReads>,
    tokens: Arc<PageTokens>,
    /// A session without SESSION_END whose last event is older than this is abandoned.
    idle: Duration,
}

/// One page of the list.
#[derive(Debug, Serialize)]
struct ListPage {
    sessions: Vec<list::SessionRow>,
    /// Pass as `page_token` for the next page; absent on the last.
    #[serde(skip_serializing_if = "String::is_empty")]
    next_page_token: String,
}

impl SessionReader {
    /// A reader whose page tokens are signed by `tokens`.
    pub fn new(
        clickhouse: clickhouse::Client,
        reads: Arc<TenantReads>,
        tokens: Arc<PageTokens>,
        idle: Duration,
    ) -> Self {
        Self {
            clickhouse,
            reads,
            tokens,
            idle,
        }
    }

    async fn resource(
        &self,
        request: SessionResourceRequest,
    ) -> Result<SessionResourceResponse, QueryError> {
        let tenant = request.tenant_id.as_str();
        if tenant.is_empty() {
            return Err(QueryError::invalid("a tenant is required"));
        }
        let _slot = self.reads.start(tenant)?;
        let now_ns = now_ns();
        let idle_ns = i64::try_from(self.idle.as_nanos()).unwrap_or(i64::MAX);
        let path = request.path.trim_matches('/');
        if path.is_empty() {
            let page = self.list(&request, now_ns, idle_ns).await?;
            return Ok(json_body(JSON, &page));
        }
        let (id, view) = match (path.strip_suffix("/prov"), path.split_once("/events/")) {
            (Some(id), _) => (id, View::Prov),
            (None, Some((id, event_id))) => (id, View::Event(event_id)),
            (None, None) => (path, View::Detail),
        };
        let bad_event = matches!(view, View::Event(e) if e.is_empty() || e.contains('/'));
        if id.is_empty() || id.contains('/') || bad_event {
            return Err(QueryError::NotFound(format!(
                "no such resource {path:?}: use /v1/sessions, /v1/sessions/{{id}}, \
                 /v1/sessions/{{id}}/prov or /v1/sessions/{{id}}/events/{{event id}}"
            )));
        }
        let session_id = detail::resolve(&self.clickhouse, tenant, &request.project_id, id).await?;
        if let View::Event(event_id) = view {
            let event = detail::one_event(
                &self.clickhouse,
                tenant,
                &request.project_id,
                &session_id,
                event_id,
            )
            .await?;
            return Ok(SessionResourceResponse {
                content_type: PROTOBUF_EVENT.into(),
                body: prost::Message::encode_to_vec(&event),
            });
        }
        let filter = list::SessionFilter {
            project_id: request.project_id.clone(),
            session_id,
            page_size: 1,
            ..list::SessionFilter::default()
        };
        let detail = detail::read(&self.clickhouse, tenant, &filter, now_ns, idle_ns).await?;
        if matches!(view, View::Prov) {
            return Ok(json_body(JSON_LD, &prov::graph(tenant, &detail)));
        }
        Ok(json_body(JSON, &detail))
    }

    async fn list(
        &self,
        request: &SessionResourceRequest,
        now_ns: i64,
        idle_ns: i64,
    ) -> Result<ListPage, QueryError> {
        let (mut filter, token) = list::SessionFilter::parse(&request.query)?;
        if !request.project_id.is_empty() {
            if !filter.project_id.is_empty() && filter.project_id != request.project_id {
                return Err(QueryError::invalid(
                    "project: this API key may only read its own project",
                ));
            }
            filter.project_id = request.project_id.clone();
        }
        let digest = digest(&request.tenant_id, &filter);
        if !token.is_empty() {
            let cursor = self
                .tokens
                .open(&token, &digest)
                .map_err(|error| QueryError::invalid(format!("page_token: {error}")))?;
            let (session_id, project_id) = cursor
                .event_id
                .split_once('\u{0}')
                .ok_or_else(|| QueryError::invalid("page_token: not a sessions page token"))?;
            filter.after = Some((
                cursor.event_time_ns,
                session_id.to_owned(),
                project_id.to_owned(),
            ));
        }
        let mut sessions = list::read(
            &self.clickhouse,
            &request.tenant_id,
            &filter,
            now_ns,
            idle_ns,
        )
        .await?;
        let more = sessions.len() as u64 > filter.page_size;
        sessions.truncate(usize::try_from(filter.page_size).unwrap_or(usize::MAX));
        let next_page_token = match (more, sessions.last()) {
            (true, Some(last)) => self.tokens.issue(
                &Cursor {
                    event_time_ns: last.start_ns,
                    event_id: format!("{}\u{0}{}", last.session_id, last.project_id),
                },
                &digest,
            ),
            _ => String::new(),
        };
        Ok(ListPage {
            sessions,
            next_page_token,
        })
    }
}

/// What a list page token is bound to: the tenant and every filter.
fn digest(tenant: &str, filter: &list::SessionFilter) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!(
        "sessions\u{0}{tenant}\u{0}{}",
        filter.digest_input()
    ))
    .into()
}

fn json_body(content_type: &str, value: &impl Serialize) -> SessionResourceResponse {
    SessionResourceResponse {
        content_type: content_type.into(),
        body: serde_json::to_vec(value).expect("plain data serializes"),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[tonic::async_trait]
impl SessionService for SessionReader {
    async fn get_session_resource(
        &self,
        request: Request<SessionResourceRequest>,
    ) -> Result<Response<SessionResourceResponse>, Status> {
        self.resource(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| error.to_status())
    }

    async fn tail(&self, request: Request<TailRequest>) -> Result<Response<TailResponse>, Status> {
        let request = request.into_inner();
        if request.tenant_id.is_empty() {
            return Err(QueryError::invalid("a tenant is required").to_status());
        }
        let _slot = self
            .reads
            .start(&request.tenant_id)
            .map_err(|error| error.to_status())?;
        tail::read(&self.clickhouse, &request)
            .await
            .map(Response::new)
            .map_err(|error| error.to_status())
    }
}
