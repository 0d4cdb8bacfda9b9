//! How accepted events travel from a gateway to a writer.
//!
//! A message's payload is a `chaukas.spec.common.v1.EventBatch` holding only `events`: the
//! published type, so any protobuf tool can read a dead letter. Packing and unpacking work
//! on the encoded bytes directly: no event is copied to build a batch, and the writer
//! stores each event's bytes exactly as they travelled. The gateway's acceptance
//! time rides in the [`INGEST_TIME_HEADER`] header: stamped once, before publishing, so a
//! redelivered message produces exactly the same rows.

use std::collections::BTreeMap;

use bytes::Bytes;
use chaukas_proto::common::v1::Event;
use prost::Message;
use sha2::{Digest, Sha256};

/// Header carrying the gateway's acceptance time, nanoseconds since the Unix epoch.
pub const INGEST_TIME_HEADER: &str = "Chaukas-Ingest-Time-Ns";

/// Protobuf field number of `EventBatch.events`.
const EVENT_BATCH_EVENTS_FIELD: u32 = 3;

/// The shard a tenant's events go to: FNV-1a of the tenant id. Part of the contract
/// between gateways and writers; changing it needs an empty stream.
pub fn shard_of(tenant_id: &str, shards: u16) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tenant_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u16::try_from(hash % u64::from(shards.max(1))).expect("a remainder of a u16 fits in u16")
}

/// `Nats-Msg-Id` of a message: a digest of the (tenant, event id) pairs it carries, so an
/// identical resend inside the duplicate window is dropped by JetStream itself.
pub fn message_id<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut digest = Sha256::new();
    for (tenant, event_id) in keys {
        for part in [tenant, event_id] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
    }
    digest
        .finalize()
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One message to publish: a shard's share of a request, under the size limit.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageChunk {
    /// The shard, and so the subject, it goes to.
    pub shard: u16,
    /// Encoded `EventBatch`.
    pub payload: Bytes,
    /// Its `Nats-Msg-Id`.
    pub message_id: String,
    /// How many events it carries.
    pub event_count: usize,
}

/// Packs events into messages: grouped by shard, in request order within a shard, each
/// payload at most `max_message_bytes` (an event larger than that travels alone; the
/// gateway's own event size limit keeps it under the server's maximum).
pub fn pack(events: &[Event], shards: u16, max_message_bytes: usize) -> Vec<MessageChunk> {
    let mut by_shard: BTreeMap<u16, Vec<&Event>> = BTreeMap::new();
    for event in events {
        by_shard
            .entry(shard_of(&event.tenant_id, shards))
            .or_default()
            .push(event);
    }
    let mut chunks = Vec::new();
    for (shard, events) in by_shard {
        let mut payload = Vec::new();
        let mut members: Vec<&Event> = Vec::new();
        for event in events {
            let size = prost::encoding::message::encoded_len(EVENT_BATCH_EVENTS_FIELD, event);
            if !members.is_empty() && payload.len() + size > max_message_bytes {
                chunks.push(finish(shard, &mut payload, &mut members));
            }
            prost::encoding::message::encode(EVENT_BATCH_EVENTS_FIELD, event, &mut payload);
            members.push(event);
        }
        if !members.is_empty() {
            chunks.push(finish(shard, &mut payload, &mut members));
        }
    }
    chunks
}

fn finish(shard: u16, payload: &mut Vec<u8>, members: &mut Vec<&Event>) -> MessageChunk {
    let chunk = MessageChunk {
        shard,
        payload: Bytes::from(std::mem::take(payload)),
        message_id: message_id(
            members
                .iter()
                .map(|event| (event.tenant_id.as_str(), event.event_id.as_str())),
        ),
        event_count: members.len(),
    };
    members.clear();
    chunk
}

/// A message as a writer reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The events, in the order the gateway accepted them, each with its exact encoding
    /// as carried in the message (what the audit trail stores, without re-encoding).
    pub events: Vec<(Event, Bytes)>,
    /// When the gateway accepted them, nanoseconds since the Unix epoch.
    pub ingest_time_ns: i64,
}

/// Why a message can never be stored; such messages go to the dead-letter stream.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload is not an encoded `EventBatch` of events.
    #[error("payload is not a chaukas.spec.common.v1.EventBatch of events: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An event's length points past the end of the payload.
    #[error("payload is truncated: an event runs past its end")]
    Truncated,
    /// The ingest time header is missing or not a number.
    #[error("header {INGEST_TIME_HEADER} is missing or not an integer")]
    IngestTime,
}

impl Envelope {
    /// Reads a message's payload and headers.
    pub fn decode(
        payload: &Bytes,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Result<Self, EnvelopeError> {
        let ingest_time_ns = headers
            .and_then(|headers| headers.get(INGEST_TIME_HEADER))
            .and_then(|value| value.as_str().parse().ok())
            .ok_or(EnvelopeError::IngestTime)?;
        Ok(Self {
            events: split_events(payload)?,
            ingest_time_ns,
        })
    }
}

/// Walks an encoded `EventBatch` and returns each event with the bytes it was encoded as.
/// Only `events` is expected (the gateway writes nothing else); other fields are skipped
/// as protobuf requires.
fn split_events(payload: &Bytes) -> Result<Vec<(Event, Bytes)>, EnvelopeError> {
    use prost::encoding::{WireType, decode_key, decode_varint, skip_field};

    let mut cursor = payload.clone();
    let mut events = Vec::new();
    while !cursor.is_empty() {
        let (field, wire_type) = decode_key(&mut cursor)?;
        if field == EVENT_BATCH_EVENTS_FIELD && wire_type == WireType::LengthDelimited {
            let length = usize::try_from(decode_varint(&mut cursor)?)
                .map_err(|_| EnvelopeError::Truncated)?;
            if length > cursor.len() {
                return Err(EnvelopeError::Truncated);
            }
            let bytes = cursor.split_to(length);
            events.push((Event::decode(bytes.clone())?, bytes));
        } else {
            skip_field(wire_type, field, &mut cursor, Default::default())?;
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: &str, id: &str, text_bytes: usize) -> Event {
        Event {
            event_id: id.into(),
            tenant_id: tenant.into(),
            agent_name: "x".repeat(text_bytes),
            ..Event::default()
        }
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("tenant-a", 8), shard_of("tenant-a", 8));
        let used: std::collections::HashSet<u16> = (0..100)
            .map(|i| shard_of(&format!("tenant-{i}"), 8))
            .collect();
        assert_eq!(used.len(), 8, "100 tenants should cover all 8 shards");
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn packing_keeps_every_event_once_in_order_and_under_the_limit() {
        let events: Vec<Event> = (0..300)
            .map(|i| event(&format!("t{}", i % 5), &format!("e{i}"), 1000))
            .collect();
        let chunks = pack(&events, 4, 64 * 1024);
        let mut seen = Vec::new();
        for chunk in &chunks {
            assert!(chunk.payload.len() <= 64 * 1024);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(INGEST_TIME_HEADER, "7");
            let envelope = Envelope::decode(&chunk.payload, Some(&headers)).unwrap();
            assert_eq!(envelope.events.len(), chunk.event_count);
            assert_eq!(envelope.ingest_time_ns, 7);
            for (event, bytes) in envelope.events {
                assert_eq!(bytes, event.encode_to_vec());
                assert_eq!(shard_of(&event.tenant_id, 4), chunk.shard);
                seen.push(event);
            }
        }
        assert_eq!(seen.len(), events.len());
        for tenant in 0..5 {
            let tenant = format!("t{tenant}");
            let sent: Vec<&Event> = events.iter().filter(|e| e.tenant_id == tenant).collect();
            let got: Vec<&Event> = seen.iter().filter(|e| e.tenant_id == tenant).collect();
            assert_eq!(sent, got, "order within a tenant is kept");
        }
    }

    #[test]
    fn an_oversized_event_travels_alone() {
        let events = vec![event("t", "small", 10), event("t", "big", 5000)];
        let chunks = pack(&events, 1, 1024);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].event_count, 1);
    }

    #[test]
    fn message_ids_depend_on_every_key_and_its_boundaries() {
        let a = message_id([("t", "e1"), ("t", "e2")]);
        assert_eq!(a, message_id([("t", "e1"), ("t", "e2")]));
        assert_ne!(a, message_id([("t", "e1")]));
        assert_ne!(message_id([("ab", "c")]), message_id([("a", "bc")]));
    }

    #[test]
    fn a_message_without_ingest_time_is_undecodable() {
        assert!(matches!(
            Envelope::decode(&Bytes::new(), None),
            Err(EnvelopeError::IngestTime)
        ));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(INGEST_TIME_HEADER, "1");
        assert!(matches!(
            Envelope::decode(&Bytes::from_static(&[0xff, 0xff]), Some(&headers)),
            Err(EnvelopeError::Decode(_))
        ));
    }
}
