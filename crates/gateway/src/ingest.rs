//! Accepting events: validate, publish to JetStream, answer only once JetStream has them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, message::PublishMessage};
use chaukas_bus::{INGEST_TIME_HEADER, MessageChunk, NatsConfig};
use chaukas_proto::common::v1::Event;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use chaukas_common::errors::{ErrorKind, ServiceError};

use crate::GatewaySettings;
use crate::access::Access;
use crate::metrics::GatewayMetrics;
use crate::redaction::{PolicyMemo, RedactionGate, Refused};
use crate::validate::{Rejection, validate};

/// How long a client should wait before retrying after UNAVAILABLE.
/// The error table's hint, so the message and the `retry-after` it travels with agree.
pub const RETRY_AFTER: Duration = chaukas_common::errors::DEFAULT_RETRY_AFTER;

/// Single events that arrive together share one publish: up to this many...
const MAX_GROUP_EVENTS: usize = 512;
/// ...or this many encoded bytes.
const MAX_GROUP_BYTES: usize = 1024 * 1024;
/// Group publishes awaiting their acks at once; while they wait, new arrivals form the next
/// group, so the group size follows the load.
const MAX_GROUPS_IN_FLIGHT: usize = 64;

/// Why a request was not accepted as a whole. Per-event problems in a batch are not errors:
/// they are reported in [`BatchOutcome`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The request itself is malformed (for example too many events).
    #[error("{0}")]
    InvalidRequest(String),
    /// The single event of an IngestEvent call is invalid.
    #[error("{0}")]
    InvalidEvent(Rejection),
    /// Too much is in flight already; the request was shed before any work. The wording
    /// "high memory usage" is what makes chaukas-sdk split its batch and resend.
    #[error(
        "gateway is shedding load (high memory usage): {inflight_limit_bytes} bytes of events are awaiting the bus; retry in {}s",
        RETRY_AFTER.as_secs()
    )]
    Overloaded {
        /// The configured in-flight limit.
        inflight_limit_bytes: usize,
    },
    /// No valid API key (missing, malformed, unknown, revoked, expired).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid key that may not do this (scope, or another tenant's or project's events).
    #[error("{0}")]
    PermissionDenied(String),
    /// The request is larger than any single request may be; smaller ones will do.
    #[error("{0}")]
    TooLarge(String),
    /// The gateway's memory budget for requests is spent right now; retry shortly.
    #[error(transparent)]
    BudgetSpent(#[from] crate::admission::BudgetSpent),
    /// JetStream did not take the events: unreachable, too slow, or its stream is full.
    #[error("event bus unavailable: {reason}; nothing was accepted, retry in {}s", RETRY_AFTER.as_secs())]
    Unavailable {
        /// What went wrong, for the caller and the logs.
        reason: String,
    },
}

impl ServiceError for IngestError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRequest(_) | Self::InvalidEvent(_) => ErrorKind::BadRequest,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::Forbidden,
            Self::TooLarge(_) => ErrorKind::TooLarge,
            Self::Overloaded { .. } | Self::Unavailable { .. } | Self::BudgetSpent(_) => {
                ErrorKind::Unavailable
            }
        }
    }
}

impl From<chaukas_auth::AuthError> for IngestError {
    fn from(error: chaukas_auth::AuthError) -> Self {
        if error.is_forbidden() {
            Self::PermissionDenied(error.to_string())
        } else {
            Self::Unauthenticated(error.to_string())
        }
    }
}

/// What happened to each event of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events JetStream acknowledged.
    pub accepted: usize,
    /// Ids of refused events with why, in request order.
    pub rejected: Vec<(String, Rejection)>,
}

/// Validates and publishes; shared by every gRPC and HTTP handler.
pub struct Ingestor {
    publisher: Arc<Publisher>,
    /// Tenant policies, applied to every valid event before it is published.
    redaction: Arc<RedactionGate>,
    /// Where IngestEvent calls queue to share a publish (group commit).
    singles: mpsc::Sender<Single>,
}

/// Packs events into bus messages and waits for JetStream's acks.
struct Publisher {
    jetstream: jetstream::Context,
    nats: NatsConfig,
    settings: GatewaySettings,
    inflight: Arc<Semaphore>,
    metrics: Arc<GatewayMetrics>,
}

/// One IngestEvent call waiting for its group's publish.
struct Single {
    event: Event,
    done: oneshot::Sender<Result<(), IngestError>>,
}

/// In-flight accounting is in KiB so the semaphore's permit count stays small.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

impl Ingestor {
    /// An ingestor publishing through `client`. Starts the task that groups single events,
    /// so it must be called within a Tokio runtime.
    pub fn new(
        client: async_nats::Client,
        nats: NatsConfig,
        settings: GatewaySettings,
        metrics: Arc<GatewayMetrics>,
        redaction: Arc<RedactionGate>,
    ) -> Self {
        let mut jetstream = jetstream::new(client);
        jetstream.set_timeout(Duration::from_millis(settings.publish_timeout_ms));
        let permits =
            usize::try_from(kib(settings.max_inflight_bytes).max(1)).unwrap_or(usize::MAX);
        let publisher = Arc::new(Publisher {
            jetstream,
            nats,
            inflight: Arc::new(Semaphore::new(permits)),
            settings,
            metrics,
        });
        let (singles, queue) = mpsc::channel(MAX_GROUP_EVENTS * MAX_GROUPS_IN_FLIGHT);
        tokio::spawn(group_singles(publisher.clone(), queue));
        Self {
            publisher,
            redaction,
            singles,
        }
    }

    /// Checks that the streams exist as configured (`chaukas migrate` makes them); retried
    /// by the caller while NATS is away or they do not exist yet.
    pub async fn verify_streams(&self) -> Result<(), chaukas_bus::BusError> {
        self.publisher
            .nats
            .verify_streams(&self.publisher.jetstream)
            .await
    }

    /// IngestEvent: the event is valid and stored on the bus, or an error says why not.
    ///
    /// Single events are many small requests; publishing each alone would cap them at the
    /// bus's per-message rate. They queue instead, and whatever has queued while earlier
    /// groups wait for their acks goes out as one publish (group commit): no added wait when
    /// idle, bigger groups under load.
    pub async fn ingest_one(&self, access: &Access, mut event: Event) -> Result<(), IngestError> {
        let settings = &self.publisher.settings;
        if let Err(rejection) = access.admit(&mut event) {
            self.publisher.metrics.rejected("forbidden", 1);
            return Err(IngestError::PermissionDenied(rejection.to_string()));
        }
        if let Err(rejection) = validate(&event, settings.max_event_bytes) {
            self.publisher.metrics.rejected(rejection.reason(), 1);
            return Err(IngestError::InvalidEvent(rejection));
        }
        match self.redaction.apply(
            &mut event,
            settings.max_event_bytes,
            &mut PolicyMemo::default(),
        ) {
            Ok(()) => {}
            Err(Refused::Event(rejection)) => {
                self.publisher.metrics.rejected(rejection.reason(), 1);
                return Err(IngestError::InvalidEvent(rejection));
            }
            Err(Refused::Request(error)) => return Err(error),
        }
        let (done, answer) = oneshot::channel();
        let gone = || IngestError::Unavailable {
            reason: "the gateway is shutting down".into(),
        };
        self.singles
            .send(Single { event, done })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// IngestEventBatch: invalid events are rejected alone, the valid rest is published;
    /// an error means none of the valid events was accepted.
    pub async fn ingest_batch(
        &self,
        access: &Access,
        events: Vec<Event>,
    ) -> Result<BatchOutcome, IngestError> {
        if events.len() > self.publisher.settings.max_batch_events {
            self.publisher
                .metrics
                .rejected("batch_too_large", events.len());
            return Err(IngestError::InvalidRequest(format!(
                "event_batch.events has {} events; at most {} are accepted per request, split the batch",
                events.len(),
                self.publisher.settings.max_batch_events
            )));
        }
        self.publisher
            .metrics
            .batch_events
            .observe(events.len() as f64);
        let mut outcome = BatchOutcome::default();
        let mut valid = Vec::with_capacity(events.len());
        let mut memo = PolicyMemo::default();
        for mut event in events {
            match self.admit(access, &mut event, &mut memo) {
                Ok(()) => valid.push(event),
                Err(Refused::Event(rejection)) => {
                    self.publisher.metrics.rejected(rejection.reason(), 1);
                    outcome.rejected.push((event.event_id, rejection));
                }
                Err(Refused::Request(error)) => return Err(error),
            }
        }
        if !valid.is_empty() {
            self.publisher.publish(&valid).await?;
        }
        outcome.accepted = valid.len();
        Ok(outcome)
    }

    /// OTLP spans mapped to events (`chaukas_otlp::Mapped`): each span's events are admitted
    /// together, in place, and stored whole, or the span is refused whole with its reason, so
    /// a stored trace never holds half a span. Returns the refusals (the mapping's and
    /// admission's); an error means none was accepted.
    pub async fn ingest_spans(
        &self,
        access: &Access,
        mapped: chaukas_otlp::Mapped,
    ) -> Result<chaukas_otlp::Refusals, IngestError> {
        let chaukas_otlp::Mapped {
            mut events,
            span_sizes,
            mut refused,
        } = mapped;
        let mut keep = vec![true; events.len()];
        let mut start = 0;
        let mut stored = 0;
        let mut memo = PolicyMemo::default();
        for size in span_sizes {
            let span = start..start + size;
            start += size;
            for event in &mut events[span.clone()] {
                match self.admit(access, event, &mut memo) {
                    Ok(()) => continue,
                    Err(Refused::Event(rejection)) => {
                        self.publisher.metrics.rejected(rejection.reason(), size);
                        refused.refuse(|| format!("span {}: {rejection}", event.span_id));
                    }
                    Err(Refused::Request(error)) => return Err(error),
                }
                keep[span.clone()].fill(false);
                break;
            }
            stored += usize::from(keep[span].iter().all(|&kept| kept));
        }
        let mut kept = keep.into_iter();
        events.retain(|_| kept.next().unwrap_or(false));
        if !events.is_empty() {
            self.publisher.publish(&events).await?;
        }
        let spans = &self.publisher.metrics.otlp_spans;
        spans
            .get_or_create(&[("outcome", "stored")])
            .inc_by(stored as u64);
        spans
            .get_or_create(&[("outcome", "refused")])
            .inc_by(refused.count);
        Ok(refused)
    }

    /// One event through the key's confinement, validation and the tenant's redaction.
    fn admit(
        &self,
        access: &Access,
        event: &mut Event,
        memo: &mut PolicyMemo,
    ) -> Result<(), Refused> {
        let max_event_bytes = self.publisher.settings.max_event_bytes;
        access
            .admit(event)
            .and_then(|()| validate(event, max_event_bytes))
            .map_err(Refused::Event)?;
        self.redaction.apply(event, max_event_bytes, memo)
    }
}

/// Collects queued single events into groups and publishes each group as one request.
async fn group_singles(publisher: Arc<Publisher>, mut queue: mpsc::Receiver<Single>) {
    let groups = Arc::new(Semaphore::new(MAX_GROUPS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = groups.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.event.encoded_len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_EVENTS && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.event.encoded_len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let (events, waiters): (Vec<Event>, Vec<_>) = group
                .into_iter()
                .map(|single| (single.event, single.done))
                .unzip();
            let result = publisher.publish(&events).await;
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
            drop(permit);
        });
    }
}

impl Publisher {
    #[tracing::instrument(name = "publish", skip_all, fields(events = events.len()))]
    async fn publish(&self, events: &[Event]) -> Result<(), IngestError> {
        // Packing encodes every event once; its payload sizes are the bytes held in flight,
        // so no separate pass over the events measures them again.
        let chunks = chaukas_bus::pack(events, self.nats.shards, self.nats.max_message_bytes);
        let bytes: usize = chunks.iter().map(|chunk| chunk.payload.len()).sum();
        let _permit = self.reserve(bytes)?;
        let started = Instant::now();
        let timeout = Duration::from_millis(self.settings.publish_timeout_ms);
        let result = tokio::time::timeout(timeout, self.publish_and_wait(chunks)).await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        let failure = match result {
            Ok(Ok(())) => {
                self.metrics.accepted.inc_by(events.len() as u64);
                return Ok(());
            }
            Ok(Err(reason)) => reason,
            Err(_) => self.timeout_message(),
        };
        self.metrics.publish_failures.inc();
        tracing::warn!(reason = %failure, events = events.len(), "publish failed");
        Err(IngestError::Unavailable { reason: failure })
    }

    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, IngestError> {
        // A request larger than the whole budget may still pass when nothing else is in
        // flight, rather than never.
        let budget = kib(self.settings.max_inflight_bytes).max(1);
        self.inflight
            .clone()
            .try_acquire_many_owned(kib(bytes).clamp(1, budget))
            .map_err(|_| {
                self.metrics.shed.inc();
                IngestError::Overloaded {
                    inflight_limit_bytes: self.settings.max_inflight_bytes,
                }
            })
    }

    async fn publish_and_wait(&self, chunks: Vec<MessageChunk>) -> Result<(), String> {
        let ingest_time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos())
            .to_string();
        let mut acks = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let publish = PublishMessage::build()
                .payload(chunk.payload)
                .message_id(&chunk.message_id)
                .header(INGEST_TIME_HEADER, ingest_time_ns.as_str());
            let ack = self
                .jetstream
                .send_publish(self.nats.shard_subject(chunk.shard), publish)
                .await
                .map_err(|error| self.describe(&error.to_string()))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|error| self.describe(&error.to_string()))?;
        }
        Ok(())
    }
}

impl Publisher {
    /// Turns a JetStream error into a sentence a caller can act on. The client's own ack
    /// timeout and ours are the same length, so either may fire first: both read the same.
    fn describe(&self, error: &str) -> String {
        if error.contains("maximum bytes") || error.contains("maximum messages") {
            format!("the event stream is full while storage catches up ({error})")
        } else if error.contains("no responders") {
            format!("no JetStream stream takes these events yet ({error})")
        } else if error.contains("timed out") {
            self.timeout_message()
        } else {
            error.to_owned()
        }
    }

    fn timeout_message(&self) -> String {
        format!(
            "JetStream did not acknowledge within {} ms",
            self.settings.publish_timeout_ms
        )
    }
}
