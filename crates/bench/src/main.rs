//! `chaukas-bench`: end-to-end ingest and query figures for a running stack (`make up`),
//! side by side with the raw limits of JetStream and ClickHouse measured in the same run.
//! `make bench` runs the short profile; `--profile full` loads 10M events (docs/benchmarks.md).

mod args;
mod baselines;
mod checkpoint;
mod ingest;
mod keys;
mod logcost;
mod otlp;
mod privacy;
mod procs;
mod query;
mod report;
mod stats;
mod workload;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::Args::parse();
    report::run(args).await
}
