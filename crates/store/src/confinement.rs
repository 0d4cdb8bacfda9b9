//! What the ClickHouse user a service runs as may do, asked of the server itself: the basis
//! of `Capabilities.worm_retention` (docs/privacy.md). A service reports only what the
//! server says about its own session, never what its configuration claims.
//!
//! Two mechanisms confine a user, and either is enough:
//! - settings from a users.xml profile (every version): `readonly` ≥ 1 allows reads only;
//!   `allow_ddl = 0` refuses every statement that deletes or rewrites (`ALTER … DELETE`,
//!   `DROP`, `TRUNCATE`, `DETACH`, `RENAME`, `OPTIMIZE`, `CREATE`) and `SET allow_ddl` itself,
//!   as checked on 18.16 (tests/tests/worm.rs);
//! - SQL grants (servers from 20.5 on): the privileges in `system.grants` for the user and
//!   the roles it has enabled. Anything beyond reading (and inserting, for an insert-only
//!   role) counts as unconfined, so an unknown privilege errs towards "not enforced".

use serde::Deserialize;

use crate::{ServerVersion, StoreError};

/// What a service's user should be confined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads and inserts, nothing that deletes or rewrites (the writer).
    InsertOnly,
    /// Reads only (the query service).
    ReadOnly,
}

/// The server's answer: whether the user is confined to its role, and by what (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// Whether the user can do no more than its role.
    pub confined: bool,
    /// What confines it, or what it may do beyond its role.
    pub reason: String,
}

#[derive(Deserialize, clickhouse::Row)]
struct Setting {
    name: String,
    value: String,
}

/// Whether the current user of `client` is confined to `role`.
pub async fn check(
    client: &clickhouse::Client,
    version: &ServerVersion,
    role: Role,
) -> Result<Confinement, StoreError> {
    let sql = "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'allow_ddl')";
    let settings: Vec<Setting> = client
        .query(sql)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    let setting = |name: &str| {
        settings
            .iter()
            .find(|setting| setting.name == name)
            .map_or("", |setting| setting.value.as_str())
    };
    let (readonly, allow_ddl) = (setting("readonly"), setting("allow_ddl"));
    let by_settings = match role {
        Role::ReadOnly => readonly != "0" && !readonly.is_empty(),
        Role::InsertOnly => readonly == "0" && allow_ddl == "0",
    };
    if by_settings {
        return Ok(Confinement {
            confined: true,
            reason: format!("profile settings readonly = {readonly}, allow_ddl = {allow_ddl}"),
        });
    }
    let unconfined_by_settings = format!(
        "profile settings readonly = {readonly}, allow_ddl = {allow_ddl} do not confine it"
    );
    if !version.at_least(20, 5) {
        return Ok(Confinement {
            confined: false,
            reason: unconfined_by_settings,
        });
    }
    let beyond = privileges_beyond(client, role).await?;
    Ok(match beyond.is_empty() {
        true => Confinement {
            confined: true,
            reason: "its SQL grants".into(),
        },
        false => Confinement {
            confined: false,
            reason: format!(
                "{unconfined_by_settings}, and it holds {}",
                beyond.join(", ")
            ),
        },
    })
}

/// The privileges the user holds (directly or through its enabled roles) beyond `role`.
async fn privileges_beyond(
    client: &clickhouse::Client,
    role: Role,
) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT DISTINCT toString(access_type) FROM system.grants \
               WHERE (user_name = currentUser() OR role_name IN (SELECT arrayJoin(enabledRoles()))) \
               AND is_partial_revoke = 0 ORDER BY 1";
    let held: Vec<String> = client
        .query(sql)
        .fetch_all()
        .await
        .map_err(|source| StoreError::query(sql, source))?;
    Ok(held
        .into_iter()
        .filter(|privilege| !within(role, privilege))
        .collect())
}

/// Whether `privilege` (a `system.grants` access type) is within `role`.
fn within(role: Role, privilege: &str) -> bool {
    let reading = privilege == "SELECT" || privilege.starts_with("SHOW");
    match role {
        Role::ReadOnly => reading,
        Role::InsertOnly => reading || privilege == "INSERT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_and_inserting_are_within_an_insert_only_role() {
        for privilege in ["SELECT", "INSERT", "SHOW TABLES"] {
            assert!(within(Role::InsertOnly, privilege), "{privilege}");
        }
        for privilege in [
            "ALL",
            "ALTER DELETE",
            "DROP TABLE",
            "TRUNCATE",
            "ALTER",
            "OPTIMIZE",
        ] {
            assert!(!within(Role::InsertOnly, privilege), "{privilege}");
        }
        assert!(!within(Role::ReadOnly, "INSERT"));
        assert!(within(Role::ReadOnly, "SELECT"));
    }
}
