//! `chaukas dead-letters list|replay`: what no writer could store, and putting it back once
//! the cause is fixed (a writer that understands it, a ClickHouse that accepts it).

use anyhow::Context;
use chaukas_bus::dead_letters;
use clap::Subcommand;

use crate::keys::KeysConfig;

/// `chaukas dead-letters ...`
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Lists the oldest dead letters: sequence, time, original subject, size, reason.
    List {
        /// How many to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Publishes dead letters again to their original subjects, then removes them here.
    Replay {
        /// Sequences (from `list`) to replay.
        sequences: Vec<u64>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "sequences")]
        all: bool,
    },
}

/// Runs one `chaukas dead-letters` command (NATS settings as for `chaukas keys`).
pub async fn run(command: DeadLettersCommand, config: &KeysConfig) -> anyhow::Result<()> {
    let client = config.nats.connect().await?;
    let jetstream = async_nats::jetstream::new(client);
    match command {
        DeadLettersCommand::List { limit } => {
            let letters = dead_letters::list(&jetstream, &config.nats, limit).await?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                println!(
                    "{}  at={}  subject={}  bytes={}  reason={:?}",
                    letter.sequence,
                    letter.dead_lettered_at,
                    letter.original_subject,
                    letter.bytes,
                    letter.reason
                );
            }
        }
        DeadLettersCommand::Replay { sequences, all } => {
            let sequences = if all {
                dead_letters::list(&jetstream, &config.nats, usize::MAX)
                    .await?
                    .into_iter()
                    .map(|letter| letter.sequence)
                    .collect()
            } else {
                sequences
            };
            anyhow::ensure!(
                !sequences.is_empty(),
                "name the sequences to replay (see `chaukas dead-letters list`) or pass --all"
            );
            for sequence in sequences {
                let subject = dead_letters::replay(&jetstream, &config.nats, sequence)
                    .await
                    .with_context(|| format!("replaying dead letter {sequence}"))?;
                println!("replayed {sequence} to {subject}");
            }
        }
    }
    Ok(())
}
