//! The writer's report (see `chaukas_bus::status`): for `Capabilities.worm_retention`, whether
//! the ClickHouse users it runs as can do no more than insert, as the server says; for
//! `Capabilities.audit_proofs`, whether it seals events into the audit log.
//!
//! Both of its users count: the main one must be insert-only (`chaukas_store::confinement`),
//! and the scratch tables must be made by another user that cannot reach the events at all
//! (checked by having it try to read them: a refusal is the answer wanted).

use async_nats::jetstream;
use chaukas_bus::NatsConfig;
use chaukas_bus::status::{self, WriterReport};
use chaukas_store::confinement::{self, Role};
use chaukas_store::scratch::Scratch;
use tokio_util::sync::CancellationToken;

/// What a writer reports about itself, and where.
pub struct Reporter {
    pub jetstream: jetstream::Context,
    pub nats: NatsConfig,
    pub clickhouse: clickhouse::Client,
    pub scratch: Scratch,
    pub events_database: String,
    /// This writer's key in the status bucket.
    pub instance: String,
    /// Whether it seals events into the audit log (`log.enabled`).
    pub sealing: bool,
}

impl Reporter {
    /// Reports every [`status::REPORT_EVERY`] until `stop`, then withdraws the report, so
    /// gateways stop counting this writer at once rather than when the report expires;
    /// waits while the bucket is missing (an older deployment that has not run
    /// `chaukas migrate` yet).
    pub async fn run(self, stop: CancellationToken) {
        let spec = status::bucket_spec(&self.nats);
        let mut tick = tokio::time::interval(status::REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bucket = None;
        let mut last: Option<bool> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if bucket.is_none() {
                match chaukas_bus::kv::open_bucket(&self.jetstream, &spec).await {
                    Ok(opened) => bucket = Some(opened),
                    Err(error) => {
                        tracing::warn!(%error, "cannot report whether this writer is insert-only");
                        continue;
                    }
                }
            }
            let Some(bucket) = &bucket else { continue };
            let report = self.assess().await;
            // Said once, and again when it changes.
            if last != Some(report.insert_only) {
                if report.insert_only {
                    tracing::info!(
                        reason = report.reason,
                        "this writer's ClickHouse users can only insert"
                    );
                } else {
                    tracing::warn!(
                        reason = report.reason,
                        "this writer's ClickHouse users may delete: worm_retention is off"
                    );
                }
                last = Some(report.insert_only);
            }
            if let Err(error) = status::report_writer(bucket, &self.instance, &report).await {
                tracing::warn!(%error, "cannot report whether this writer is insert-only");
            }
        }
        if let Some(bucket) = &bucket
            && let Err(error) = status::withdraw_writer(bucket, &self.instance).await
        {
            tracing::debug!(%error, "report not withdrawn; it expires on its own");
        }
    }

    async fn assess(&self) -> WriterReport {
        let confined = assess(&self.clickhouse, &self.scratch, &self.events_database).await;
        WriterReport {
            insert_only: confined.is_ok(),
            reason: confined.unwrap_or_else(|reason| reason),
            sealing: self.sealing,
        }
    }
}

/// What the server says this writer's users may do: Ok with what confines them to
/// inserting, or Err with what they may do beyond it.
pub async fn assess(
    clickhouse: &clickhouse::Client,
    scratch: &Scratch,
    events_database: &str,
) -> Result<String, String> {
    let unconfined = Err;
    let main = match chaukas_store::server_version(clickhouse).await {
        Ok(version) => confinement::check(clickhouse, &version, Role::InsertOnly).await,
        Err(error) => Err(error),
    };
    let main = match main {
        Ok(main) if main.confined => main,
        Ok(main) => return unconfined(format!("the writer's user: {}", main.reason)),
        Err(error) => return unconfined(format!("cannot ask ClickHouse: {error}")),
    };
    if !scratch.is_separate() {
        return unconfined(
            "its scratch tables are next to the events (no scratch_database)".into(),
        );
    }
    let probe = format!("SELECT 1 FROM {events_database}.events LIMIT 0");
    match scratch.client.query(&probe).execute().await {
        Err(clickhouse::error::Error::BadResponse(_)) => Ok(format!(
            "the writer's user: {}; its scratch user cannot read the events database",
            main.reason
        )),
        Err(error) => unconfined(format!("cannot ask ClickHouse: {error}")),
        Ok(()) => unconfined("its scratch user can reach the events database".into()),
    }
}
