//! What every integration test needs to share one pair of real servers safely.
//!
//! `make test` starts a NATS and a ClickHouse server for the whole run (see
//! `tests/harness/servers.sh`) and exports their addresses; each test then works in its
//! own ClickHouse database and its own JetStream stream names, so tests run in parallel
//! without seeing each other.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// ClickHouse HTTP endpoint the harness started (`CHAUKAS_TEST_CLICKHOUSE_URL`).
pub fn clickhouse_url() -> String {
    std::env::var("CHAUKAS_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// NATS endpoint the harness started (`CHAUKAS_TEST_NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("CHAUKAS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".into())
}

/// A name no other test in this or a concurrent run will pick: prefix, process id, a
/// per-process counter and the clock.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{prefix}_{}_{count}_{nanos}", std::process::id())
}

/// A ClickHouse database of a test's own, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    /// HTTP endpoint of the server.
    pub url: String,
    /// The database name, unique to this test.
    pub name: String,
}

impl TestDatabase {
    /// Picks a fresh name after checking the server answers, so a forgotten harness
    /// fails with instructions rather than a connection error deep in a test.
    pub async fn new() -> Self {
        let url = clickhouse_url();
        let client = clickhouse::Client::default()
            .with_url(&url)
            .with_validation(false);
        if let Err(error) = client.query("SELECT 1").execute().await {
            panic!(
                "no ClickHouse test server at {url} ({error}); run the tests with `make test`, \
                 or start the servers with `make test-servers` and export the variables it prints"
            );
        }
        Self {
            url,
            name: unique_name("test"),
        }
    }

    /// Removes the database; call it at the end of a test that passed.
    pub async fn drop_database(self) {
        let client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false);
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        client
            .query(&sql)
            .execute()
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }
}

/// NATS settings pointing at the test server, with stream, subject and dead-letter names
/// no other test uses.
pub fn nats_config() -> chaukas_bus::NatsConfig {
    let name = unique_name("T").to_uppercase();
    chaukas_bus::NatsConfig {
        url: nats_url(),
        subject_prefix: format!("{}.events", name.to_lowercase()),
        dead_letter_subject: format!("{}.deadletter", name.to_lowercase()),
        dead_letter_stream: format!("{name}_DEAD_LETTER"),
        stream: format!("{name}_EVENTS"),
        max_bytes: 256 * 1024 * 1024,
        ..chaukas_bus::NatsConfig::default()
    }
}
