//! Dead letters: messages no writer could store, kept with the reason until an operator
//! replays or removes them (`chaukas dead-letters list|replay`). Never dropped to make room:
//! the stream refuses new ones when full, and the writer then keeps the message waiting in
//! the event stream instead.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};

use crate::{BusError, NatsConfig};

/// Header with why the writer gave the message up.
pub const REASON_HEADER: &str = "Chaukas-Dead-Letter-Reason";
/// Header with the subject the message was first published to.
pub const SUBJECT_HEADER: &str = "Chaukas-Original-Subject";
/// Header with the message's sequence in the event stream.
pub const SEQUENCE_HEADER: &str = "Chaukas-Original-Sequence";
/// JetStream's de-duplication header; a replay must not carry it, or a replay within the
/// duplicate window would be dropped as a copy of the original.
const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";

/// One dead letter, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what `replay` takes).
    pub sequence: u64,
    /// When it was dead-lettered, Unix seconds.
    pub dead_lettered_at: i64,
    /// The subject it was first published to.
    pub original_subject: String,
    /// Why it could not be stored.
    pub reason: String,
    /// Payload size.
    pub bytes: usize,
}

fn failed(config: &NatsConfig, error: impl std::fmt::Display) -> BusError {
    BusError::Stream {
        stream: config.dead_letter_stream.clone(),
        reason: error.to_string(),
    }
}

async fn stream(js: &jetstream::Context, config: &NatsConfig) -> Result<Stream, BusError> {
    js.get_stream(&config.dead_letter_stream)
        .await
        .map_err(|error| failed(config, error))
}

/// The oldest `limit` dead letters.
pub async fn list(
    js: &jetstream::Context,
    config: &NatsConfig,
    limit: usize,
) -> Result<Vec<DeadLetter>, BusError> {
    let mut stream = stream(js, config).await?;
    let state = stream
        .info()
        .await
        .map_err(|error| failed(config, error))?
        .state
        .clone();
    let mut found = Vec::new();
    let mut sequence = state.first_sequence;
    while found.len() < limit && state.messages > 0 && sequence <= state.last_sequence {
        // Sequences of removed (replayed) letters are gaps; skip them.
        if let Ok(message) = stream.get_raw_message(sequence).await {
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default()
            };
            found.push(DeadLetter {
                sequence,
                dead_lettered_at: message.time.unix_timestamp(),
                original_subject: header(SUBJECT_HEADER),
                reason: header(REASON_HEADER),
                bytes: message.payload.len(),
            });
        }
        sequence += 1;
    }
    Ok(found)
}

/// Publishes dead letter `sequence` again to its original subject (without the dead-letter
/// headers), and removes it from the dead-letter stream once JetStream has the copy: a crash
/// in between leaves it in both places, and the writer stores an event only once anyway.
pub async fn replay(
    js: &jetstream::Context,
    config: &NatsConfig,
    sequence: u64,
) -> Result<String, BusError> {
    let stream = stream(js, config).await?;
    let message = stream
        .get_raw_message(sequence)
        .await
        .map_err(|error| failed(config, format!("dead letter {sequence}: {error}")))?;
    let subject = message
        .headers
        .get(SUBJECT_HEADER)
        .map(|value| value.as_str().to_owned())
        .ok_or_else(|| {
            failed(
                config,
                format!("dead letter {sequence} names no original subject"),
            )
        })?;
    let mut headers = HeaderMap::new();
    for (name, values) in message.headers.iter() {
        let name: &str = name.as_ref();
        if [
            REASON_HEADER,
            SUBJECT_HEADER,
            SEQUENCE_HEADER,
            MESSAGE_ID_HEADER,
        ]
        .contains(&name)
        {
            continue;
        }
        for value in values {
            headers.append(name, value.as_str());
        }
    }
    js.publish_with_headers(subject.clone(), headers, message.payload.clone())
        .await
        .map_err(|error| failed(config, error))?
        .await
        .map_err(|error| failed(config, error))?;
    stream
        .delete_message(sequence)
        .await
        .map_err(|error| failed(config, error))?;
    Ok(subject)
}
