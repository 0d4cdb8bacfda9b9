//! `GET /v1/tail` (docs/sessions.md): the tenant's events as they are stored, as
//! Server-Sent Events. Each message's `id` is the event's leaf in the tenant's audit log;
//! reconnecting with `Last-Event-ID` resumes after it without loss or repeats.
//!
//! A connection costs bounded memory whatever its reader does: a task pages the query
//! service (at most one page ahead) into a buffer of [`BUFFER`] messages; a reader that
//! leaves it full for [`SLOW_READER`] is sent an `error` message saying so, and the stream
//! ends. Comments keep idle connections alive every [`HEARTBEAT`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chaukas_auth::Scope;
use chaukas_common::errors::ErrorKind;
use chaukas_proto::common::v1::{Event, EventType};
use chaukas_proto::internal::v1::TailRequest;
use futures_util::Stream;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::access::Access;
use crate::http::{HttpError, HttpState, authorize};
use crate::service::GatewayService;

/// Messages buffered per connection.
const BUFFER: usize = 64;
/// A reader that takes no message for this long while the buffer is full is cut off.
const SLOW_READER: Duration = Duration::from_secs(10);
/// How often an idle tail asks for new events.
const POLL: Duration = Duration::from_millis(200);
/// Comment lines on an idle connection, so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Leaves examined per page.
const PAGE: u32 = 200;
/// The tails open on one gateway, in all and per tenant (`gateway.max_tails`,
/// `gateway.max_tails_per_tenant`): each holds a connection and a paging task, so both are
/// bounded, and one tenant cannot take every slot from the others.
pub(crate) struct TailSlots {
    max: usize,
    max_per_tenant: usize,
    open: Mutex<OpenTails>,
}

#[derive(Default)]
struct OpenTails {
    total: usize,
    /// Only tenants with a tail open: an entry goes with its last tail.
    per_tenant: HashMap<String, usize>,
}

impl TailSlots {
    pub(crate) fn new(max: usize, max_per_tenant: usize) -> Self {
        Self {
            max,
            max_per_tenant,
            open: Mutex::default(),
        }
    }

    /// A slot for one more tail of `tenant`, or the 429 that says which limit is reached.
    fn take(self: &Arc<Self>, tenant: &str) -> Result<TailSlot, HttpError> {
        let mut open = self.open.lock().expect("tail slots lock");
        if open.total >= self.max {
            return Err(HttpError::new(
                ErrorKind::TooManyRequests,
                format!(
                    "this gateway already serves {} tails; retry later or elsewhere",
                    self.max
                ),
            ));
        }
        let held = open.per_tenant.get(tenant).copied().unwrap_or(0);
        if held >= self.max_per_tenant {
            return Err(HttpError::new(
                ErrorKind::TooManyRequests,
                format!(
                    "tenant {tenant:?} already has {held} tails open on this gateway, the most \
                     one tenant may; close one (or share one tail across readers)"
                ),
            ));
        }
        open.total += 1;
        *open.per_tenant.entry(tenant.to_owned()).or_default() += 1;
        Ok(TailSlot {
            slots: self.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

/// Counts an open tail for as long as its paging task runs.
struct TailSlot {
    slots: Arc<TailSlots>,
    tenant: String,
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("tail slots lock");
        open.total -= 1;
        if let Some(held) = open.per_tenant.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                open.per_tenant.remove(&self.tenant);
            }
        }
    }
}

/// `GET /v1/tail?[tenant=][&project=][&session=][&agent=][&type=…]`.
pub(crate) async fn tail(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let access = authorize(&state, &headers, Scope::Query)?;
    let mut request = parse(query.as_deref().unwrap_or_default())?;
    request.from_leaf = resume_point(&headers)?;
    // Confined here too (the query service confines again), so the slot is the tenant's.
    access
        .confine(&mut request.tenant_id, &mut request.project_id)
        .map_err(|reason| HttpError::new(ErrorKind::Forbidden, reason))?;
    let slot = state.tails.take(&request.tenant_id)?;
    // The first page answers now, so a refused tenant or filter is an HTTP error, not a
    // message inside an open stream.
    let service = state.service.clone();
    let first = service.tail(&access, request.clone()).await?;
    let (messages, received) = mpsc::channel(BUFFER);
    let (cut, cut_reason) = oneshot::channel();
    let stop = state.stop.clone();
    tokio::spawn(async move {
        let reason = tokio::select! {
            reason = page_loop(service, access, request, first, &messages) => reason,
            () = stop.cancelled() => Some(
                "the gateway is shutting down; reconnect with Last-Event-ID to resume".into(),
            ),
        };
        if let Some(reason) = reason {
            let _ = cut.send(reason);
        }
        drop(slot);
    });
    Ok(Sse::new(stream(received, cut_reason))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response())
}

/// The filters from the query string; unknown parameters are refused by name.
fn parse(query: &str) -> Result<TailRequest, HttpError> {
    let mut request = TailRequest {
        limit: PAGE,
        ..TailRequest::default()
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "tenant" => request.tenant_id = value,
            "project" => request.project_id = value,
            "session" => request.session_id = value,
            "agent" => request.agent = value,
            // Each type once: a URL repeating one type thousands of times must not make
            // every event's filter check that long.
            "type" => {
                let kind = event_type(&value)?;
                if !request.types.contains(&kind) {
                    request.types.push(kind);
                }
            }
            other => {
                return Err(bad_request(format!(
                    "unknown parameter {other:?}; the tail takes tenant, project, session, agent and type"
                )));
            }
        }
    }
    Ok(request)
}

/// An event type by name, with or without its `EVENT_TYPE_` prefix (`TOOL_CALL_START`).
fn event_type(name: &str) -> Result<i32, HttpError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("EVENT_TYPE_") {
        upper
    } else {
        format!("EVENT_TYPE_{upper}")
    };
    EventType::from_str_name(&full)
        .filter(|kind| *kind != EventType::Unspecified)
        .map(|kind| kind as i32)
        .ok_or_else(|| {
            bad_request(format!(
                "type {name:?} is not an event type (e.g. TOOL_CALL_START)"
            ))
        })
}

/// Where to start: after the leaf in `Last-Event-ID`, or from now.
fn resume_point(headers: &HeaderMap) -> Result<i64, HttpError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(-1);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|leaf| (0..i64::MAX).contains(leaf))
        .map(|leaf| leaf + 1)
        .ok_or_else(|| {
            bad_request("Last-Event-ID must be the id of a message this tail sent (a leaf index)")
        })
}

fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError::new(ErrorKind::BadRequest, message.into())
}

/// Pages the query service into `messages` until the reader goes away (`None`), is too
/// slow, or a page fails for good (`Some` reason, told to the reader).
async fn page_loop(
    service: GatewayService,
    access: Access,
    mut request: TailRequest,
    mut page: chaukas_proto::internal::v1::TailResponse,
    messages: &mpsc::Sender<SseEvent>,
) -> Option<String> {
    loop {
        let idle = page.events.is_empty();
        for tail_event in page.events {
            let message = render(tail_event.leaf_index, &tail_event.event);
            match messages.send_timeout(message, SLOW_READER).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    return Some(format!(
                        "reader too slow: {BUFFER} messages unread for {} s; reconnect with Last-Event-ID to resume",
                        SLOW_READER.as_secs()
                    ));
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return None,
            }
        }
        request.from_leaf = i64::try_from(page.next_leaf).unwrap_or(i64::MAX);
        if idle {
            tokio::time::sleep(POLL).await;
            if messages.is_closed() {
                return None;
            }
        }
        page = loop {
            match service.tail(&access, request.clone()).await {
                Ok(page) => break page,
                Err(status) => match ErrorKind::of_status(&status) {
                    ErrorKind::Unavailable | ErrorKind::TooManyRequests | ErrorKind::Timeout => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if messages.is_closed() {
                            return None;
                        }
                    }
                    _ => return Some(status.message().to_owned()),
                },
            }
        };
    }
}

/// One SSE message: `id` the leaf, `data` the event in the OpenAPI JSON spelling.
fn render(leaf_index: u64, encoded: &[u8]) -> SseEvent {
    let json = Event::decode(encoded)
        .ok()
        .and_then(|event| chaukas_json::to_openapi(&event).ok())
        .map(|value| value.to_string())
        .unwrap_or_else(|| "{}".to_owned());
    SseEvent::default().id(leaf_index.to_string()).data(json)
}

/// The messages, then (if the loop cut the connection) an `error` message saying why.
fn stream(
    received: mpsc::Receiver<SseEvent>,
    cut_reason: oneshot::Receiver<String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(
        (received, Some(cut_reason)),
        |(mut received, cut_reason)| async move {
            if let Some(message) = received.recv().await {
                return Some((Ok(message), (received, cut_reason)));
            }
            let reason = cut_reason?.await.ok()?;
            Some((
                Ok(SseEvent::default().event("error").data(reason)),
                (received, None),
            ))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_each_type_once_and_refuse_unknown_parameters() {
        let repeated = "type=ERROR&".repeat(5_000) + "type=event_type_error&type=TOOL_CALL_END";
        let request = parse(&repeated).unwrap();
        assert_eq!(
            request.types,
            vec![EventType::Error as i32, EventType::ToolCallEnd as i32]
        );
        assert!(parse("type=NOPE").is_err());
        assert!(parse("colour=red").is_err());
    }
}
