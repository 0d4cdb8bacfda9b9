//! The writer's claim lookup table (see `chaukas_store::events::claims`), shared by its
//! lookups so that a flush costs no DDL.
//!
//! One Memory table among the scratch tables serves many lookups, each under a number of
//! its own. It is replaced by a fresh one once it holds [`ROWS_PER_TABLE`] keys (bounding the
//! server memory it holds), before the stage sweep would take it for a crashed writer's
//! (half of its age limit), and after any lookup that failed or was cut off (the server may
//! still be working on it). The old one is then dropped; one a drop missed is swept like a
//! stage left by a crash. Named as a stage of no shard, so no takeover fences it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chaukas_store::StoreError;
use chaukas_store::events::{self, EventKey};
use tokio::sync::Mutex;

use crate::staging::{SWEEP_AFTER, Staging};

/// Keys a lookup table takes before it is replaced: about 60 bytes each in server memory.
const ROWS_PER_TABLE: u64 = 250_000;
/// Age at which a lookup table is replaced, well before the sweep drops it.
const MAX_AGE: Duration = Duration::from_secs(SWEEP_AFTER.as_secs() / 2);

/// The lookup table in use.
struct Table {
    name: String,
    created: Instant,
    rows: u64,
    /// Number of the next lookup in it.
    next_lookup: u64,
    /// A lookup in it has not ended well (set before each one, cleared after).
    unsettled: bool,
}

impl Table {
    fn usable_for(&self, keys: usize) -> bool {
        !self.unsettled
            && self.rows + keys as u64 <= ROWS_PER_TABLE
            && self.created.elapsed() < MAX_AGE
    }
}

/// The table in use, if any; lookups take turns on it.
#[derive(Default)]
pub struct ClaimLookups {
    table: Mutex<Option<Table>>,
}

impl ClaimLookups {
    /// The stream sequence that claimed each of `keys`, for those that are claimed.
    pub async fn claims(
        &self,
        staging: &Staging,
        clickhouse: &clickhouse::Client,
        keys: &[EventKey],
    ) -> Result<HashMap<EventKey, u64>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut current = self.table.lock().await;
        if !current
            .as_ref()
            .is_some_and(|table| table.usable_for(keys.len()))
        {
            let name = staging.stage_name(&HashSet::new());
            events::create_lookup(staging.scratch(), &name).await?;
            if let Some(old) = current.replace(Table {
                name,
                created: Instant::now(),
                rows: 0,
                next_lookup: 0,
                unsettled: false,
            }) {
                // Frees its memory now; a drop that fails leaves it to the sweep.
                if let Err(error) = staging.drop_stage(&old.name).await {
                    tracing::debug!(table = old.name, %error, "old lookup table left to the sweep");
                }
            }
        }
        let table = current.as_mut().expect("a lookup table was just made");
        let lookup = table.next_lookup;
        table.next_lookup += 1;
        table.rows += keys.len() as u64;
        table.unsettled = true;
        let found =
            events::claims(clickhouse, staging.scratch(), &table.name, lookup, keys).await?;
        table.unsettled = false;
        Ok(found)
    }
}
