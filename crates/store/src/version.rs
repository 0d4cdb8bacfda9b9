use std::fmt;
use std::str::FromStr;

use crate::StoreError;

/// A ClickHouse server version, compared numerically (`18.16.1` < `24.8.4.13`).
///
/// Schema and queries must work on 18.16; where a newer server offers something that
/// really pays, code asks this type before using it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    parts: Vec<u32>,
}

impl ServerVersion {
    /// Whether the server is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mine = (
            self.parts.first().copied().unwrap_or(0),
            self.parts.get(1).copied().unwrap_or(0),
        );
        mine >= (major, minor)
    }
}

impl FromStr for ServerVersion {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = text
            .trim()
            .split('.')
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| StoreError::UnparsableVersion(text.to_owned()))?;
        if parts.len() < 2 {
            return Err(StoreError::UnparsableVersion(text.to_owned()));
        }
        Ok(Self { parts })
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.parts.iter().map(u32::to_string).collect();
        f.write_str(&text.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_real_version_strings() {
        let old: ServerVersion = "18.16.1".parse().unwrap();
        let new: ServerVersion = "24.8.4.13".parse().unwrap();
        assert!(old < new);
        assert!(old.at_least(18, 16));
        assert!(!old.at_least(19, 1));
        assert!(new.at_least(23, 3));
        assert_eq!(new.to_string(), "24.8.4.13");
    }

    #[test]
    fn rejects_garbage() {
        assert!("".parse::<ServerVersion>().is_err());
        assert!("24".parse::<ServerVersion>().is_err());
        assert!("24.x".parse::<ServerVersion>().is_err());
    }
}
