//! Admission before decoding: what a request may cost is decided before it is spent.
//!
//! * **Body budget.** Every request body is read through [`BudgetBody`], which takes its
//!   bytes from one gateway-wide budget (`gateway.max_body_budget_bytes`) as they arrive:
//!   each data frame costs [`BYTE_COST`] times its length (the receive buffer, which grows by
//!   doubling, and what the bytes decode into) plus a fixed [`FRAME_COST`], so a body of
//!   one-byte chunks pays for its framing too. When the
//!   budget is spent the body fails at once and the request is refused with UNAVAILABLE / 503
//!   and a retry hint; nothing more of it is read. The bytes stay reserved until the answer
//!   is sent, because the decoded events live that long.
//! * **Keys first.** On gRPC, [`GrpcAdmission`] checks the API key from the metadata before
//!   the body is read, so a request without a valid key costs headers only; the handler finds
//!   the checked [`Access`] in the request extensions. (HTTP handlers check the header before
//!   they read the body.)

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use axum::http::{Request, Response};
use chaukas_auth::Scope;
use chaukas_common::errors::{ErrorKind, ServiceError};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

use crate::access::{Access, Guard, authorization};
use crate::metrics::GatewayMetrics;

/// What a body byte costs: measured under `make abuse`, a 16 MiB gRPC request peaks at about
/// three times its size (tonic's receive buffer grows by doubling, then the decoded copy).
pub const BYTE_COST: usize = 3;
/// What a data frame costs beyond its bytes: the frame's own bookkeeping.
pub const FRAME_COST: usize = 64;

/// Largest reservation tokio's semaphore can hand out at once.
const MAX_PERMITS_AT_ONCE: usize = u32::MAX as usize;

/// The gateway-wide budget of body bytes.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<GatewayMetrics>,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(limit.max(1))),
            limit: limit.max(1),
            metrics,
        }
    }

    /// A reservation for one request, empty until its body is read.
    pub fn reservation(&self) -> Arc<Reservation> {
        Arc::new(Reservation {
            budget: self.clone(),
            held: Mutex::new(None),
        })
    }
}

/// The bytes one request holds; given back when it is dropped (the answer was sent).
pub struct Reservation {
    budget: BodyBudget,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

/// The body budget is spent: refuse and let the client retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "gateway is shedding load (high memory usage): its {limit} bytes for request bodies are in use; retry shortly"
)]
pub struct BudgetSpent {
    /// The configured budget.
    pub limit: usize,
}

impl Reservation {
    /// Takes `bytes` more from the budget, or says it is spent. Never waits.
    pub fn take(&self, bytes: usize) -> Result<(), BudgetSpent> {
        let spent = || BudgetSpent {
            limit: self.budget.limit,
        };
        let wanted = u32::try_from(bytes.min(MAX_PERMITS_AT_ONCE)).map_err(|_| spent())?;
        let permit = self
            .budget
            .bytes
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| {
                self.budget.metrics.shed.inc();
                spent()
            })?;
        let mut held = self.held.lock().expect("reservation lock");
        match held.as_mut() {
            Some(existing) => existing.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A request body that pays for its frames from a [`Reservation`] as they arrive.
pub struct BudgetBody<B> {
    inner: B,
    reservation: Arc<Reservation>,
}

impl<B> BudgetBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, reservation: Arc<Reservation>) -> Self {
        Self { inner, reservation }
    }
}

impl<B> Body for BudgetBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                let cost = frame
                    .data_ref()
                    .map_or(FRAME_COST, |data| data.len() * BYTE_COST + FRAME_COST);
                match self.reservation.take(cost) {
                    Ok(()) => Some(Ok(frame)),
                    // A status, so tonic answers exactly this; HTTP finds it in the error.
                    Err(spent) => Some(Err(Box::new(
                        ErrorKind::Unavailable.status(spent.to_string()),
                    ))),
                }
            }
            Some(Err(error)) => Some(Err(error.into())),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// gRPC: key check from metadata, then the body on a budget; see the module docs.
#[derive(Clone)]
pub struct GrpcAdmission {
    pub(crate) guard: Arc<Guard>,
    pub(crate) budget: BodyBudget,
    /// The decoding limit, named when tonic refuses a message over it.
    pub(crate) max_request_bytes: usize,
}

impl<S> Layer<S> for GrpcAdmission {
    type Service = GrpcAdmitted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcAdmitted {
            inner,
            admission: self.clone(),
        }
    }
}

/// The service behind [`GrpcAdmission`].
#[derive(Clone)]
pub struct GrpcAdmitted<S> {
    inner: S,
    admission: GrpcAdmission,
}

/// The scope a gRPC method needs, by the last segment of its path; `None` for methods anyone
/// may call (health, capabilities).
fn scope_of(path: &str) -> Option<Scope> {
    match path.rsplit('/').next().unwrap_or("") {
        "IngestEvent" | "IngestEventBatch" | "Export" => Some(Scope::Ingest),
        "QueryEvents" => Some(Scope::Query),
        "GetEventStats" => Some(Scope::Stats),
        _ => None,
    }
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> Service<Request<tonic::body::Body>> for GrpcAdmitted<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        if let Some(scope) = scope_of(parts.uri.path()) {
            match self
                .admission
                .guard
                .check(authorization(&parts.headers), scope)
            {
                Ok(access) => {
                    parts.extensions.insert(access);
                }
                Err(error) => {
                    let status = error.to_status();
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        let reservation = self.admission.budget.reservation();
        // Handlers that decode by themselves (OTLP) pay what decoding will cost from it.
        parts.extensions.insert(reservation.clone());
        let body = tonic::body::Body::new(BudgetBody::new(body, reservation.clone()));
        let call = self.inner.call(Request::from_parts(parts, body));
        let max_request_bytes = self.admission.max_request_bytes;
        Box::pin(async move {
            let response = call.await;
            // The decoded request lived until the handler answered; only now is it gone.
            drop(reservation);
            response.map(|response| too_large_as_in_the_table(response, max_request_bytes))
        })
    }
}

/// The checked access a gRPC handler runs with (put there by [`GrpcAdmission`]).
pub(crate) fn access_of<T>(request: &tonic::Request<T>) -> Result<Access, tonic::Status> {
    request
        .extensions()
        .get::<Access>()
        .cloned()
        .ok_or_else(|| ErrorKind::Internal.status("request reached a handler without a key check"))
}

/// tonic refuses a message over its decoding limit with OUT_OF_RANGE; the error table says
/// RESOURCE_EXHAUSTED (HTTP's 413), with a message that says what to do.
fn too_large_as_in_the_table(
    response: Response<tonic::body::Body>,
    max_request_bytes: usize,
) -> Response<tonic::body::Body> {
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() == b"11");
    if !out_of_range {
        return response;
    }
    ErrorKind::TooLarge
        .status(format!(
            "the request is larger than {max_request_bytes} bytes; send smaller batches"
        ))
        .into_http()
}
