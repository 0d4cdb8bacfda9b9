//! `chaukas`: one binary, one image, every role chosen by subcommand.

mod audit_log;
mod cli;
mod dead_letters;
mod healthcheck;
mod keys;
mod policy;
mod retention;
mod tail;

use clap::Parser;

use cli::{Cli, Command};

/// mimalloc instead of glibc's malloc: after a burst of large requests glibc kept the freed
/// memory (the gateway stayed at 840 MiB RSS a minute after `make abuse`); mimalloc returns
/// freed pages to the OS shortly after they are freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = chaukas_common::telemetry::init(cli.command.service_name())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(cli));
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "chaukas exited with an error");
    }
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_file = cli.config.as_deref();
    let shutdown = chaukas_common::shutdown::signal();
    match cli.command {
        Command::Gateway => {
            let config: chaukas_gateway::GatewayConfig = chaukas_common::config::load(config_file)?;
            chaukas_gateway::bind(&config)
                .await?
                .serve(shutdown)
                .await?;
        }
        Command::Writer => {
            let config: chaukas_writer::WriterConfig = chaukas_common::config::load(config_file)?;
            chaukas_writer::bind(&config).await?.serve(shutdown).await?;
        }
        Command::Query => {
            let config: chaukas_query::QueryConfig = chaukas_common::config::load(config_file)?;
            chaukas_query::bind(&config).await?.serve(shutdown).await?;
        }
        Command::Tail {
            url,
            tenant,
            project,
            session,
            agent,
            types,
            after,
        } => {
            let mut filters: Vec<(String, String)> = [
                ("tenant", tenant),
                ("project", project),
                ("session", session),
                ("agent", agent),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name.to_owned(), value)))
            .collect();
            filters.extend(types.into_iter().map(|kind| ("type".to_owned(), kind)));
            tail::follow(tail::TailOptions {
                url,
                api_key: std::env::var("CHAUKAS_API_KEY").unwrap_or_default(),
                filters,
                after: after.map(|leaf| leaf.to_string()),
            })
            .await?;
        }
        Command::Healthcheck {
            http: Some(url), ..
        } => {
            healthcheck::check_http(&url).await?;
            println!("healthy: {url}");
        }
        Command::Healthcheck {
            grpc,
            http: None,
            server_only,
        } => {
            healthcheck::check(&grpc, server_only).await?;
            println!("healthy: {grpc}");
        }
        Command::Import {
            file,
            grpc,
            tenant,
            project,
            batch_events,
            api_key,
            quiet,
        } => {
            let options = chaukas_import::ImportOptions {
                tenant,
                project,
                batch_events,
                api_key,
                ..chaukas_import::ImportOptions::new(grpc)
            };
            let mut progress = if quiet {
                chaukas_import::Progress::quiet()
            } else {
                chaukas_import::Progress::stderr()
            };
            let report = chaukas_import::import_path(&file, &options, &mut progress).await?;
            print!("{report}");
            if !report.is_complete() {
                std::process::exit(2);
            }
        }
        Command::Keys { command } => {
            let config: keys::KeysConfig = chaukas_common::config::load(config_file)?;
            keys::run(command, &config).await?;
        }
        Command::Policy { command } => {
            let config: keys::KeysConfig = chaukas_common::config::load(config_file)?;
            policy::run(command, &config).await?;
        }
        Command::Retention { command } => {
            let config: retention::RetentionConfig = chaukas_common::config::load(config_file)?;
            retention::run(command, &config).await?;
        }
        Command::Log { command } => audit_log::run(command)?,
        Command::Verify {
            bundle: Some(bundle),
            keys,
            ..
        } => audit_log::verify_bundle(&bundle, &keys)?,
        Command::Verify {
            tenant,
            keys,
            checkpoint,
            bundle: None,
        } => {
            let config: audit_log::VerifyConfig = chaukas_common::config::load(config_file)?;
            let request = audit_log::VerifyRequest {
                tenant: tenant.unwrap_or_default(),
                keys,
                saved: checkpoint,
            };
            audit_log::verify(request, &config).await?;
        }
        Command::Export { tenant, session } => {
            let config: audit_log::VerifyConfig = chaukas_common::config::load(config_file)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            audit_log::export(&tenant, session.as_deref(), &config, &mut out).await?;
            std::io::Write::flush(&mut out)?;
        }
        Command::DeadLetters { command } => {
            let config: keys::KeysConfig = chaukas_common::config::load(config_file)?;
            dead_letters::run(command, &config).await?;
        }
        Command::CheckConfig => {
            let _: chaukas_gateway::GatewayConfig = chaukas_common::config::load(config_file)?;
            let _: chaukas_writer::WriterConfig = chaukas_common::config::load(config_file)?;
            let _: chaukas_query::QueryConfig = chaukas_common::config::load(config_file)?;
            let _: cli::MigrateConfig = chaukas_common::config::load(config_file)?;
            println!("configuration valid for gateway, writer, query and migrate");
        }
        Command::Migrate => {
            let config: cli::MigrateConfig = chaukas_common::config::load(config_file)?;
            let report = chaukas_store::migrations::migrate(&config.clickhouse).await?;
            println!(
                "clickhouse {} database {}: applied {:?}, already applied {:?}",
                report.server_version,
                config.clickhouse.database,
                report.applied,
                report.already_applied
            );
            let scratch = &config.writer.scratch_database;
            if !scratch.is_empty() {
                chaukas_store::scratch::prepare(&config.clickhouse, scratch).await?;
                println!("clickhouse scratch database {scratch}: ready");
            }
            let client = config.nats.connect().await?;
            let jetstream = async_nats::jetstream::new(client);
            for line in config
                .nats
                .apply_layout(&jetstream, &config.buckets())
                .await?
            {
                println!("nats {line}");
            }
        }
    }
    Ok(())
}
