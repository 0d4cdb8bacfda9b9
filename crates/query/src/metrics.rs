//! The query service's Prometheus metrics, served at `/metrics` on its HTTP port.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 2];

/// Latency and outcome per RPC.
pub struct QueryMetrics {
    requests: Family<Labels, Counter>,
    seconds: Family<[(&'static str, &'static str); 1], Histogram>,
}

impl QueryMetrics {
    /// Creates the metrics and registers them under `chaukas_query_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        };
        let registry = registry.sub_registry_with_prefix("chaukas_query");
        registry.register(
            "requests",
            "Requests by RPC and outcome (ok or error)",
            metrics.requests.clone(),
        );
        registry.register("seconds", "Request latency by RPC", metrics.seconds.clone());
        metrics
    }

    /// Records one request of `rpc` that started at `started`.
    pub fn observe(&self, rpc: &'static str, started: Instant, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.requests
            .get_or_create(&[("rpc", rpc), ("outcome", outcome)])
            .inc();
        self.seconds
            .get_or_create(&[("rpc", rpc)])
            .observe(started.elapsed().as_secs_f64());
    }
}
