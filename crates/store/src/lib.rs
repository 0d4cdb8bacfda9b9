//! Everything the services need to talk to ClickHouse, in one place: how to connect, which
//! server version is on the other end, and the versioned schema.
//!
//! The schema must run on ClickHouse 18.16 (the only server Debian ships, used for local
//! runs and CI) and on current releases (production). Migrations therefore stick to the
//! common subset; [`ServerVersion`] lets later code opt into newer features where a server
//! has them.

mod config;
pub mod confinement;
mod error;
pub mod events;
pub mod log;
pub mod migrations;
pub mod retention;
mod rows;
pub mod scratch;
pub mod search;
mod version;

pub use config::ClickHouseConfig;
pub use error::{LogDamage, StoreError};
pub use rows::{EventRow, timestamp_nanos};
pub use version::ServerVersion;

/// Asks the server for its version; also the cheapest end-to-end health check.
pub async fn server_version(client: &clickhouse::Client) -> Result<ServerVersion, StoreError> {
    let text: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(|source| StoreError::query("SELECT version()", source))?;
    text.parse()
}
