//! The cost of API keys (the hardening issue): the gRPC closed loop with and without a key
//! checked on every request, alternated ABBA so drift and table growth weigh on both alike,
//! plus one request's key check timed in isolation.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chaukas_bus::NatsConfig;

use crate::args::Args;
use crate::ingest::{self, Target, Transport};
use crate::privacy::abba;

/// Events per second without and with keys (means of the runs), and one check's time.
pub struct KeyFigures {
    pub unkeyed_acked: f64,
    pub keyed_acked: f64,
    pub unkeyed_stored: f64,
    pub keyed_stored: f64,
    /// One request's key check and tenant confinement of a batch, in ns.
    pub check_ns: f64,
}

/// Runs each side twice, `events` events a run, settling merges before each.
pub async fn compare(
    target: &Target,
    nats: &async_nats::Client,
    args: &Args,
    run: &str,
    events: u64,
    settle: Duration,
) -> anyhow::Result<KeyFigures> {
    let (keys, check_ns) = bench_keys(nats, args, run).await?;
    let mut unkeyed = Vec::new();
    let mut keyed = Vec::new();
    for round in 0..2u64 {
        for with_keys in abba(round) {
            target.settle(settle).await?;
            let first_client = 5_000 + args.concurrency * (2 * round + u64::from(with_keys));
            let result = ingest::closed_loop(
                target,
                Transport::Grpc,
                events,
                args.batch,
                args.concurrency,
                first_client,
                with_keys.then_some(&keys),
            )
            .await?;
            if with_keys {
                keyed.push(result)
            } else {
                unkeyed.push(result)
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = |runs: &[ingest::ClosedLoop], rate: fn(&ingest::ClosedLoop) -> f64| {
        runs.iter().map(rate).sum::<f64>() / runs.len() as f64
    };
    Ok(KeyFigures {
        unkeyed_acked: mean(&unkeyed, |run| run.acked_per_second),
        keyed_acked: mean(&keyed, |run| run.acked_per_second),
        unkeyed_stored: mean(&unkeyed, |run| run.stored_per_second),
        keyed_stored: mean(&keyed, |run| run.stored_per_second),
        check_ns,
    })
}

/// One API key (ingest scope) per tenant of the keyed closed-loop clients, and the time one
/// request's key check takes (authenticate, then confine 500 events), in ns.
async fn bench_keys(
    nats: &async_nats::Client,
    args: &Args,
    run: &str,
) -> anyhow::Result<(HashMap<String, String>, f64)> {
    let store = chaukas_auth::KeyStore::open(
        &async_nats::jetstream::new(nats.clone()),
        &NatsConfig::default(),
    )
    .await?;
    let mut keys = HashMap::new();
    for client in 5_000..5_000 + 4 * args.concurrency {
        let tenant = crate::workload::tenant_of(run, client, args.tenants);
        if keys.contains_key(&tenant) {
            continue;
        }
        let new = store
            .create(
                "chaukas-bench".into(),
                tenant.clone(),
                None,
                vec![chaukas_auth::Scope::Ingest],
                None,
            )
            .await?;
        keys.insert(tenant, new.token);
    }
    // Gateways learn new keys through their watch; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tenant, token) = keys.iter().next().context("no bench keys")?;
    let header = format!("Bearer {token}");
    let events: Vec<String> = (0..args.batch).map(|_| tenant.clone()).collect();
    const CHECKS: u32 = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..CHECKS {
        let principal = store
            .authenticate(Some(&header), chaukas_auth::Scope::Ingest)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let admitted = events.iter().filter(|t| **t == principal.tenant).count();
        std::hint::black_box(admitted);
    }
    let check_ns = started.elapsed().as_secs_f64() * 1e9 / f64::from(CHECKS);
    Ok((keys, check_ns))
}
