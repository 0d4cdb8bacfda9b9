//! The writer's Prometheus metrics, served at `/metrics` on its HTTP port.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set naming a shard.
pub type ShardLabel = [(&'static str, String); 1];

/// Counters, gauges and histograms of the storage path.
pub struct WriterMetrics {
    /// Rows inserted into `events`.
    pub rows_inserted: Counter,
    /// Events skipped because an earlier copy was already stored or claimed.
    pub duplicates_skipped: Counter,
    /// Messages received again after a failure or a crash.
    pub redeliveries: Counter,
    /// Messages moved to the dead-letter stream.
    pub dead_lettered: Counter,
    /// Flushes that failed and were handed back for redelivery.
    pub flush_failures: Counter,
    /// Duration of the `events` insert.
    pub insert_seconds: Histogram,
    /// Duration of the claims lookup and claims insert that precede it.
    pub claim_seconds: Histogram,
    /// Events per flush.
    pub batch_events: Histogram,
    /// Messages waiting in each owned shard's consumer (the lag).
    pub consumer_pending: Family<ShardLabel, Gauge>,
    /// Shards this writer holds a lease on.
    pub shards_owned: Gauge,
    /// Age of the oldest event waiting in the event stream to be stored, in seconds.
    pub oldest_unstored_seconds: Gauge,
}

impl WriterMetrics {
    /// Creates the metrics and registers them under `chaukas_writer_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rows_inserted: Counter::default(),
            duplicates_skipped: Counter::default(),
            redeliveries: Counter::default(),
            dead_lettered: Counter::default(),
            flush_failures: Counter::default(),
            insert_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            claim_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 18)),
            consumer_pending: Family::default(),
            shards_owned: Gauge::default(),
            oldest_unstored_seconds: Gauge::default(),
        };
        let registry = registry.sub_registry_with_prefix("chaukas_writer");
        registry.register(
            "rows_inserted",
            "Rows inserted into events",
            metrics.rows_inserted.clone(),
        );
        registry.register(
            "duplicates_skipped",
            "Events not inserted because an earlier copy was stored or claimed",
            metrics.duplicates_skipped.clone(),
        );
        registry.register(
            "redeliveries",
            "Messages delivered more than once",
            metrics.redeliveries.clone(),
        );
        registry.register(
            "dead_lettered",
            "Messages moved to the dead-letter stream because they can never be stored",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "flush_failures",
            "Flushes that failed and were handed back to JetStream for redelivery",
            metrics.flush_failures.clone(),
        );
        registry.register(
            "insert_seconds",
            "Duration of inserts into events",
            metrics.insert_seconds.clone(),
        );
        registry.register(
            "claim_seconds",
            "Duration of the claims lookup plus the claims insert of a flush",
            metrics.claim_seconds.clone(),
        );
        registry.register(
            "batch_events",
            "Events per flush",
            metrics.batch_events.clone(),
        );
        registry.register(
            "consumer_pending",
            "Messages waiting in a shard's consumer",
            metrics.consumer_pending.clone(),
        );
        registry.register(
            "shards_owned",
            "Shards this writer holds a lease on",
            metrics.shards_owned.clone(),
        );
        registry.register(
            "oldest_unstored_seconds",
            "Age of the oldest accepted event still waiting in JetStream to be stored",
            metrics.oldest_unstored_seconds.clone(),
        );
        metrics
    }
}
