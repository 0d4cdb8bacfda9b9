//! What a test's pipeline stored, read straight from its ClickHouse database: row counts,
//! the exactly-once check, and the stored events with their log fields filled.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chaukas_proto::common::v1::Event;

use crate::{Pipeline, as_sent};

impl Pipeline {
    /// Rows in `events` now.
    pub async fn row_count(&self) -> u64 {
        self.clickhouse_client()
            .query("SELECT count() FROM events")
            .fetch_one()
            .await
            .unwrap()
    }

    /// Waits until `events` holds at least `rows` rows, then a little longer to catch any
    /// extra (duplicate) row; returns the final count.
    pub async fn wait_for_rows(&self, rows: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.row_count().await;
            if count >= rows {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return self.row_count().await;
            }
            assert!(
                Instant::now() < deadline,
                "only {count} of {rows} rows stored after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `events` holds `expected` rows and asserts that it holds exactly that many,
    /// no key twice: every acknowledged event stored, once.
    pub async fn assert_stored_once(&self, expected: u64, timeout: Duration) {
        assert_eq!(
            self.wait_for_rows(expected, timeout).await,
            expected,
            "every acknowledged event stored, none twice"
        );
        assert_eq!(self.distinct_keys().await, expected, "no key stored twice");
    }

    /// Distinct (tenant, event id) pairs in `events`: equal to the row count when nothing
    /// was stored twice.
    pub async fn distinct_keys(&self) -> u64 {
        self.clickhouse_client()
            .query("SELECT uniqExact(tenant_id, event_id) FROM events")
            .fetch_one()
            .await
            .unwrap()
    }

    /// Every stored event as its client sent it: decoded from its payload, ordered by event
    /// id, log fields checked and cleared ([`as_sent`]).
    pub async fn stored_events(&self) -> Vec<Event> {
        as_sent(self.sealed_events().await)
    }

    /// Every stored event, its log fields filled from the row's columns and the log's
    /// recorded entries as QueryEvents fills them, ordered by event id.
    pub async fn sealed_events(&self) -> Vec<Event> {
        #[derive(serde::Deserialize, clickhouse::Row)]
        struct Stored {
            tenant_id: String,
            leaf_index: u64,
            sealed: u8,
            #[serde(with = "serde_bytes")]
            content_hash: Vec<u8>,
            #[serde(with = "serde_bytes")]
            payload: Vec<u8>,
        }
        #[derive(serde::Deserialize, clickhouse::Row)]
        struct Entry {
            tenant_id: String,
            leaf_index: u64,
            #[serde(with = "serde_bytes")]
            content_hash: Vec<u8>,
        }
        let client = self.clickhouse_client();
        let entries: Vec<Entry> = client
            .query("SELECT tenant_id, leaf_index, content_hash FROM log_leaves")
            .fetch_all()
            .await
            .unwrap();
        let mut logs: HashMap<String, BTreeMap<u64, chaukas_audit::Hash>> = HashMap::new();
        for entry in entries {
            let hash = entry.content_hash.as_slice().try_into().unwrap();
            logs.entry(entry.tenant_id)
                .or_default()
                .insert(entry.leaf_index, hash);
        }
        let rows: Vec<Stored> = client
            .query(
                "SELECT tenant_id, leaf_index, sealed, content_hash, payload FROM events \
                 ORDER BY event_id",
            )
            .fetch_all()
            .await
            .unwrap();
        let no_log = BTreeMap::new();
        rows.into_iter()
            .map(|row| {
                let log = logs.get(&row.tenant_id).unwrap_or(&no_log);
                let hash = chaukas_store::log::sealed_hash(
                    row.sealed != 0,
                    &row.content_hash,
                    row.leaf_index,
                    &row.payload,
                    log,
                );
                chaukas_audit::content::with_log_fields(&row.payload, row.leaf_index, &hash, log)
                    .unwrap()
            })
            .collect()
    }
}
