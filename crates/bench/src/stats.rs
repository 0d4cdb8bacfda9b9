//! Latency samples and their percentiles.

use std::time::Duration;

/// Collected latencies.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `quantile` (0..=1) in milliseconds, nearest-rank; `None` without samples.
    pub fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1].as_secs_f64() * 1000.0)
    }

    /// p50, p99, p999 in milliseconds as JSON.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.len(),
            "p50_ms": self.quantile_ms(0.50),
            "p99_ms": self.quantile_ms(0.99),
            "p999_ms": self.quantile_ms(0.999),
        })
    }
}

/// `value` to 3 decimals, as ratios are reported.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `value` to 5 decimals, as CPU seconds per 1k events are reported.
pub fn round5(value: f64) -> f64 {
    (value * 100_000.0).round() / 100_000.0
}
