//! `chaukas log keygen` and `chaukas verify`: making the log's key and checking a tenant's
//! stored events against its signed log (docs/audit.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use chaukas_audit::verify::{Finding, audit_with_record};
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
    let record = chaukas_store::retention::log_record(&client, &request.tenant).await?;
    let mut findings: Vec<Finding> = Vec::new();
    if let Some(saved) = saved.filter(|saved| *saved != checkpoint) {
        let against_saved = audit_with_record(events.clone(), &saved, &record);
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
    let report = audit_with_record(events, &checkpoint, &record);
    findings.extend(report.findings);
    println!(
        "tenant {}: {} events, {} leaves checked against the checkpoint of size {} (root {}), {} newer, {} pruned by retention",
        request.tenant,
        report.events,
        report.checked,
        checkpoint.size,
        chaukas_audit::verify::short(&checkpoint.root),
        report.newer,
        report.pruned
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

/// Writes an offline bundle of `tenant`'s events (of one session, if given) to `out`: the
/// latest signed checkpoint and an inclusion proof per event it covers.
pub async fn export(
    tenant: &str,
    session: Option<&str>,
    config: &VerifyConfig,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    use chaukas_audit::bundle::{BUNDLE_FORMAT, BundleEvent, BundleHeader};
    use chaukas_audit::proof::{NodeRecorder, inclusion_proof};
    use chaukas_audit::tiles::{TileSet, tiles_for};

    let client = config.clickhouse.client()?;
    let origin = chaukas_audit::origin(&config.log.name, tenant);
    let latest = chaukas_store::log::latest_checkpoint(&client, tenant)
        .await?
        .with_context(|| format!("no signed checkpoint for tenant {tenant:?}"))?;
    let text = latest
        .note
        .split_once("\n\n")
        .map(|(text, _)| format!("{text}\n"));
    let checkpoint = Checkpoint::parse(&text.unwrap_or_default())?;
    let mut events = chaukas_store::log::sealed_events_of(&client, tenant, session).await?;
    events.retain(|event| event.sealed);
    events.sort_by_key(|event| event.leaf_index);
    let newer = events
        .iter()
        .filter(|e| e.leaf_index >= checkpoint.size)
        .count();
    events.retain(|event| event.leaf_index < checkpoint.size);
    // Stored payloads are canonical: the bundle's events carry their log fields, as
    // QueryEvents returns them.
    let entries = chaukas_store::log::entries_around(
        &client,
        tenant,
        events.iter().map(|event| event.leaf_index),
    )
    .await?;
    for event in &mut events {
        event.content_hash = chaukas_store::log::sealed_hash(
            event.sealed,
            &event.content_hash,
            event.leaf_index,
            &event.payload,
            &entries,
        );
        let filled = chaukas_audit::content::with_log_fields(
            &event.payload,
            event.leaf_index,
            &event.content_hash,
            &entries,
        )
        .with_context(|| {
            format!(
                "event {}: the stored payload does not decode",
                event.event_id
            )
        })?;
        event.payload = prost::Message::encode_to_vec(&filled);
    }

    // One fetch of every tile the proofs need.
    let mut recorder = NodeRecorder::default();
    for event in &events {
        inclusion_proof(&mut recorder, event.leaf_index, checkpoint.size)?;
    }
    let mut tiles = TileSet::default();
    for tile in tiles_for(checkpoint.size, &recorder.wanted) {
        tiles.insert(tile, chaukas_store::log::tile(&client, tenant, tile).await?);
    }
    let header = BundleHeader {
        bundle: BUNDLE_FORMAT.into(),
        origin,
        checkpoint: latest.note.clone(),
    };
    writeln!(out, "{}", serde_json::to_string(&header)?)?;
    for event in &events {
        let proof = chaukas_audit::TlogProof {
            index: event.leaf_index,
            path: inclusion_proof(&mut tiles, event.leaf_index, checkpoint.size)?,
            checkpoint: latest.note.clone(),
        };
        let line = BundleEvent::new(
            event.event_id.clone(),
            event.leaf_index,
            &event.payload,
            &proof,
        );
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    }
    eprintln!(
        "exported {} events of tenant {tenant} against the checkpoint of size {}{}",
        events.len(),
        checkpoint.size,
        match newer {
            0 => String::new(),
            n => format!("; {n} newer events are not in it yet: export again shortly"),
        }
    );
    Ok(())
}

/// Checks a bundle offline with the given verifier keys; prints each failure.
pub fn verify_bundle(path: &std::path::Path, keys: &[String]) -> anyhow::Result<()> {
    if keys.is_empty() {
        bail!("--bundle needs --key <verifier key>: the bundle proves nothing without it");
    }
    let trusted: Vec<VerifierKey> = keys
        .iter()
        .map(|key| VerifierKey::parse(key))
        .collect::<Result<_, _>>()?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let report = chaukas_audit::bundle::verify_bundle(&text, &trusted)?;
    println!(
        "bundle for {}: {} events verified against the checkpoint of size {} (root {})",
        report.checkpoint.origin,
        report.verified,
        report.checkpoint.size,
        chaukas_audit::verify::short(&report.checkpoint.root)
    );
    for failure in &report.failures {
        println!("FAIL {failure}");
    }
    if !report.failures.is_empty() {
        bail!("{} events do not verify", report.failures.len());
    }
    println!("OK: every event is unchanged and in the signed log");
    Ok(())
}
