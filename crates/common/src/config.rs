//! Layered configuration: built-in defaults, then an optional TOML file, then `CHAUKAS_*`
//! environment variables, later layers winning.
//!
//! Every service has one typed config struct whose `Default` works on a laptop. Nested keys
//! are reached from the environment with a double underscore:
//! `CHAUKAS_GATEWAY__GRPC_LISTEN=0.0.0.0:50051` sets `gateway.grpc_listen`. Sections other
//! services own are ignored, so one file can configure the whole stack.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "CHAUKAS_";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file was named explicitly but is not there: silently running on defaults would hide
    /// a typo in a deployment.
    #[error("config file {path} does not exist")]
    MissingFile {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// A value has the wrong type or an unknown key; figment's message names the file or
    /// environment variable it came from.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
}

/// The layers for a service config `T`, before extraction; tests add their own providers
/// to it instead of touching the process environment.
pub fn layers<T: Serialize + Default>(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    Ok(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
}

/// Extracts a typed config from prepared layers.
pub fn extract<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment
        .extract()
        .map_err(|error| ConfigError::Invalid(Box::new(error)))
}

/// Loads a service config from defaults, the optional file and the environment.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    extract(&layers::<T>(file)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        section: Section,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        listen: String,
        limit: u32,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                listen: "127.0.0.1:1".into(),
                limit: 10,
            }
        }
    }

    #[test]
    fn file_overrides_defaults_and_keeps_the_rest() {
        let figment = layers::<Sample>(None)
            .unwrap()
            .merge(Toml::string("[section]\nlimit = 42\n"));
        let sample: Sample = extract(&figment).unwrap();
        assert_eq!(sample.section.limit, 42);
        assert_eq!(sample.section.listen, "127.0.0.1:1");
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let error = layers::<Sample>(Some(Path::new("/nonexistent/chaukas.toml"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/chaukas.toml"));
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let figment = layers::<Sample>(None)
            .unwrap()
            .merge(Toml::string("[section]\nlimit = \"many\"\n"));
        let error = extract::<Sample>(&figment).unwrap_err().to_string();
        assert!(error.contains("limit"), "{error}");
    }

    #[test]
    fn unknown_keys_in_a_section_are_rejected() {
        let figment = layers::<Sample>(None)
            .unwrap()
            .merge(Toml::string("[section]\nlimt = 1\n"));
        let error = extract::<Sample>(&figment).unwrap_err().to_string();
        assert!(error.contains("limt"), "{error}");
    }
}
