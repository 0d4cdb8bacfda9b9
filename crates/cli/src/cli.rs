//! Command-line surface of the `chaukas` binary.

use std::path::PathBuf;

use chaukas_store::ClickHouseConfig;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// Chaukas Server: an append-only audit trail for AI agent events.
///
/// Configuration comes from built-in defaults, then the TOML file given with --config, then
/// CHAUKAS_* environment variables (nested keys with a double underscore, e.g.
/// CHAUKAS_GATEWAY__GRPC_LISTEN=0.0.0.0:50051).
#[derive(Debug, Parser)]
#[command(name = "chaukas", version)]
pub struct Cli {
    /// TOML configuration file shared by every role.
    #[arg(long, short, global = true, env = "CHAUKAS_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The role this process plays.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Public gRPC and HTTP endpoint: validates events and publishes them to JetStream.
    Gateway,
    /// Consumes JetStream and writes events to ClickHouse in batches.
    Writer,
    /// Answers QueryEvents and GetEventStats from ClickHouse.
    Query,
    /// Creates the ClickHouse database and applies pending schema migrations, then exits.
    Migrate,
    /// Creates, lists and revokes API keys (stored in NATS; every gateway sees changes).
    Keys {
        #[command(subcommand)]
        command: crate::keys::KeysCommand,
    },
    /// Sets and shows privacy policies: retention terms and server-side redaction.
    Policy {
        #[command(subcommand)]
        command: crate::policy::PolicyCommand,
    },
    /// Removes event content past each tenant's maximum retention (the only deletion path).
    Retention {
        #[command(subcommand)]
        command: crate::retention::RetentionCommand,
    },
    /// The audit log's keys: `chaukas log keygen`.
    Log {
        #[command(subcommand)]
        command: crate::audit_log::LogCommand,
    },
    /// Checks every stored event of a tenant against its signed log: recomputes content
    /// hashes, rebuilds the tree, compares with the latest signed checkpoint (and a saved
    /// one), names every event that does not match; exits 0 only when all holds.
    Verify {
        /// The tenant (not with --bundle).
        #[arg(long, required_unless_present = "bundle", conflicts_with = "bundle")]
        tenant: Option<String>,
        /// Check an offline bundle (`chaukas export`) instead, with --key only: no server.
        #[arg(long)]
        bundle: Option<std::path::PathBuf>,
        /// A verifier key to trust (repeatable); the configured log keys' by default.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// A signed checkpoint saved earlier: the log must still extend it.
        #[arg(long)]
        checkpoint: Option<std::path::PathBuf>,
    },
    /// Writes an offline bundle to stdout: a tenant's events (or one session's), each with
    /// its inclusion proof, and the signed checkpoint; `chaukas verify --bundle` checks it
    /// with the verifier key alone.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this session's events.
        #[arg(long)]
        session: Option<String>,
    },
    /// Follows a tenant's events as they are stored (the gateway's `GET /v1/tail`), one line
    /// per event: time, agent, action, ✓/✗/~, detail. Reconnects after a drop without
    /// losing or repeating an event. API key from `CHAUKAS_API_KEY`.
    Tail {
        /// The gateway's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The tenant (dev mode; with a key, the key's own).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Only this agent (name or id).
        #[arg(long)]
        agent: Option<String>,
        /// Only these event types (repeatable; e.g. TOOL_CALL_END, ERROR).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Start after this leaf (an id the tail printed before) instead of from now.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Lists or replays the messages no writer could store (the dead-letter stream).
    DeadLetters {
        #[command(subcommand)]
        command: crate::dead_letters::DeadLettersCommand,
    },
    /// Loads the configuration of every role (defaults, --config file, CHAUKAS_* variables)
    /// and exits 0 if all of it is valid, naming the first bad key otherwise.
    CheckConfig,
    /// Exits 0 when the gRPC endpoint answers Healthz under every service name it serves,
    /// or, with --http, when a health URL (e.g. a writer's /readyz) answers 200.
    Healthcheck {
        /// gRPC address of a gateway or query service.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        grpc: String,
        /// Check this HTTP URL instead of gRPC.
        #[arg(long)]
        http: Option<String>,
        /// Check only ChaukasServerService (the query service serves no client service).
        #[arg(long)]
        server_only: bool,
    },
    /// Loads JSON Lines written by chaukas-sdk in file mode (one event per line) into a
    /// running stack through the gateway. Prints progress on stderr and a summary naming every
    /// rejected line; exits 2 when some lines were rejected. Safe to repeat: duplicates are
    /// stored once.
    Import {
        /// The .jsonl file, or `-` for standard input.
        file: String,
        /// gRPC address of a gateway.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        grpc: String,
        /// Tenant for events without one.
        #[arg(long)]
        tenant: Option<String>,
        /// Project for events without one.
        #[arg(long)]
        project: Option<String>,
        /// Events per request.
        #[arg(long, default_value_t = 500)]
        batch_events: usize,
        /// API key for the gateway (as chaukas-sdk reads it).
        #[arg(long, env = "CHAUKAS_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// No progress line.
        #[arg(long, short)]
        quiet: bool,
    },
}

impl Command {
    /// The name this role reports in logs and exported spans.
    pub fn service_name(&self) -> &'static str {
        match self {
            Self::Gateway => "chaukas-gateway",
            Self::Writer => "chaukas-writer",
            Self::Query => "chaukas-query",
            Self::Migrate => "chaukas-migrate",
            Self::CheckConfig => "chaukas-check-config",
            Self::Keys { .. } => "chaukas-keys",
            Self::Policy { .. } => "chaukas-policy",
            Self::Retention { .. } => "chaukas-retention",
            Self::DeadLetters { .. } => "chaukas-dead-letters",
            Self::Log { .. } => "chaukas-log",
            Self::Verify { .. } => "chaukas-verify",
            Self::Export { .. } => "chaukas-export",
            Self::Healthcheck { .. } => "chaukas-healthcheck",
            Self::Import { .. } => "chaukas-import",
            Self::Tail { .. } => "chaukas-tail",
        }
    }
}

/// What `chaukas migrate` reads from configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MigrateConfig {
    /// The shared `[clickhouse]` section (`CHAUKAS_CLICKHOUSE__*`).
    pub clickhouse: ClickHouseConfig,
    /// The shared `[nats]` section (`CHAUKAS_NATS__*`): streams, limits, shard count.
    pub nats: chaukas_bus::NatsConfig,
    /// The `[writer]` section, for the lease lifetime of the lease bucket.
    pub writer: chaukas_writer::WriterSettings,
}

impl MigrateConfig {
    /// The key-value buckets the services expect.
    pub fn buckets(&self) -> Vec<chaukas_bus::kv::BucketSpec> {
        vec![
            chaukas_auth::bucket_spec(&self.nats),
            chaukas_policies::bucket_spec(&self.nats),
            chaukas_bus::status::bucket_spec(&self.nats),
            chaukas_writer::leases::bucket_spec(
                &self.nats.stream,
                std::time::Duration::from_secs(self.writer.lease_ttl_secs),
                self.nats.replicas,
            ),
        ]
    }
}
