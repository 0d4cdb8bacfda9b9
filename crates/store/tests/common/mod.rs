//! What the store's integration tests share: a migrated database of their own.

use chaukas_store::ClickHouseConfig;
use chaukas_testkit::TestDatabase;

/// A fresh database with every migration applied, and a client for it; the database is
/// dropped with the returned guard.
pub async fn migrated() -> (TestDatabase, clickhouse::Client) {
    let db = TestDatabase::new().await;
    let config = ClickHouseConfig {
        url: db.url.clone(),
        database: db.name.clone(),
        ..ClickHouseConfig::default()
    };
    chaukas_store::migrations::migrate(&config).await.unwrap();
    let client = config.client().unwrap();
    (db, client)
}
