//! `chaukas log keygen` and `chaukas verify`: making the log's key and checking a tenant's
//! stored events against its signed log (docs/audit.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use chaukas_audit::verify::{Finding, audit};
use chaukas_audit::{Checkpoint, SignerKey, VerifierKey};
use chaukas_store::ClickHouseConfig;
use clap::Subcommand;
use serde::{Deserialize, Serialize};

/// `chaukas log ...`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Prints a new signing key (a secret: store it as the log's key file or Secret) and,
    /// on stderr, its verifier key (public: give it to whoever verifies).
    Keygen {
        /// The key's name; must equal log.name.
        #[arg(long, default_value = "chaukas.localhost")]
        name: String,
    },
}

/// What `chaukas verify` reads from configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyConfig {
    /// The shared `[clickhouse]` section.
    pub clickhouse: ClickHouseConfig,
    /// The shared `[log]` section: its name, and keys to trust if none is given.
    pub log: chaukas_audit::LogConfig,
}

/// Runs `chaukas log ...`.
pub fn run(command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Keygen { name } => {
            let key = SignerKey::generate(&name)?;
            println!("{}", key.to_secret_string());
            eprintln!("verifier key: {}", key.verifier());
        }
    }
    Ok(())
}

/// What to check with `chaukas verify`.
pub struct VerifyRequest {
    /// The tenant.
    pub tenant: String,
    /// Verifier keys to trust; the configured signing keys' when empty.
    pub keys: Vec<String>,
    /// A checkpoint saved earlier, which the stored log must still extend.
    pub saved: Option<PathBuf>,
}

/// Checks every stored event of a tenant against its latest signed checkpoint (and a saved
/// one); prints each finding; fails when there is any.
pub async fn verify(request: VerifyRequest, config: &VerifyConfig) -> anyhow::Result<()> {
    let trusted: Vec<VerifierKey> = if request.keys.is_empty() {
        config.log.verifiers()?
    } else {
        request
            .keys
            .iter()
            .map(|key| VerifierKey::parse(key))
            .collect::<Result<_, _>>()?
    };
    if trusted.is_empty() {
        bail!("no key to verify with: pass --key <verifier key> (GET /v1/log/key prints it)");
    }
    let origin = chaukas_audit::origin(&config.log.name, &request.tenant);
    let client = config.clickhouse.client()?;
    let saved = match &request.saved {
        Some(path) => {
            let note = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let saved = Checkpoint::open(&note, &trusted, &origin)
                .context("the saved checkpoint does not verify")?;
            Some(saved)
        }
        None => None,
    };
    let latest = chaukas_store::log::latest_checkpoint(&client, &request.tenant).await?;
    let checkpoint = match (latest, &saved) {
        (Some(latest), _) => Checkpoint::open(&latest.note, &trusted, &origin)
            .context("the latest stored checkpoint does not verify")?,
        // The store's checkpoints are gone: the saved one is all there is to check against.
        (None, Some(saved)) => saved.clone(),
        (None, None) => bail!(
            "no signed checkpoint for tenant {:?}: nothing stored yet, or the checkpoints were deleted",
            request.tenant
        ),
    };
    let events = chaukas_store::log::sealed_events(&client, &request.tenant).await?;
    let mut findings: Vec<Finding> = Vec::new();
    if let Some(saved) = saved.filter(|saved| *saved != checkpoint) {
        let against_saved = audit(events.clone(), &saved);
        findings.extend(against_saved.findings.into_iter().filter(|finding| {
            matches!(
                finding,
                Finding::RootMismatch { .. } | Finding::Truncated { .. }
            )
        }));
        if saved.size > checkpoint.size {
            findings.push(Finding::Truncated {
                size: saved.size,
                stored: checkpoint.size,
            });
        }
    }
    let report = audit(events, &checkpoint);
    findings.extend(report.findings);
    println!(
        "tenant {}: {} events, {} leaves checked against the checkpoint of size {} (root {}), {} newer",
        request.tenant,
        report.events,
        report.checked,
        checkpoint.size,
        chaukas_audit::verify::short(&checkpoint.root),
        report.newer
    );
    for finding in &findings {
        println!("FAIL {finding}");
    }
    if !findings.is_empty() {
        bail!("{} findings: the log does not verify", findings.len());
    }
    println!("OK: every event matches its leaf and the signed root");
    Ok(())
}
