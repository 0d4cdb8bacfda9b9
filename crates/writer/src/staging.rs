//! Names and fences for staged inserts (see `chaukas_store::scratch::stage_rows`).
//!
//! Every insert attempt stages its rows in a table of its own,
//! `insert_stage_<unix secs>_<instance>_<n>_s_<shard>_<shard>_`, and moves them into
//! `events` with one statement. Dropping the table is the fence: once the drop has returned
//! no move from it can commit any more. A writer drops its own stage after a failed move
//! before it looks at what was stored (issue #13, interleaving 3); a writer taking a shard
//! over drops every other writer's stage for that shard first, so a previous owner that was
//! paused past its lease cannot move rows in afterwards; stages left by a crash are swept
//! after [`SWEEP_AFTER`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::future::Future;

use chaukas_store::StoreError;
use chaukas_store::events::EventKey;
use chaukas_store::scratch::{self, STAGE_PREFIX, Scratch};
use tokio::sync::OnceCell;

use crate::lookup::ClaimLookups;

/// Age after which any writer drops a stage: far beyond any statement timeout.
pub(crate) const SWEEP_AFTER: Duration = Duration::from_secs(600);

/// Names this writer's stages and fences others'.
pub struct Staging {
    /// Where stages live, and the client that makes and drops them.
    scratch: Scratch,
    instance: String,
    /// Bound of every statement: a request lost in the network must not hang a shard.
    statement_timeout: Duration,
    counter: AtomicU64,
    drop_sync: OnceCell<bool>,
    /// The claim lookup table this writer's flushes share.
    lookups: ClaimLookups,
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What a stage's name says.
#[derive(Debug, PartialEq, Eq)]
struct StageName<'a> {
    created_secs: u64,
    instance: &'a str,
    shards: Vec<u16>,
}

fn parse(name: &str) -> Option<StageName<'_>> {
    let rest = name.strip_prefix(STAGE_PREFIX)?;
    let (head, shards) = rest.split_once("_s_")?;
    let mut parts = head.splitn(3, '_');
    let created_secs = parts.next()?.parse().ok()?;
    let instance = parts.next()?;
    let shards = shards
        .split('_')
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(StageName {
        created_secs,
        instance,
        shards,
    })
}

impl Staging {
    /// Stages for this process: the instance part (process id and start time) differs
    /// between writers and across restarts.
    pub fn new(statement_timeout: Duration, scratch: Scratch) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        Self {
            scratch,
            instance: format!("{}x{started:x}", std::process::id()),
            statement_timeout,
            counter: AtomicU64::new(0),
            drop_sync: OnceCell::new(),
            lookups: ClaimLookups::default(),
        }
    }

    /// A fresh stage name for an attempt writing `shards`.
    pub fn stage_name(&self, shards: &HashSet<u16>) -> String {
        let mut sorted: Vec<u16> = shards.iter().copied().collect();
        sorted.sort_unstable();
        let shards: String = sorted.iter().map(|shard| format!("{shard}_")).collect();
        format!(
            "{STAGE_PREFIX}{}_{}_{}_s_{shards}",
            unix_secs(),
            self.instance,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Where stages and lookups live.
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// The stream sequence that claimed each of `keys`, for those that are claimed (see
    /// [`ClaimLookups`]).
    pub async fn claims(
        &self,
        clickhouse: &clickhouse::Client,
        keys: &[EventKey],
    ) -> Result<HashMap<EventKey, u64>, StoreError> {
        self.lookups.claims(self, clickhouse, keys).await
    }

    /// The query id of the move of `partition` out of `stage`.
    pub fn move_query_id(stage: &str, partition: u32) -> String {
        format!("chaukas-move-{stage}-{partition}")
    }

    async fn bounded<T>(
        &self,
        statement: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.statement_timeout, statement).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!("statement exceeded {:?}", self.statement_timeout)),
        }
    }

    /// Drops `stage`, waiting for any move from it to end.
    pub async fn drop_stage(&self, stage: &str) -> Result<(), String> {
        let client = &self.scratch.client;
        let sync = *self
            .drop_sync
            .get_or_try_init(|| async {
                self.bounded(chaukas_store::server_version(client))
                    .await
                    .map(|version| version.at_least(20, 10))
            })
            .await?;
        self.bounded(scratch::drop_stage(client, stage, sync)).await
    }

    /// Drops every other writer's stage that writes `shard`, and every stage older than
    /// [`SWEEP_AFTER`]; returns how many were dropped.
    pub async fn fence_others(&self, shard: u16) -> Result<usize, String> {
        self.drop_where(|stage| stage.instance != self.instance && stage.shards.contains(&shard))
            .await
    }

    /// Drops every stage older than [`SWEEP_AFTER`] (a failed drop, a crashed writer): each
    /// holds a batch of rows in the server's memory.
    pub async fn sweep(&self) -> Result<usize, String> {
        self.drop_where(|_| false).await
    }

    async fn drop_where(&self, also: impl Fn(&StageName<'_>) -> bool) -> Result<usize, String> {
        let now = unix_secs();
        let mut dropped = 0;
        for name in self.bounded(scratch::stages(&self.scratch.client)).await? {
            let Some(stage) = parse(&name) else { continue };
            let stale = now.saturating_sub(stage.created_secs) > SWEEP_AFTER.as_secs();
            if stale || also(&stage) {
                self.drop_stage(&name).await?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_name_says_when_who_and_which_shards() {
        let client = clickhouse::Client::default();
        let staging = Staging::new(Duration::from_secs(1), Scratch::beside_events(client));
        let name = staging.stage_name(&HashSet::from([7, 1, 12]));
        let parsed = parse(&name).unwrap();
        assert_eq!(parsed.instance, staging.instance);
        assert_eq!(parsed.shards, vec![1, 7, 12]);
        assert!(parsed.created_secs > 1_700_000_000);
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_ne!(
            staging.stage_name(&HashSet::from([1])),
            staging.stage_name(&HashSet::from([1]))
        );
    }

    #[test]
    fn other_tables_are_not_stages() {
        assert_eq!(parse("events"), None);
        assert_eq!(parse("insert_stage_x"), None);
    }
}
