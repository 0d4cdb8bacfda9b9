//! Privacy policies as every gateway sees them: stored in a JetStream key-value bucket like
//! API keys (`chaukas policy set` writes, every gateway watches), compiled once per change,
//! looked up per event without locking out writers for long.

mod record;
mod store;

pub use record::{PolicyRecord, SaltRecord};
pub use store::{PolicyStore, bucket_name, bucket_spec};

/// Why the policy store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    /// NATS refused or is unreachable.
    #[error("policy store unavailable: {0}")]
    Nats(String),
    /// The policy is not acceptable (the text says why).
    #[error(transparent)]
    Policy(#[from] chaukas_privacy::PolicyError),
    /// Someone else changed the policy between our read and our write.
    #[error("the policy changed while this change was made; show it and try again")]
    Concurrent,
    /// A stored record is unreadable.
    #[error("stored policy {key} is unreadable: {reason}")]
    Corrupt {
        /// The bucket key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// A tenant or project name that cannot be a policy's owner.
    #[error("{0}")]
    Invalid(String),
}
