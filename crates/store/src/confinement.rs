//! What the ClickHouse user a service runs as may do, asked of the server itself: the basis
//! of `Capabilities.worm_retention` (docs/privacy.md). A service reports only what the
//! server says about its own session, never what its configuration claims.
//!
//! Two mechanisms confine a user, and either is enough:
//! - settings from a users.xml profile (every version): `readonly` ≥ 1 allows reads only;
//!   `allow_ddl = 0` refuses every statement that deletes or rewrites (`ALTER … DELETE`,
//!   `DROP`, `TRUNCATE`, `DETACH`, `RENAME`, `OPTIMIZE`, `CREATE`) and `SET allow_ddl` itself,
//!   as checked on 18.16 (tests/tests/worm.rs);
//! - SQL grants (servers from 20.5 on): the privileges `SHOW GRANTS` lists for the user and
//!   its roles. Anything beyond reading (and inserting, for an insert-only role) counts as
//!   unconfined, so an unknown privilege errs towards "not enforced".
//!
//! Checked on 26.9 (chDB, tests/chdb): `allow_ddl = 0` refuses `ALTER … DELETE|UPDATE`,
//! `DELETE FROM`, `DROP`, `TRUNCATE`, `DROP PARTITION`, `RENAME`, `DETACH` and `SET allow_ddl`
//! there too; `readonly = 2` refuses every write and `SET readonly`.

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

/// The privileges the user holds (directly or through its roles) beyond `role`, from
/// `SHOW GRANTS`: `system.grants` would need `SHOW USERS` (checked on 26.9), which a confined
/// user does not have. `FINAL` folds the roles' grants in; a server without it lists role
/// grants only by name, and those count as beyond.
async fn privileges_beyond(
    client: &clickhouse::Client,
    role: Role,
) -> Result<Vec<String>, StoreError> {
    let lines: Vec<String> = match client.query("SHOW GRANTS FINAL").fetch_all().await {
        Ok(lines) => lines,
        Err(_) => client
            .query("SHOW GRANTS")
            .fetch_all()
            .await
            .map_err(|source| StoreError::query("SHOW GRANTS", source))?,
    };
    Ok(lines
        .iter()
        .flat_map(|line| granted(line))
        .filter(|privilege| !within(role, privilege))
        .collect())
}

/// The privileges one `SHOW GRANTS` line gives: `GRANT <privileges> ON <target> TO <user>`
/// (column lists in parentheses), or `GRANT <roles> TO <user>`, whose roles are reported as
/// `role <names>`. `REVOKE` lines only take away, so they are skipped.
fn granted(line: &str) -> Vec<String> {
    let Some(rest) = line.trim().strip_prefix("GRANT ") else {
        return Vec::new();
    };
    let Some((privileges, _)) = rest.split_once(" ON ") else {
        let roles = rest.split(" TO ").next().unwrap_or(rest);
        return vec![format!("role {roles}")];
    };
    let mut found = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, byte) in privileges.bytes().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                found.push(privileges[start..at].trim().to_owned());
                start = at + 1;
            }
            _ => {}
        }
    }
    found.push(privileges[start..].trim().to_owned());
    found
}

/// Whether `privilege` (as `SHOW GRANTS` names it, maybe with columns) is within `role`.
fn within(role: Role, privilege: &str) -> bool {
    let privilege = privilege.split('(').next().unwrap_or(privilege).trim();
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
        assert!(within(Role::ReadOnly, "SELECT(a, b)"));
    }

    #[test]
    fn show_grants_lines_are_read_privilege_by_privilege() {
        assert_eq!(
            granted("GRANT SELECT(tenant_id, event_id), INSERT ON chaukas.* TO chaukas_writer"),
            ["SELECT(tenant_id, event_id)", "INSERT"]
        );
        assert_eq!(
            granted("GRANT auditors, loaders TO chaukas_writer"),
            ["role auditors, loaders"]
        );
        assert!(granted("REVOKE DROP TABLE ON chaukas.* FROM chaukas_writer").is_empty());
        // What 26.9 lists for its unrestricted default user.
        let default =
            "GRANT CHECK, SHOW, SELECT, INSERT, ALTER, CREATE, DROP, TRUNCATE ON *.* TO default";
        let beyond: Vec<String> = granted(default)
            .into_iter()
            .filter(|privilege| !within(Role::InsertOnly, privilege))
            .collect();
        assert_eq!(beyond, ["CHECK", "ALTER", "CREATE", "DROP", "TRUNCATE"]);
    }
}
