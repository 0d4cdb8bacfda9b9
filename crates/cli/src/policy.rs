//! `chaukas policy set|show`: tenant and project privacy policies in the NATS key-value
//! store every gateway watches.

use std::path::PathBuf;

use anyhow::Context;
use chaukas_policies::PolicyStore;
use chaukas_privacy::Policy;
use clap::Subcommand;

use crate::keys::KeysConfig;

/// `chaukas policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Sets a tenant's (or one project's) policy from a JSON file (docs/privacy.md); every
    /// gateway applies it within seconds. A shorter minimum retention is refused.
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this project of the tenant (added to the tenant's own policy).
        #[arg(long)]
        project: Option<String>,
        /// The policy file, or `-` for standard input.
        #[arg(long)]
        file: PathBuf,
        /// Who sets it (recorded, and named as who set a legal hold); $USER by default.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// Prints a tenant's (or one project's) stored policy as JSON, with who set it when.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this project of the tenant.
        #[arg(long)]
        project: Option<String>,
    },
}

/// Runs one `chaukas policy` command.
pub async fn run(command: PolicyCommand, config: &KeysConfig) -> anyhow::Result<()> {
    let client = config.nats.connect().await?;
    let jetstream = async_nats::jetstream::new(client);
    let store = PolicyStore::open(&jetstream, &config.nats).await?;
    match command {
        PolicyCommand::Set {
            tenant,
            project,
            file,
            by,
        } => {
            let text = read(&file)?;
            let policy = Policy::parse(&text).with_context(|| format!("{}", file.display()))?;
            let record = store.set(&tenant, project.as_deref(), policy, &by).await?;
            println!(
                "policy set for tenant {:?}{} by {}",
                record.tenant,
                record
                    .project
                    .as_deref()
                    .map(|p| format!(" project {p:?}"))
                    .unwrap_or_default(),
                record.set_by
            );
        }
        PolicyCommand::Show { tenant, project } => {
            let Some((record, revision)) = store.get(&tenant, project.as_deref()).await? else {
                anyhow::bail!(
                    "no policy stored for tenant {tenant:?}{}",
                    project
                        .map(|p| format!(" project {p:?}"))
                        .unwrap_or_default()
                );
            };
            let mut shown = serde_json::to_value(&record)?;
            shown["revision"] = revision.into();
            if let Some(salt_id) = store.salt_id(&tenant).await? {
                shown["salt_id"] = salt_id.into();
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    Ok(())
}

fn read(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut text)?;
        return Ok(text);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}
