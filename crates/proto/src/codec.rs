//! The gRPC codec of every Chaukas service: prost, with two guards on decoding.
//!
//! * Input that is not a valid message is the caller's fault: `INVALID_ARGUMENT` naming the
//!   message (prost's own codec answers `INTERNAL`, which reads as our bug and invites a retry).
//! * A batch request's events are counted on the wire before any is built. Decoding builds a
//!   whole `Event` struct (hundreds of bytes) for every two wire bytes of an empty event, so a
//!   16 MiB request of `1a 00` would cost gigabytes before the batch-size check could refuse it.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Most events a batch request may carry on the wire; see [`set_max_batch_events`].
static MAX_BATCH_EVENTS: AtomicUsize = AtomicUsize::new(1_000);

/// Sets the most events a batch request may carry before it is decoded. The codec is built
/// by generated code with `Default`, so the gateway's setting reaches it here; the largest
/// value set in this process wins, so one gateway never refuses what another accepts.
pub fn set_max_batch_events(max: usize) {
    MAX_BATCH_EVENTS.fetch_max(max, Ordering::Relaxed);
}

/// The codec named in the generated services (see `build.rs`).
#[derive(Debug, Clone)]
pub struct GuardedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for GuardedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for GuardedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = GuardedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        GuardedDecoder(PhantomData)
    }
}

/// Decodes `U` after the wire checks.
#[derive(Debug)]
pub struct GuardedDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for GuardedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        if is_batch_request::<U>() {
            check_batch_wire(buf.chunk()).map_err(Status::invalid_argument)?;
        }
        U::decode(buf).map(Some).map_err(|error| {
            Status::invalid_argument(format!(
                "the request is not a valid protobuf {}: {error}",
                short_type_name::<U>()
            ))
        })
    }
}

/// Refuses an encoded `IngestEventBatchRequest` with more events than allowed, before it is
/// decoded (gRPC does this in the codec, HTTP before its own decode).
pub fn check_batch_wire(request: &[u8]) -> Result<(), String> {
    let max = MAX_BATCH_EVENTS.load(Ordering::Relaxed);
    let events = count_batch_events(request);
    if events > max {
        return Err(format!(
            "event_batch.events has {events} events; at most {max} are accepted per request, \
             split the batch"
        ));
    }
    Ok(())
}

fn is_batch_request<U: 'static>() -> bool {
    let id = TypeId::of::<U>();
    id == TypeId::of::<crate::server::v1::IngestEventBatchRequest>()
        || id == TypeId::of::<crate::client::v1::IngestEventBatchRequest>()
}

fn short_type_name<U>() -> &'static str {
    let name = std::any::type_name::<U>();
    name.rsplit("::").next().unwrap_or(name)
}

/// Events in an encoded `IngestEventBatchRequest` (both services' requests have the same
/// shape: field 1 `event_batch`, whose field 3 is `events`), counted without decoding. Bytes
/// that are not valid wire format count what was seen so far; the decoder then refuses them.
pub fn count_batch_events(request: &[u8]) -> usize {
    let mut events = 0;
    for_each_field(request, |field, body| {
        if field == 1 {
            for_each_field(body, |inner, _| events += usize::from(inner == 3));
        }
    });
    events
}

/// Calls `visit(field number, bytes)` for every length-delimited field of a message and skips
/// the others; stops at the first malformed byte.
fn for_each_field(mut bytes: &[u8], mut visit: impl FnMut(u64, &[u8])) {
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else {
            return;
        };
        let length = match key & 7 {
            0 => match varint(&mut bytes) {
                Some(_) => continue,
                None => return,
            },
            1 => 8,
            5 => 4,
            2 => match varint(&mut bytes).and_then(|len| usize::try_from(len).ok()) {
                Some(len) => len,
                None => return,
            },
            _ => return,
        };
        if length > bytes.len() {
            return;
        }
        let (body, rest) = bytes.split_at(length);
        if key & 7 == 2 {
            visit(key >> 3, body);
        }
        bytes = rest;
    }
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1::{Event, EventBatch};
    use crate::server::v1::IngestEventBatchRequest;

    fn request(events: usize) -> Vec<u8> {
        IngestEventBatchRequest {
            event_batch: Some(EventBatch {
                batch_id: "b".into(),
                events: vec![
                    Event {
                        event_id: "e".into(),
                        ..Event::default()
                    };
                    events
                ],
                ..EventBatch::default()
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_events_without_decoding() {
        for events in [0, 1, 7, 1_001] {
            assert_eq!(count_batch_events(&request(events)), events);
        }
    }

    #[test]
    fn empty_events_on_the_wire_are_counted_too() {
        // `0a <len> (1a 00)*`: the attack shape, 2 wire bytes per event.
        let inner: Vec<u8> = std::iter::repeat_n([0x1a, 0x00], 5_000).flatten().collect();
        let mut wire = vec![0x0a];
        let mut length = inner.len();
        while length >= 0x80 {
            wire.push(u8::try_from(length & 0x7f).unwrap() | 0x80);
            length >>= 7;
        }
        wire.push(u8::try_from(length).unwrap());
        wire.extend(inner);
        assert_eq!(count_batch_events(&wire), 5_000);
    }

    #[test]
    fn garbage_counts_what_it_can_and_never_panics() {
        assert_eq!(count_batch_events(&[0xff; 32]), 0);
        assert_eq!(count_batch_events(&[0x0a, 0x05, 0x1a]), 0);
    }
}
