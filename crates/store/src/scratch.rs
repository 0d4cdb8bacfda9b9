//! The writer's scratch tables: insert stages (see [`stage_rows`]) and claim lookups
//! ([`crate::events::claims`]), Memory tables made and dropped by the writer as it goes.
//!
//! They may live in a database of their own ([`Scratch::separate`]), reached with a user
//! confined to it: then the writer's main user needs no DDL at all and can be insert-only
//! (`allow_ddl = 0`: no `ALTER … DELETE`, `DROP`, `TRUNCATE` on `events`), which is how
//! retention is made write-once (docs/privacy.md). Without one they sit next to `events`.

use crate::events::insert_rows;
use crate::{EventRow, StoreError};

/// Template the stages of a separate scratch database are made from: `chaukas migrate`
/// (re)creates it as an empty copy of `events`, since the scratch user cannot see `events`.
pub const SCRATCH_TEMPLATE: &str = "events_template";

/// Where the scratch tables are, and the client that makes and drops them.
#[derive(Clone)]
pub struct Scratch {
    /// Creates, fills, lists and drops scratch tables; bound to their database.
    pub client: clickhouse::Client,
    /// The scratch database, when it is not the events database.
    database: Option<String>,
}

impl Scratch {
    /// Scratch tables next to `events`, made with the main client.
    pub fn beside_events(client: clickhouse::Client) -> Self {
        Self {
            client,
            database: None,
        }
    }

    /// Scratch tables in `database`, made with `client` (bound to it).
    pub fn separate(client: clickhouse::Client, database: &str) -> Result<Self, StoreError> {
        crate::config::validate_identifier(database)?;
        Ok(Self {
            client,
            database: Some(database.to_owned()),
        })
    }

    /// Whether the scratch tables have a database of their own.
    pub fn is_separate(&self) -> bool {
        self.database.is_some()
    }

    /// `table` as the main client must name it.
    pub fn qualified(&self, table: &str) -> String {
        match &self.database {
            Some(database) => format!("{database}.{table}"),
            None => table.to_owned(),
        }
    }

    fn template(&self) -> &'static str {
        if self.database.is_some() {
            SCRATCH_TEMPLATE
        } else {
            "events"
        }
    }
}

/// Prefix of every staging table (see [`stage_rows`]).
pub const STAGE_PREFIX: &str = "insert_stage_";

pub(crate) fn checked_stage(stage: &str) -> Result<&str, StoreError> {
    let plain = stage.starts_with(STAGE_PREFIX)
        && stage
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if plain {
        Ok(stage)
    } else {
        Err(StoreError::InvalidDatabaseName(stage.to_owned()))
    }
}

/// First step of a fenced insert into `events`: creates staging table `stage` (a Memory
/// table with the columns of `events`) and puts `rows` in it.
///
/// Why stage: a statement the client gave up on may still commit on the server later (its
/// body delayed in the network or in a paused server's socket buffer), and ClickHouse 18.16
/// does not even list an INSERT in `system.processes` before its body has arrived. The rows
/// reach `events` only by [`move_stage`], a statement without a client body that reads
/// `stage`; once [`drop_stage`] has returned, no such statement can commit any more.
pub async fn stage_rows(
    scratch: &Scratch,
    stage: &str,
    rows: &[&EventRow],
) -> Result<(), StoreError> {
    let stage = checked_stage(stage)?;
    let create = format!(
        "CREATE TABLE {stage} AS {} ENGINE = Memory",
        scratch.template()
    );
    scratch
        .client
        .query(&create)
        .execute()
        .await
        .map_err(|source| StoreError::query(&create, source))?;
    insert_rows(&scratch.client, stage, rows.iter().copied()).await
}

/// Moves the rows of `stage` that belong to `events` partition `partition` (see
/// [`EventRow::partition`]) into `events` in one statement, run as query `query_id`.
///
/// One partition per statement: an INSERT into one partition is one part, committed at
/// once, so a failure never leaves some of a statement's leaves stored and others not; moving
/// partitions in leaf order keeps every tenant's stored leaves a prefix of its log.
pub async fn move_stage(
    client: &clickhouse::Client,
    scratch: &Scratch,
    stage: &str,
    partition: u32,
    query_id: &str,
) -> Result<(), StoreError> {
    let stage = scratch.qualified(checked_stage(stage)?);
    let columns = <EventRow as clickhouse::Row>::COLUMN_NAMES.join(", ");
    let statement = format!(
        "INSERT INTO events ({columns}) SELECT {columns} FROM {stage} \
         WHERE toYYYYMM(event_date) = {partition}"
    );
    client
        .clone()
        .with_setting("query_id", query_id)
        .query(&statement)
        .execute()
        .await
        .map_err(|source| StoreError::query("INSERT INTO events SELECT FROM stage", source))
}

/// Drops `stage` if it exists and returns once it is gone: a move from it still running has
/// then ended (committed or not), and one arriving later fails. `sync` asks current
/// ClickHouse (Atomic databases drop lazily) to wait for the table's readers; 18.16 always
/// does.
pub async fn drop_stage(
    client: &clickhouse::Client,
    stage: &str,
    sync: bool,
) -> Result<(), StoreError> {
    let stage = checked_stage(stage)?;
    let statement = format!(
        "DROP TABLE IF EXISTS {stage}{}",
        if sync { " SYNC" } else { "" }
    );
    client
        .query(&statement)
        .execute()
        .await
        .map_err(|source| StoreError::query(&statement, source))
}

/// Names of the scratch tables in the scratch client's database.
pub async fn stages(client: &clickhouse::Client) -> Result<Vec<String>, StoreError> {
    let list = "SELECT name FROM system.tables WHERE database = currentDatabase() \
                AND position(name, ?) = 1";
    client
        .query(list)
        .bind(STAGE_PREFIX)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(list, source))
}

/// `chaukas migrate`: makes the writer's separate scratch database and the stage template in
/// it, an empty copy of `events`, made again whenever `events`' columns differ from it (so
/// it follows the migrations).
pub async fn prepare(config: &crate::ClickHouseConfig, database: &str) -> Result<(), StoreError> {
    crate::config::validate_identifier(database)?;
    let client = config.client()?;
    let statement = format!("CREATE DATABASE IF NOT EXISTS {database}");
    execute(&client, &statement).await?;
    let events = columns(&client, &config.database, "events").await?;
    if columns(&client, database, SCRATCH_TEMPLATE).await? == events {
        return Ok(());
    }
    let drop = format!("DROP TABLE IF EXISTS {database}.{SCRATCH_TEMPLATE}");
    execute(&client, &drop).await?;
    let create = format!(
        "CREATE TABLE {database}.{SCRATCH_TEMPLATE} AS {}.events ENGINE = Memory",
        config.database
    );
    execute(&client, &create).await
}

async fn execute(client: &clickhouse::Client, statement: &str) -> Result<(), StoreError> {
    client
        .query(statement)
        .execute()
        .await
        .map_err(|source| StoreError::query(statement, source))
}

/// A table's columns as sorted (name, type) pairs; empty when it does not exist.
async fn columns(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let sql =
        "SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY name";
    client
        .query(sql)
        .bind(database)
        .bind(table)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(sql, source))
}
