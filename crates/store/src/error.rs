/// What can go wrong between a service and ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement failed; `statement` is its first line so the log says which one.
    #[error("clickhouse statement failed ({statement}): {source}")]
    Query {
        /// First line of the SQL that failed.
        statement: String,
        /// What the server or the connection said.
        #[source]
        source: clickhouse::error::Error,
    },
    /// The configured database name is not a plain identifier.
    #[error(
        "invalid clickhouse database name {0:?}: use letters, digits and underscores, starting with a letter or underscore"
    )]
    InvalidDatabaseName(String),
    /// `SELECT version()` answered something we cannot parse.
    #[error("unrecognised clickhouse server version {0:?}")]
    UnparsableVersion(String),
    /// An applied migration's SQL no longer matches the file shipped in this binary: the
    /// schema history was edited after release, which must never happen silently.
    #[error(
        "migration {version} ({name}) was applied with checksum {applied} but this build ships {shipped}; add a new migration instead of editing an applied one"
    )]
    ChecksumMismatch {
        /// Version number of the migration.
        version: u32,
        /// Its name.
        name: &'static str,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of the SQL in this build.
        shipped: String,
    },
    /// The audit log's tables contradict themselves.
    #[error("the audit log is damaged: {0}")]
    LogDamaged(#[from] LogDamage),
}

/// What is wrong with a stored log (`log_leaves`), found while reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDamage {
    /// A leaf index in the range has no row.
    #[error("tenant {tenant:?}: leaf {index} is missing from the log")]
    Missing { tenant: String, index: u64 },
    /// A leaf index has two rows that differ (a fork).
    #[error("tenant {tenant:?}: leaf {index} is recorded twice, differently")]
    Forked { tenant: String, index: u64 },
    /// A stored content hash is not 32 bytes.
    #[error("tenant {tenant:?}: leaf {index} has a malformed content hash")]
    Malformed { tenant: String, index: u64 },
}

impl StoreError {
    pub(crate) fn query(sql: &str, source: clickhouse::error::Error) -> Self {
        let statement = sql
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with("--"))
            .unwrap_or_default()
            .to_owned();
        Self::Query { statement, source }
    }
}
