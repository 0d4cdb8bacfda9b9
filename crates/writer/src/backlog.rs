//! How old the oldest event still waiting to be stored is: the event stream is a work
//! queue, so its first message is exactly that. Exported as
//! `chaukas_writer_oldest_unstored_seconds`, and logged (at most every five minutes) once it
//! passes ten minutes or, with `nats.max_age_hours` set, half of that age limit, long before
//! JetStream would delete anything.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use chaukas_bus::NatsConfig;
use tokio_util::sync::CancellationToken;

use crate::metrics::WriterMetrics;

/// How often the stream is looked at.
const EVERY: Duration = Duration::from_secs(5);
/// Age past which a backlog is worth a log line even without an age limit.
const WARN_AFTER: Duration = Duration::from_secs(600);
/// Least time between two such lines.
const WARN_EVERY: Duration = Duration::from_secs(300);

/// Watches the event stream until `stop`.
pub async fn watch(
    jetstream: jetstream::Context,
    nats: NatsConfig,
    metrics: Arc<WriterMetrics>,
    stop: CancellationToken,
) {
    let warn_after = if nats.max_age_hours > 0 {
        WARN_AFTER.min(Duration::from_secs(nats.max_age_hours * 3600 / 2))
    } else {
        WARN_AFTER
    };
    let mut last_warning: Option<Instant> = None;
    loop {
        if let Some(age) = oldest_unstored(&jetstream, &nats).await {
            metrics
                .oldest_unstored_seconds
                .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
            let quiet = last_warning.is_some_and(|at| at.elapsed() < WARN_EVERY);
            if age >= warn_after && !quiet {
                last_warning = Some(Instant::now());
                tracing::warn!(
                    age_secs = age.as_secs(),
                    max_age_hours = nats.max_age_hours,
                    "the oldest accepted event has waited {} s to be stored; is ClickHouse \
                     reachable and are writers running?",
                    age.as_secs()
                );
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Age of the first message of the event stream (zero when empty); `None` when NATS does not
/// answer.
async fn oldest_unstored(jetstream: &jetstream::Context, nats: &NatsConfig) -> Option<Duration> {
    let mut stream = jetstream.get_stream(&nats.stream).await.ok()?;
    let state = stream.info().await.ok()?.state.clone();
    if state.messages == 0 {
        return Some(Duration::ZERO);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let first = u64::try_from(state.first_timestamp.unix_timestamp()).ok()?;
    Some(Duration::from_secs(now.saturating_sub(first)))
}
