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
    ModelStatsRequest, SessionResourceRequest, SessionResourceResponse, TailRequest, TailResponse,
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
enum View {
    Detail,
    Prov,
    Event(String),
}

/// The session id and view a path asks for. The path comes percent-encoded, as the caller
/// sent it, and is split before its segments are decoded: an id containing `/` is
/// addressable as `%2F`.
fn view_of(path: &str) -> Result<(String, View), QueryError> {
    let not_found = || {
        QueryError::NotFound(format!(
            "no such resource {path:?}: use /v1/sessions, /v1/sessions/{{id}}, \
             /v1/sessions/{{id}}/prov or /v1/sessions/{{id}}/events/{{event id}} \
             (with `/` in an id written %2F)"
        ))
    };
    let segments: Vec<String> = path
        .split('/')
        .map(percent_decoded)
        .collect::<Option<_>>()
        .ok_or_else(|| QueryError::invalid("the path is not valid percent-encoded UTF-8"))?;
    let (id, view) = match segments.as_slice() {
        [id] => (id, View::Detail),
        [id, prov] if prov == "prov" => (id, View::Prov),
        [id, events, event] if events == "events" && !event.is_empty() => {
            (id, View::Event(event.clone()))
        }
        _ => return Err(not_found()),
    };
    if id.is_empty() {
        return Err(not_found());
    }
    Ok((id.clone(), view))
}

/// `segment` with its `%XX` escapes decoded; `None` for a bad escape or bytes that are not
/// UTF-8.
fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
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
        let (id, view) = view_of(path)?;
        let session_id =
            detail::resolve(&self.clickhouse, tenant, &request.project_id, &id).await?;
        if let View::Event(event_id) = &view {
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

    async fn model_stats(
        &self,
        request: ModelStatsRequest,
    ) -> Result<SessionResourceResponse, QueryError> {
        if request.tenant_id.is_empty() {
            return Err(QueryError::invalid("a tenant is required"));
        }
        let _slot = self.reads.start(&request.tenant_id)?;
        let mut filter = crate::model_stats::ModelStatsFilter::parse(&request.query, now_ns())?;
        confine_project(&mut filter.project_id, &request.project_id)?;
        let stats = crate::model_stats::read(&self.clickhouse, &request.tenant_id, &filter).await?;
        Ok(json_body(JSON, &stats))
    }

    async fn list(
        &self,
        request: &SessionResourceRequest,
        now_ns: i64,
        idle_ns: i64,
    ) -> Result<ListPage, QueryError> {
        let (mut filter, token) = list::SessionFilter::parse(&request.query)?;
        confine_project(&mut filter.project_id, &request.project_id)?;
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

/// A project key's project (`key_project`, empty for a tenant key) replaces the filter's
/// empty one; another one is refused.
fn confine_project(filter: &mut String, key_project: &str) -> Result<(), QueryError> {
    if key_project.is_empty() {
        return Ok(());
    }
    if !filter.is_empty() && filter != key_project {
        return Err(QueryError::invalid(
            "project: this API key may only read its own project",
        ));
    }
    key_project.clone_into(filter);
    Ok(())
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

    async fn get_model_stats(
        &self,
        request: Request<ModelStatsRequest>,
    ) -> Result<Response<SessionResourceResponse>, Status> {
        self.model_stats(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| error.to_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(path: &str) -> Option<(String, String)> {
        view_of(path).ok().map(|(id, view)| {
            let view = match view {
                View::Detail => "detail".to_owned(),
                View::Prov => "prov".to_owned(),
                View::Event(event) => format!("event {event}"),
            };
            (id, view)
        })
    }

    #[test]
    fn paths_are_split_before_they_are_decoded() {
        let of = |id: &str, view: &str| Some((id.to_owned(), view.to_owned()));
        assert_eq!(parsed("s-1"), of("s-1", "detail"));
        assert_eq!(parsed("a%2Fb"), of("a/b", "detail"));
        assert_eq!(parsed("a%2Fb/prov"), of("a/b", "prov"));
        assert_eq!(parsed("a%2Fprov"), of("a/prov", "detail"));
        assert_eq!(parsed("a/events/e%2F1"), of("a", "event e/1"));
        assert_eq!(parsed("caf%C3%A9"), of("café", "detail"));
        assert_eq!(parsed("a/b"), None, "a bare slash is not part of an id");
        assert_eq!(parsed("a/events/"), None);
        assert_eq!(parsed("a/events/e/more"), None);
        assert!(matches!(view_of("%zz"), Err(QueryError::Invalid(_))));
        assert!(matches!(view_of("%C3"), Err(QueryError::Invalid(_))));
        assert!(matches!(view_of("%4"), Err(QueryError::Invalid(_))));
    }
}
