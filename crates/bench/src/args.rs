//! The command line of `chaukas-bench`: where the stack is, how hard to push, where results go.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Under 5 minutes: 1M events stored before the query figures.
    Quick,
    /// 10M events stored before the query figures; longer runs everywhere.
    Full,
}

/// Benchmarks a running stack (`make up`).
#[derive(Debug, Parser)]
#[command(name = "chaukas-bench")]
pub struct Args {
    #[arg(long, value_enum, default_value = "quick")]
    pub(crate) profile: Profile,
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub(crate) grpc: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) http: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats: String,
    /// NATS user and password of the stack (`make up` writes them to `.run/cli.env`).
    #[arg(long, env = "CHAUKAS_NATS__USER", default_value = "")]
    pub(crate) nats_user: String,
    #[arg(
        long,
        env = "CHAUKAS_NATS__PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub(crate) nats_password: String,
    /// ClickHouse user with write access for the raw-insert baseline (the stack's migrate user).
    #[arg(long, env = "CHAUKAS_CLICKHOUSE__USER", default_value = "default")]
    pub(crate) clickhouse_user: String,
    #[arg(
        long,
        env = "CHAUKAS_CLICKHOUSE__PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub(crate) clickhouse_password: String,
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub(crate) clickhouse: String,
    #[arg(long, default_value = "chaukas")]
    pub(crate) database: String,
    /// Where `make up` keeps its pid files, to account CPU and memory per process.
    #[arg(long, default_value = ".run/pids")]
    pub(crate) pids: PathBuf,
    /// Where results are appended as JSON lines.
    #[arg(long, default_value = "bench/results")]
    pub(crate) results: PathBuf,
    /// Git commit measured (the Makefile passes it).
    #[arg(long, env = "CHAUKAS_BENCH_COMMIT", default_value = "unknown")]
    pub(crate) commit: String,
    /// Events per batch request in the closed-loop runs.
    #[arg(long, default_value_t = 500)]
    pub(crate) batch: usize,
    /// Requests in flight in the closed-loop runs.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: u64,
    /// A shell command that restarts the stack's writer with the environment it is given
    /// (`CHAUKAS_LOG__ENABLED`), for the audit log's on/off comparison; empty: skipped.
    #[arg(long, default_value = "")]
    pub(crate) restart_writer: String,
    /// Distinct tenants.
    #[arg(long, default_value_t = 50)]
    pub(crate) tenants: u64,
    /// Runs this phase alone and prints its figures, appending nothing to the results: for
    /// working on one figure without the whole run's half hour (`make bench ONLY=log-cost`).
    #[arg(long, value_enum)]
    pub(crate) only: Option<Phase>,
}

/// A phase `--only` can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// The audit log on and off (issue #14).
    LogCost,
    /// A realistic privacy policy against none (issue #15).
    Privacy,
}
