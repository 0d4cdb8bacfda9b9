//! `chaukas retention apply [--dry-run]`: the only way events are ever deleted. For each
//! tenant whose policy sets a maximum retention, the content of events stored longer ago
//! than that is removed — never inside any minimum retention, never under a legal hold,
//! never the log's leaves — and the run is recorded twice before anything is deleted: as a
//! prune (so `chaukas verify` reports those leaves as pruned, not missing) and as an audit
//! event in the tenant's own log.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use chaukas_bus::{INGEST_TIME_HEADER, NatsConfig};
use chaukas_policies::{PolicyRecord, PolicyStore};
use chaukas_proto::common::v1::{Author, Event, EventStatus, EventType, Severity};
use chaukas_store::ClickHouseConfig;
use chaukas_store::retention::{self, PruneRow};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// `chaukas retention ...`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Removes the content of events past their tenant's maximum retention (docs/privacy.md).
    Apply {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who runs it (recorded); $USER by default.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

/// What `chaukas retention` reads from configuration: ClickHouse as the admin user (the
/// writer and query users cannot delete), NATS for the policies and the audit event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// The shared `[clickhouse]` section.
    pub clickhouse: ClickHouseConfig,
    /// The shared `[nats]` section.
    pub nats: NatsConfig,
}

/// A tenant's terms, all its policies combined: projects can only lengthen them.
#[derive(Debug, PartialEq, Eq)]
enum Terms {
    /// Prune what was stored more than this many days ago.
    PruneAfter(u32),
    /// Keep everything, for this reason.
    Keep(String),
}

fn terms(records: &[&PolicyRecord]) -> Terms {
    let mut max_days = None::<u32>;
    for record in records {
        let owner = record
            .project
            .as_deref()
            .map_or("the tenant".to_owned(), |p| format!("project {p:?}"));
        let Some(retention) = &record.policy.retention else {
            continue;
        };
        if retention.legal_hold {
            let reason = retention.hold_reason.as_deref().unwrap_or("");
            return Terms::Keep(format!("legal hold on {owner}: {reason}"));
        }
        let Some(max) = retention.max_days else {
            return Terms::Keep(format!("{owner} keeps events without a maximum"));
        };
        let longest = max.max(retention.min_days);
        max_days = Some(max_days.map_or(longest, |days| days.max(longest)));
    }
    match max_days {
        Some(days) => Terms::PruneAfter(days),
        None => Terms::Keep("no retention terms".into()),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// Runs one `chaukas retention` command.
pub async fn run(command: RetentionCommand, config: &RetentionConfig) -> anyhow::Result<()> {
    let RetentionCommand::Apply {
        tenant,
        dry_run,
        by,
    } = command;
    let client = config.nats.connect().await?;
    let jetstream = jetstream::new(client);
    let policies = PolicyStore::open(&jetstream, &config.nats).await?;
    let clickhouse = config.clickhouse.client()?;
    let records = policies.list().await?;
    let mut tenants: BTreeMap<&str, Vec<&PolicyRecord>> = BTreeMap::new();
    for record in &records {
        tenants
            .entry(record.tenant.as_str())
            .or_default()
            .push(record);
    }
    if let Some(only) = &tenant {
        tenants.retain(|name, _| name == only);
        if tenants.is_empty() {
            bail!("tenant {only:?} has no policy: nothing is ever removed without one");
        }
    }
    let now = now_ns();
    for (tenant, records) in tenants {
        let days = match terms(&records) {
            Terms::Keep(why) => {
                println!("tenant {tenant:?}: kept ({why})");
                continue;
            }
            Terms::PruneAfter(days) => days,
        };
        let cutoff_ns = now - i64::from(days) * NS_PER_DAY;
        let below = retention::prunable_below(&clickhouse, tenant, cutoff_ns).await?;
        let events = retention::events_below(&clickhouse, tenant, below).await?;
        if events == 0 {
            println!("tenant {tenant:?}: nothing stored more than {days} days ago");
            continue;
        }
        if dry_run {
            println!(
                "tenant {tenant:?}: would remove {events} events (leaves below {below}), stored more than {days} days ago"
            );
            continue;
        }
        let row = PruneRow {
            tenant_id: tenant.to_owned(),
            pruned_below: below,
            cutoff_ns,
            events,
            run_at_ns: now,
            run_by: by.clone(),
        };
        // Recorded before anything is deleted: a run that dies midway leaves a record of
        // what it meant to do, never a gap nobody explained.
        record_in_log(&jetstream, &config.nats, &row, days)
            .await
            .with_context(|| {
                format!("tenant {tenant:?}: the run could not be logged; nothing removed")
            })?;
        retention::record(&clickhouse, &row).await?;
        retention::delete_below(&clickhouse, tenant, below).await?;
        println!(
            "tenant {tenant:?}: removed {events} events (leaves below {below} stay in the log), stored more than {days} days ago"
        );
    }
    Ok(())
}

/// Publishes the run as an event of the tenant (type SYSTEM), waiting for JetStream: the
/// tenant's own log then shows when, by whom and how far it was pruned. Its id depends on
/// the prune only, so a repeated run is stored once.
async fn record_in_log(
    jetstream: &jetstream::Context,
    nats: &NatsConfig,
    row: &PruneRow,
    days: u32,
) -> anyhow::Result<()> {
    let text = |value: String| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(value)),
    };
    let metadata = prost_types::Struct {
        fields: [
            ("action", text("retention.apply".into())),
            ("pruned_below", text(row.pruned_below.to_string())),
            ("events_removed", text(row.events.to_string())),
            ("cutoff_ns", text(row.cutoff_ns.to_string())),
            ("max_days", text(days.to_string())),
            ("run_by", text(row.run_by.clone())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect(),
    };
    let event = Event {
        event_id: chaukas_audit::verify::retention_event_id(row.pruned_below),
        tenant_id: row.tenant_id.clone(),
        r#type: EventType::System as i32,
        severity: Severity::Info as i32,
        status: EventStatus::Completed as i32,
        author: Author::System as i32,
        agent_name: "chaukas retention".into(),
        timestamp: Some(prost_types::Timestamp {
            seconds: row.run_at_ns / 1_000_000_000,
            nanos: i32::try_from(row.run_at_ns % 1_000_000_000).unwrap_or(0),
        }),
        metadata: Some(metadata),
        ..Event::default()
    };
    let ingest_time = row.run_at_ns.to_string();
    for chunk in chaukas_bus::pack(&[event], nats.shards, 1024 * 1024) {
        let publish = PublishMessage::build()
            .payload(chunk.payload)
            .message_id(&chunk.message_id)
            .header(INGEST_TIME_HEADER, ingest_time.as_str());
        let ack = jetstream
            .send_publish(nats.shard_subject(chunk.shard), publish)
            .await?;
        tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .context("JetStream did not acknowledge in 10 s")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaukas_privacy::{Policy, Retention};

    fn record(project: Option<&str>, retention: Option<Retention>) -> PolicyRecord {
        PolicyRecord {
            tenant: "acme".into(),
            project: project.map(str::to_owned),
            policy: Policy {
                retention,
                ..Policy::default()
            },
            set_at_ms: 0,
            set_by: "test".into(),
        }
    }

    fn keep(min: u32, max: Option<u32>) -> Option<Retention> {
        Some(Retention {
            min_days: min,
            max_days: max,
            ..Retention::default()
        })
    }

    #[test]
    fn projects_only_lengthen_and_holds_keep_everything() {
        let tenant = record(None, keep(10, Some(30)));
        assert_eq!(terms(&[&tenant]), Terms::PruneAfter(30));
        let longer = record(Some("p"), keep(40, Some(50)));
        assert_eq!(terms(&[&tenant, &longer]), Terms::PruneAfter(50));
        let forever = record(Some("q"), keep(5, None));
        assert!(
            matches!(terms(&[&tenant, &forever]), Terms::Keep(why) if why.contains("without a maximum"))
        );
        let mut held = keep(10, Some(30)).unwrap();
        held.legal_hold = true;
        held.hold_reason = Some("case 114".into());
        let held = record(Some("p"), Some(held));
        assert!(matches!(terms(&[&tenant, &held]), Terms::Keep(why) if why.contains("case 114")));
        assert_eq!(
            terms(&[&record(None, None)]),
            Terms::Keep("no retention terms".into())
        );
    }
}
