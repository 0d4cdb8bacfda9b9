use std::time::Duration;

use chaukas_bus::NatsConfig;
use chaukas_store::ClickHouseConfig;
use serde::{Deserialize, Serialize};

/// Everything the writer reads from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterConfig {
    /// The `[writer]` section (`CHAUKAS_WRITER__*`).
    pub writer: WriterSettings,
    /// The shared `[nats]` section (`CHAUKAS_NATS__*`).
    pub nats: NatsConfig,
    /// The shared `[clickhouse]` section (`CHAUKAS_CLICKHOUSE__*`).
    pub clickhouse: ClickHouseConfig,
    /// The shared `[log]` section (`CHAUKAS_LOG__*`): the audit log's name and keys.
    pub log: chaukas_audit::LogConfig,
}

/// The `[writer]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// HTTP listen address for health checks and metrics.
    pub http_listen: String,
    /// Flush when this many events are waiting. Under load a writer inserts this many rows
    /// at a time (ClickHouse wants few, large inserts).
    pub max_batch_events: usize,
    /// Flush when the waiting messages hold this many bytes, however few events they are:
    /// a flood of large events must not grow the writer's memory (each byte is held about
    /// three times: message, decoded event, row).
    pub max_batch_bytes: usize,
    /// Flush when the oldest waiting message is this old, in ms: the latency floor from
    /// acceptance to queryable (with the claim and insert time), and about three inserts per
    /// second per writer when quiet.
    pub max_batch_age_ms: u64,
    /// Longest a single ClickHouse statement may take before it counts as failed; a hung
    /// database becomes a retry instead of a stuck writer.
    pub statement_timeout_ms: u64,
    /// JetStream's redelivery timer for messages a writer holds; in-progress acks extend
    /// it while a long insert runs.
    pub ack_wait_secs: u64,
    /// Lifetime of a shard lease without renewal. A writer stops writing a shard well
    /// before its lease could expire (see `fencing_margin`), so two writers never write
    /// the same shard at once.
    pub lease_ttl_secs: u64,
    /// How often leases are renewed and rebalanced, in ms.
    pub lease_renew_ms: u64,
    /// Longest delay before a failed message is redelivered (exponential backoff up to it).
    pub max_retry_delay_secs: u64,
    /// Database of the writer's scratch tables (insert stages, claim lookups); empty: the
    /// events database. With a database of their own, made by `chaukas migrate`, and a
    /// `scratch_user` confined to it, the writer's main ClickHouse user needs no DDL and can
    /// be insert-only, so nothing the writer holds can delete events (docs/privacy.md).
    pub scratch_database: String,
    /// User for the scratch tables (empty: the main user).
    pub scratch_user: String,
    /// Its password; set it from a secret (`CHAUKAS_WRITER__SCRATCH_PASSWORD`).
    pub scratch_password: String,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:8081".into(),
            max_batch_events: 20_000,
            max_batch_bytes: 64 * 1024 * 1024,
            max_batch_age_ms: 300,
            statement_timeout_ms: 10_000,
            ack_wait_secs: 30,
            lease_ttl_secs: 30,
            lease_renew_ms: 3_000,
            max_retry_delay_secs: 30,
            scratch_database: String::new(),
            scratch_user: String::new(),
            scratch_password: String::new(),
        }
    }
}

impl WriterSettings {
    /// Where the scratch tables are: next to `events` by default, else in
    /// `scratch_database` reached as `scratch_user` (or the main user).
    pub fn scratch(
        &self,
        clickhouse: &ClickHouseConfig,
        main: &clickhouse::Client,
    ) -> Result<chaukas_store::scratch::Scratch, chaukas_store::StoreError> {
        if self.scratch_database.is_empty() {
            return Ok(chaukas_store::scratch::Scratch::beside_events(main.clone()));
        }
        let mut scratch = clickhouse.clone();
        scratch.database.clone_from(&self.scratch_database);
        if !self.scratch_user.is_empty() {
            scratch.user.clone_from(&self.scratch_user);
            scratch.password.clone_from(&self.scratch_password);
        }
        chaukas_store::scratch::Scratch::separate(scratch.client()?, &self.scratch_database)
    }

    /// Time after a successful renewal during which this writer may still start a
    /// statement that writes: the lease TTL less one statement timeout less two renewal
    /// periods of slack. Anything started inside it ends before the lease can expire.
    pub fn fencing_margin(&self) -> Result<Duration, String> {
        let ttl = Duration::from_secs(self.lease_ttl_secs);
        let reserved = Duration::from_millis(self.statement_timeout_ms + 2 * self.lease_renew_ms);
        ttl.checked_sub(reserved)
            .filter(|margin| !margin.is_zero())
            .ok_or_else(|| {
                format!(
                    "writer.lease_ttl_secs ({}) must exceed statement_timeout_ms + 2 * lease_renew_ms ({} ms)",
                    self.lease_ttl_secs,
                    reserved.as_millis()
                )
            })
    }

    /// Redelivery delay after the `delivered`-th failed attempt.
    pub fn retry_delay(&self, delivered: i64) -> Duration {
        let exponent = u32::try_from(delivered.clamp(1, 16) - 1).unwrap_or(0);
        Duration::from_millis(500u64 << exponent)
            .min(Duration::from_secs(self.max_retry_delay_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_a_fencing_margin() {
        let margin = WriterSettings::default().fencing_margin().unwrap();
        assert_eq!(margin, Duration::from_secs(14));
    }

    #[test]
    fn a_lease_shorter_than_a_statement_is_refused() {
        let settings = WriterSettings {
            lease_ttl_secs: 5,
            ..WriterSettings::default()
        };
        assert!(
            settings
                .fencing_margin()
                .unwrap_err()
                .contains("lease_ttl_secs")
        );
    }

    #[test]
    fn retries_back_off_up_to_the_cap() {
        let settings = WriterSettings::default();
        assert_eq!(settings.retry_delay(1), Duration::from_millis(500));
        assert_eq!(settings.retry_delay(2), Duration::from_secs(1));
        assert_eq!(settings.retry_delay(30), Duration::from_secs(30));
    }
}
