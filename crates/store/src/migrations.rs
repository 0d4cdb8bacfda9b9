//! Versioned, append-only schema history.
//!
//! Each migration is a SQL file under `migrations/`, compiled into the binary so the schema
//! always matches the code that reads it. [`migrate`] applies the ones a database has not
//! seen, in order, and records each in `schema_migrations` with a checksum; a recorded
//! checksum that no longer matches stops the run, because an edited migration means the
//! databases in the field no longer agree with the repository.
//!
//! Statements use `IF NOT EXISTS` so that two `chaukas migrate` runs racing each other (two
//! pods of a Helm hook, say) both end with the same schema: ClickHouse has no transactional
//! DDL to serialise them.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::validate_identifier;
use crate::{ClickHouseConfig, ServerVersion, StoreError};

/// One schema change, as shipped in this build.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Order of application; never reused.
    pub version: u32,
    /// Short name, the file name without the number.
    pub name: &'static str,
    /// The SQL: one or more statements separated by `;`.
    pub sql: &'static str,
}

/// Every migration, in order. A test checks this list against the files in `migrations/`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../migrations/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "event_claims",
        sql: include_str!("../migrations/0002_event_claims.sql"),
    },
    Migration {
        version: 3,
        name: "query_aggregates",
        sql: include_str!("../migrations/0003_query_aggregates.sql"),
    },
    Migration {
        version: 4,
        name: "audit_log",
        sql: include_str!("../migrations/0004_audit_log.sql"),
    },
    Migration {
        version: 5,
        name: "retention",
        sql: include_str!("../migrations/0005_retention.sql"),
    },
    Migration {
        version: 6,
        name: "sessions",
        sql: include_str!("../migrations/0006_sessions.sql"),
    },
    Migration {
        version: 7,
        name: "tail",
        sql: include_str!("../migrations/0007_tail.sql"),
    },
    Migration {
        version: 8,
        name: "leaf_locations",
        sql: include_str!("../migrations/0008_leaf_locations.sql"),
    },
    Migration {
        version: 9,
        name: "model_stats",
        sql: include_str!("../migrations/0009_model_stats.sql"),
    },
    Migration {
        version: 10,
        name: "hash_in_view",
        sql: include_str!("../migrations/0010_hash_in_view.sql"),
    },
];

/// The table that records applied migrations.
const HISTORY_TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime
) ENGINE = MergeTree ORDER BY version";

/// What a run did, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Version of the server the schema was applied to.
    pub server_version: ServerVersion,
    /// Versions applied by this run, in order.
    pub applied: Vec<u32>,
    /// Versions that were already there.
    pub already_applied: Vec<u32>,
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct AppliedMigration {
    version: u32,
    checksum: String,
}

impl Migration {
    /// Hex SHA-256 of the SQL text, recorded when applied.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The statements of the file, in order, without comments-only fragments.
    pub fn statements(&self) -> Vec<&'static str> {
        split_statements(self.sql)
    }
}

/// Creates the database if needed and applies every migration it has not seen.
pub async fn migrate(config: &ClickHouseConfig) -> Result<MigrationReport, StoreError> {
    validate_identifier(&config.database)?;
    let server = config.server_client();
    let server_version = crate::server_version(&server).await?;
    let create_database = format!("CREATE DATABASE IF NOT EXISTS `{}`", config.database);
    execute(&server, &create_database).await?;

    let client = config.client()?;
    execute(&client, HISTORY_TABLE_DDL).await?;
    let applied: Vec<AppliedMigration> = client
        .query("SELECT version, any(checksum) FROM schema_migrations GROUP BY version")
        .fetch_all()
        .await
        .map_err(|source| StoreError::query("SELECT version FROM schema_migrations", source))?;

    let mut report = MigrationReport {
        server_version,
        applied: Vec::new(),
        already_applied: Vec::new(),
    };
    for migration in MIGRATIONS {
        let shipped = migration.checksum();
        if let Some(done) = applied
            .iter()
            .find(|done| done.version == migration.version)
        {
            if done.checksum != shipped {
                return Err(StoreError::ChecksumMismatch {
                    version: migration.version,
                    name: migration.name,
                    applied: done.checksum.clone(),
                    shipped,
                });
            }
            report.already_applied.push(migration.version);
            continue;
        }
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applying migration"
        );
        for statement in migration.statements() {
            if let Some((table, column)) = added_column(statement)
                && column_exists(&client, table, column).await?
            {
                continue;
            }
            execute(&client, statement).await?;
        }
        let record = "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
                      VALUES (?, ?, ?, now())";
        client
            .query(record)
            .bind(migration.version)
            .bind(migration.name)
            .bind(shipped.as_str())
            .execute()
            .await
            .map_err(|source| StoreError::query(record, source))?;
        report.applied.push(migration.version);
    }
    let newest_known = MIGRATIONS.last().map_or(0, |migration| migration.version);
    if let Some(unknown) = applied.iter().find(|done| done.version > newest_known) {
        tracing::warn!(
            version = unknown.version,
            "database has a migration newer than this build; an older binary is running against a newer schema"
        );
    }
    Ok(report)
}

/// `(table, column)` of an `ALTER TABLE <table> ADD COLUMN <column> ...` statement.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace)
        .take(6)
        .collect();
    match words.as_slice() {
        [alter, table_word, table, add, column_word, column]
            if alter.eq_ignore_ascii_case("ALTER")
                && table_word.eq_ignore_ascii_case("TABLE")
                && add.eq_ignore_ascii_case("ADD")
                && column_word.eq_ignore_ascii_case("COLUMN") =>
        {
            Some((table, column))
        }
        _ => None,
    }
}

/// Whether the current database's `table` has `column` (ClickHouse 18.16 has no
/// `ADD COLUMN IF NOT EXISTS`).
async fn column_exists(
    client: &clickhouse::Client,
    table: &str,
    column: &str,
) -> Result<bool, StoreError> {
    let sql = "SELECT count() FROM system.columns \
               WHERE database = currentDatabase() AND table = ? AND name = ?";
    let found: u64 = client
        .query(sql)
        .bind(table)
        .bind(column)
        .fetch_one()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    Ok(found > 0)
}

async fn execute(client: &clickhouse::Client, sql: &str) -> Result<(), StoreError> {
    client
        .query(sql)
        .execute()
        .await
        .map_err(|source| StoreError::query(sql, source))
}

/// Splits SQL text on `;` outside quotes, identifiers and comments.
fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            quote @ (b'\'' | b'"' | b'`') => {
                index += 1;
                while index < bytes.len() && bytes[index] != quote {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    index += 1;
                }
            }
            b'-' if bytes.get(index + 1) == Some(&b'-') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b';' => {
                statements.push(&sql[start..index]);
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    statements.push(&sql[start..]);
    statements
        .into_iter()
        .map(str::trim)
        .filter(|statement| {
            statement
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';');\n\
                   SELECT `we;ird`, 'it''s; fine', 'esc\\'; still' ;\n-- trailing comment\n";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("DEFAULT ';')"));
        assert!(statements[1].starts_with("SELECT `we;ird`"));
        assert!(statements[1].ends_with("'esc\\'; still'"));
    }

    #[test]
    fn added_columns_are_recognised_past_comments() {
        let statements = MIGRATIONS[3].statements();
        assert_eq!(added_column(statements[0]), Some(("events", "leaf_index")));
        assert_eq!(
            added_column(statements[1]),
            Some(("events", "content_hash"))
        );
        assert_eq!(
            added_column("alter table t add column c String"),
            Some(("t", "c"))
        );
        assert_eq!(added_column("ALTER TABLE t DROP COLUMN c"), None);
        assert_eq!(added_column("CREATE TABLE t (a String)"), None);
    }

    #[test]
    fn migration_list_matches_the_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(
            files, listed,
            "every file in migrations/ must be listed, in order"
        );
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for migration in MIGRATIONS {
            assert!(
                !migration.statements().is_empty(),
                "{} is empty",
                migration.name
            );
        }
    }
}
