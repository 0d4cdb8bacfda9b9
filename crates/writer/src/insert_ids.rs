//! ClickHouse query ids for row inserts, made to be recognised on the server.
//!
//! A statement timeout only stops the client; the server may still be inserting (issue #13,
//! interleaving 3). So every insert runs under a query id that names the database, the
//! writer instance and the shards it writes:
//! `chaukas-insert-<database>-<instance>-<n>-s.<shard>.<shard>.`. The writer that failed an
//! insert waits for its id to vanish from `system.processes`; a writer taking a shard over
//! waits until no other instance's insert for that shard runs there.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chaukas_store::StoreError;
use chaukas_store::events;

/// Names this writer's inserts.
pub struct InsertIds {
    database_prefix: String,
    own_prefix: String,
    counter: AtomicU64,
}

impl InsertIds {
    /// Ids for inserts into `database` by this process; the instance part (process id and
    /// start time) differs between writers and across restarts.
    pub fn new(database: &str) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let database_prefix = format!("chaukas-insert-{database}-");
        let own_prefix = format!("{database_prefix}{}x{started:x}-", std::process::id());
        Self {
            database_prefix,
            own_prefix,
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh id for an insert writing `shards`.
    pub fn next(&self, shards: &HashSet<u16>) -> String {
        let mut id = format!(
            "{}{}-s.",
            self.own_prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let mut sorted: Vec<u16> = shards.iter().copied().collect();
        sorted.sort_unstable();
        for shard in sorted {
            let _ = write!(id, "{shard}.");
        }
        id
    }

    /// How many inserts of other writers into this database that write `shard` still run.
    pub async fn others_running(
        &self,
        client: &clickhouse::Client,
        shard: u16,
    ) -> Result<u64, StoreError> {
        events::inserts_running(
            client,
            &self.database_prefix,
            &self.own_prefix,
            &format!(".{shard}."),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_database_the_instance_and_every_shard() {
        let ids = InsertIds::new("audit");
        let id = ids.next(&HashSet::from([7, 1]));
        assert!(id.starts_with("chaukas-insert-audit-"));
        assert!(id.starts_with(&ids.own_prefix));
        assert!(id.ends_with("-s.1.7."));
        assert!(!id.contains(".17."));
        assert_ne!(ids.next(&HashSet::from([1])), ids.next(&HashSet::from([1])));
    }

    #[test]
    fn two_writers_have_different_prefixes() {
        let first = InsertIds::new("audit");
        std::thread::sleep(std::time::Duration::from_millis(1));
        let second = InsertIds::new("audit");
        assert_ne!(first.own_prefix, second.own_prefix);
    }
}
