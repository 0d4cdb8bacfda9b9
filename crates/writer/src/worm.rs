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

/// Reports every [`status::REPORT_EVERY`] until aborted; waits while the bucket is missing
/// (an older deployment that has not run `chaukas migrate` yet).
pub async fn report(
    jetstream: jetstream::Context,
    nats: NatsConfig,
    clickhouse: clickhouse::Client,
    scratch: Scratch,
    events_database: String,
    instance: String,
    sealing: bool,
) {
    let spec = status::bucket_spec(&nats);
    let mut tick = tokio::time::interval(status::REPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bucket = None;
    let mut last: Option<bool> = None;
    loop {
        tick.tick().await;
        if bucket.is_none() {
            match chaukas_bus::kv::open_bucket(&jetstream, &spec).await {
                Ok(opened) => bucket = Some(opened),
                Err(error) => {
                    tracing::warn!(%error, "cannot report whether this writer is insert-only");
                    continue;
                }
            }
        }
        let Some(bucket) = &bucket else { continue };
        let confined = assess(&clickhouse, &scratch, &events_database).await;
        let report = WriterReport {
            insert_only: confined.is_ok(),
            reason: confined.unwrap_or_else(|reason| reason),
            sealing,
        };
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
        if let Err(error) = status::report_writer(bucket, &instance, &report).await {
            tracing::warn!(%error, "cannot report whether this writer is insert-only");
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
