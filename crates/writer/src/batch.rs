//! What the writer holds between pulling messages and storing them: each message decoded
//! once ([`Held`]), and the batch they wait in until it is flushed ([`Batch`]).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chaukas_bus::Envelope;
use chaukas_store::EventRow;

use crate::consumer::ShardMessage;

/// A message the writer holds until it is stored (then acked) or handed back (nak).
pub struct Held {
    /// The shard it came from.
    pub(crate) shard: u16,
    /// The lease term it was pulled under: no write of it may start after that term.
    pub(crate) term: u64,
    /// The JetStream message, to ack or nak.
    pub(crate) message: jetstream::Message,
    /// Its sequence in the event stream.
    pub(crate) stream_seq: u64,
    /// How often JetStream has delivered it.
    pub(crate) delivered: i64,
    /// The message's rows, or why it can never be stored.
    pub(crate) content: Result<Vec<EventRow>, String>,
}

impl Held {
    /// Decodes a message as it arrives, so the batch knows its size in events.
    pub fn new(delivery: ShardMessage) -> Self {
        let (stream_seq, delivered) = delivery
            .message
            .info()
            .map_or((0, 1), |info| (info.stream_sequence, info.delivered));
        let content =
            Envelope::decode(&delivery.message.payload, delivery.message.headers.as_ref())
                .map(|envelope| {
                    envelope
                        .events
                        .iter()
                        .map(|(event, _)| EventRow::new(event, envelope.ingest_time_ns))
                        .collect()
                })
                .map_err(|error| error.to_string());
        Self {
            shard: delivery.shard,
            term: delivery.term,
            message: delivery.message,
            stream_seq,
            delivered,
            content,
        }
    }

    pub(crate) fn events(&self) -> usize {
        self.content.as_ref().map_or(1, Vec::len)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.message.payload.len()
    }
}

/// Messages waiting to be stored together.
#[derive(Default)]
pub struct Batch {
    held: Vec<Held>,
    events: usize,
    bytes: usize,
    oldest: Option<Instant>,
}

impl Batch {
    /// Adds a decoded message.
    pub fn push(&mut self, held: Held) {
        self.events += held.events();
        self.bytes += held.bytes();
        self.oldest.get_or_insert_with(Instant::now);
        self.held.push(held);
    }

    /// Events waiting.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Message bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages waiting.
    pub fn messages(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How long the oldest message has waited.
    pub fn age(&self) -> Duration {
        self.oldest
            .map_or(Duration::ZERO, |oldest| oldest.elapsed())
    }

    /// Hands back every held message of `shard` for immediate redelivery (its lease is gone
    /// or being given away) and forgets them.
    pub async fn hand_back_shard(&mut self, shard: u16) {
        for held in self.drop_shard(shard) {
            nak(&held.message, None).await;
        }
    }

    /// Forgets every held message of `shard` (its consumer is being re-created and will
    /// deliver them again) and returns them.
    pub fn drop_shard(&mut self, shard: u16) -> Vec<Held> {
        let (gone, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|held| held.shard == shard);
        self.events = kept.iter().map(Held::events).sum();
        self.bytes = kept.iter().map(Held::bytes).sum();
        if kept.is_empty() {
            self.oldest = None;
        }
        self.held = kept;
        gone
    }

    /// Puts back messages whose flush failed, to be retried in place.
    pub fn restore(&mut self, held: Vec<Held>) {
        for item in held {
            self.push(item);
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Held> {
        self.events = 0;
        self.bytes = 0;
        self.oldest = None;
        std::mem::take(&mut self.held)
    }
}

/// Hands a message back to JetStream for redelivery after `delay` (now when `None`).
pub async fn nak(message: &jetstream::Message, delay: Option<Duration>) {
    if let Err(error) = message.ack_with(AckKind::Nak(delay)).await {
        tracing::debug!(%error, "nak failed; the message is redelivered after ack_wait");
    }
}
