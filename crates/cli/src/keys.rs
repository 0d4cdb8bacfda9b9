//! `chaukas keys create|list|revoke`: API keys in the NATS key-value store every gateway reads.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chaukas_auth::{KeyRecord, KeyStore, Scope};
use chaukas_bus::NatsConfig;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// What `chaukas keys` reads from configuration: where NATS and the event stream are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeysConfig {
    /// The shared `[nats]` section (`CHAUKAS_NATS__*`).
    pub nats: NatsConfig,
}

/// `chaukas keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates a key and prints its secret, once: store it, it cannot be shown again.
    Create {
        /// The tenant the key writes and reads.
        #[arg(long)]
        tenant: String,
        /// Confine the key to one project of the tenant.
        #[arg(long)]
        project: Option<String>,
        /// What it may do: any of ingest, query, stats.
        #[arg(long, value_delimiter = ',', default_value = "ingest")]
        scopes: Vec<Scope>,
        /// Lifetime (`90d`, `12h`, `30m`) or an expiry as Unix seconds; none by default.
        #[arg(long)]
        expires: Option<String>,
        /// A label for people.
        #[arg(long, default_value = "")]
        name: String,
        /// Print only the secret (for scripts).
        #[arg(long)]
        quiet: bool,
    },
    /// Lists keys (never their secrets).
    List,
    /// Revokes a key by id; every gateway refuses it within seconds.
    Revoke {
        /// The key id (the 12 hex digits after `chk_`).
        id: String,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// `90d` / `12h` / `30m` / `45s` from now, or absolute Unix seconds.
fn parse_expiry(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    let unit_ms = match text.chars().last() {
        Some('d') => 86_400_000,
        Some('h') => 3_600_000,
        Some('m') => 60_000,
        Some('s') => 1_000,
        _ => {
            let seconds: i64 = text.parse().with_context(|| {
                format!("--expires {text:?}: give a lifetime like 90d, 12h, 30m or Unix seconds")
            })?;
            return Ok(seconds * 1_000);
        }
    };
    let amount: i64 = text[..text.len() - 1]
        .parse()
        .with_context(|| format!("--expires {text:?}: expected a number before the unit"))?;
    Ok(now_ms + amount * unit_ms)
}

fn describe(record: &KeyRecord, now_ms: i64) -> String {
    let scopes: Vec<String> = record.scopes.iter().map(ToString::to_string).collect();
    format!(
        "{}  {:<8} tenant={} project={} scopes={} expires={} name={:?}",
        record.id,
        record.state(now_ms),
        record.tenant,
        record.project.as_deref().unwrap_or("*"),
        scopes.join(","),
        record
            .expires_at_ms
            .map_or("never".to_owned(), |at| format!("{}", at / 1000)),
        record.name
    )
}

/// Runs one `chaukas keys` command.
pub async fn run(command: KeysCommand, config: &KeysConfig) -> anyhow::Result<()> {
    let client = config.nats.connect().await?;
    let jetstream = async_nats::jetstream::new(client);
    let store = KeyStore::open(&jetstream, &config.nats).await?;
    match command {
        KeysCommand::Create {
            tenant,
            project,
            scopes,
            expires,
            name,
            quiet,
        } => {
            let now = now_ms();
            let expires_at = expires
                .as_deref()
                .map(|text| parse_expiry(text, now))
                .transpose()?;
            let new = store
                .create(name, tenant, project, scopes, expires_at)
                .await?;
            if quiet {
                println!("{}", new.token);
            } else {
                println!("created {}", describe(&new.record, now));
                println!("secret (shown once, store it now): {}", new.token);
            }
        }
        KeysCommand::List => {
            let now = now_ms();
            for record in store.list().await? {
                println!("{}", describe(&record, now));
            }
        }
        KeysCommand::Revoke { id } => {
            let record = store.revoke(&id).await?;
            println!("revoked {}", describe(&record, now_ms()));
        }
    }
    Ok(())
}
