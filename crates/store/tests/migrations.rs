//! Migrations against the real ClickHouse the test harness started (18.16 here and in CI).

use chaukas_store::migrations::{MIGRATIONS, migrate};
use chaukas_store::{ClickHouseConfig, StoreError};
use chaukas_testkit::TestDatabase;

fn config_for(db: &TestDatabase) -> ClickHouseConfig {
    ClickHouseConfig {
        url: db.url.clone(),
        database: db.name.clone(),
        ..ClickHouseConfig::default()
    }
}

async fn table_names(config: &ClickHouseConfig) -> Vec<String> {
    config
        .client()
        .unwrap()
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(config.database.as_str())
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_creates_the_schema_once_and_records_it() {
    let db = TestDatabase::new().await;
    let config = config_for(&db);
    let every_version: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();

    let first = migrate(&config).await.unwrap();
    assert_eq!(first.applied, every_version);
    assert!(first.already_applied.is_empty());
    assert!(first.server_version.at_least(18, 16));
    assert_eq!(
        table_names(&config).await,
        [
            "event_claims",
            "events",
            "log_checkpoints",
            "log_leaves",
            "log_leaves_hashed_mv",
            "log_prunes",
            "log_tiles",
            "schema_migrations",
            "session_actions",
            "session_actions_mv",
            "session_spans",
            "session_spans_mv",
            "session_summaries",
            "session_summaries_mv",
            "stats_model_minute",
            "stats_model_minute_mv",
            "stats_session_minute",
            "stats_session_minute_mv",
            "stats_type_minute",
            "stats_type_minute_mv",
            "trace_spans",
            "trace_spans_mv"
        ]
    );

    let second = migrate(&config).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, every_version);

    let recorded: Vec<(u32, String)> = config
        .client()
        .unwrap()
        .query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .unwrap();
    let expected: Vec<(u32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.checksum()))
        .collect();
    assert_eq!(recorded, expected, "each migration recorded exactly once");
    db.drop_database().await;
}

#[tokio::test]
async fn an_edited_applied_migration_stops_the_run() {
    let db = TestDatabase::new().await;
    let config = config_for(&db);
    migrate(&config).await.unwrap();
    let client = config.client().unwrap();
    client
        .query("TRUNCATE TABLE schema_migrations")
        .execute()
        .await
        .unwrap();
    client
        .query("INSERT INTO schema_migrations VALUES (1, 'events', 'not-the-shipped-sql', now())")
        .execute()
        .await
        .unwrap();

    match migrate(&config).await {
        Err(StoreError::ChecksumMismatch {
            version, applied, ..
        }) => {
            assert_eq!(version, 1);
            assert_eq!(applied, "not-the-shipped-sql");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    db.drop_database().await;
}

#[tokio::test]
async fn a_database_name_that_is_not_an_identifier_is_refused_before_any_sql() {
    let config = ClickHouseConfig {
        url: chaukas_testkit::clickhouse_url(),
        database: "chaukas`; DROP DATABASE system".into(),
        ..ClickHouseConfig::default()
    };
    assert!(matches!(
        migrate(&config).await,
        Err(StoreError::InvalidDatabaseName(_))
    ));
}

#[tokio::test]
async fn an_unreachable_server_is_a_query_error_naming_the_statement() {
    let config = ClickHouseConfig {
        url: "http://127.0.0.1:9".into(),
        database: "unreachable".into(),
        ..ClickHouseConfig::default()
    };
    let error = migrate(&config).await.unwrap_err();
    assert!(error.to_string().contains("SELECT version()"), "{error}");
}
