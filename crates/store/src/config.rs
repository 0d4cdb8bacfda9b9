use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Where ClickHouse is and which database holds the Chaukas tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint of the server (the `clickhouse` crate speaks HTTP, port 8123 by default).
    pub url: String,
    /// Database for every Chaukas table; created by `chaukas migrate` when missing.
    pub database: String,
    /// User to authenticate as.
    pub user: String,
    /// Password for `user`; set it from a secret (`CHAUKAS_CLICKHOUSE__PASSWORD`), not a file.
    pub password: String,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "chaukas".into(),
            user: "default".into(),
            password: String::new(),
        }
    }
}

impl ClickHouseConfig {
    /// A client bound to the configured database.
    ///
    /// Row-type validation is off: it relies on `RowBinaryWithNamesAndTypes`, which
    /// ClickHouse 18.16 does not have; our row structs are checked by tests instead.
    pub fn client(&self) -> Result<clickhouse::Client, StoreError> {
        validate_identifier(&self.database)?;
        Ok(self.server_client().with_database(&self.database))
    }

    /// A client without a database, for creating the database itself.
    pub(crate) fn server_client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_password(&self.password)
            .with_validation(false)
    }
}

/// Database names are spliced into DDL, so only plain identifiers are allowed.
pub(crate) fn validate_identifier(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    if starts_well && name.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(StoreError::InvalidDatabaseName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_identifiers() {
        for good in ["chaukas", "test_01", "_x"] {
            assert!(validate_identifier(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a`b", "a b", "x; DROP TABLE y"] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }
}
