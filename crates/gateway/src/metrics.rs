//! The gateway's Prometheus metrics, served at `/metrics` on its HTTP port.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters and histograms of the ingestion path.
pub struct GatewayMetrics {
    /// Events JetStream acknowledged.
    pub accepted: Counter,
    /// Events refused, by reason (the offending field).
    pub rejected: Family<[(&'static str, &'static str); 1], Counter>,
    /// Requests shed because too much was in flight.
    pub shed: Counter,
    /// Publishes that failed (bus unreachable, slow or full).
    pub publish_failures: Counter,
    /// Time from publishing to the last JetStream ack of a request.
    pub publish_seconds: Histogram,
    /// Events per batch request.
    pub batch_events: Histogram,
    /// Requests refused for their credentials, by reason.
    pub auth_failures: Family<[(&'static str, &'static str); 1], Counter>,
    /// Connections open now (both listeners).
    pub connections_open: Gauge,
    /// Connections closed at once because the cap was reached.
    pub connections_refused: Counter,
    /// Requests ended because the client was too slow, by what it was doing (`reading_body`;
    /// slow headers are cut off inside hyper and not counted here).
    pub client_timeouts: Family<[(&'static str, &'static str); 1], Counter>,
    /// OTLP spans by outcome: `stored` (JetStream has their events) or `refused` (named in
    /// the export's `partial_success`).
    pub otlp_spans: Family<[(&'static str, &'static str); 1], Counter>,
}

impl GatewayMetrics {
    /// Creates the metrics and registers them under `chaukas_gateway_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            rejected: Family::default(),
            shed: Counter::default(),
            publish_failures: Counter::default(),
            publish_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            auth_failures: Family::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            client_timeouts: Family::default(),
            otlp_spans: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("chaukas_gateway");
        registry.register(
            "events_accepted",
            "Events acknowledged by JetStream",
            metrics.accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused, by the field that failed validation",
            metrics.rejected.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests refused because too many bytes were awaiting the bus",
            metrics.shed.clone(),
        );
        registry.register(
            "publish_failures",
            "Requests whose publish failed (bus unreachable, slow or full)",
            metrics.publish_failures.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time from publish to the last JetStream acknowledgement of a request",
            metrics.publish_seconds.clone(),
        );
        registry.register(
            "batch_events",
            "Events per batch request",
            metrics.batch_events.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused for their API key, by reason (missing, malformed, unknown, revoked, expired, scope)",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now on the gRPC and HTTP listeners",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because gateway.max_connections were open",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "client_timeouts",
            "Requests ended because the client was too slow, by what it was sending",
            metrics.client_timeouts.clone(),
        );
        registry.register(
            "otlp_spans",
            "OTLP spans, by outcome (stored, refused)",
            metrics.otlp_spans.clone(),
        );
        metrics
    }

    /// Counts `count` refused events under `reason`.
    pub fn rejected(&self, reason: &'static str, count: usize) {
        self.rejected
            .get_or_create(&[("reason", reason)])
            .inc_by(count as u64);
    }
}
