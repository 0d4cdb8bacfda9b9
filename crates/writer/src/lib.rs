//! The writer: the only path from the bus into the audit trail.
//!
//! Each writer holds leases on some shards of the event stream (see [`leases`]), pulls
//! those shards' messages, and stores them in ClickHouse in batches, exactly once in effect
//! (see [`flush`]), acking each message only after its events are stored. Run as many as
//! you like: leases spread the shards over them and move a dead writer's shards to the
//! living within the lease TTL.

mod backlog;
mod batch;
mod choose;
mod config;
pub mod consumer;
pub mod flush;
mod insert;
pub mod leases;
mod lookup;
mod metrics;
mod sequencer;
mod staging;
mod worm;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use chaukas_bus::{BusError, NatsConfig};
use chaukas_common::health::{self, BindError};
use chaukas_store::StoreError;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{WriterConfig, WriterSettings};
pub use metrics::WriterMetrics;

use consumer::{FromShard, ShardContext};
use flush::{Batch, Flusher, Held, InFlight};
use leases::{LeaseEvent, LeaseKeeper};
use staging::Staging;

/// Messages buffered between the shard consumers and the writer loop: enough to keep the
/// loop busy, few enough that a stalled loop stops the pulling (bounded memory).
const INBOX_MESSAGES: usize = 256;
/// How often the writer loop checks whether the batch is old enough to flush.
const AGE_CHECK: Duration = Duration::from_millis(50);
/// Pause between attempts to set up streams and the lease bucket while NATS is away.
const SETUP_RETRY: Duration = Duration::from_secs(2);

/// Why the writer could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A listen address is taken or not allowed.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// NATS could not be reached or its settings are unusable.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The ClickHouse settings are unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log's keys are unusable.
    #[error(transparent)]
    Keys(#[from] chaukas_audit::KeyError),
    /// Settings that contradict each other.
    #[error("invalid [writer] configuration: {0}")]
    InvalidConfig(String),
    /// The HTTP server failed while running.
    #[error("http server failed: {0}")]
    Http(#[source] std::io::Error),
}

/// A writer with its HTTP port bound and its clients prepared.
pub struct BoundWriter {
    http: TcpListener,
    nats_client: async_nats::Client,
    clickhouse: clickhouse::Client,
    nats: NatsConfig,
    settings: WriterSettings,
    registry: Arc<Registry>,
    metrics: Arc<WriterMetrics>,
    sequencer: Arc<sequencer::Sequencer>,
    /// Least time between two rounds of checkpoints (`log.checkpoint_interval_ms`).
    checkpoint_spacing: Duration,
    /// Insert stages and claim lookups: where they live, their names and fences.
    staging: Arc<Staging>,
    /// The events database (for the insert-only report, see [`worm`]).
    events_database: String,
}

/// Checks the configuration, binds the HTTP port and starts connecting to NATS; neither
/// NATS nor ClickHouse has to be up yet, `/readyz` reports when they are.
pub async fn bind(config: &WriterConfig) -> Result<BoundWriter, WriterError> {
    config.nats.validate()?;
    config
        .writer
        .fencing_margin()
        .map_err(WriterError::InvalidConfig)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(WriterMetrics::register(&mut registry));
    let signers = config.log.signers()?;
    if !config.log.enabled {
        tracing::warn!(
            "the audit log is off (log.enabled = false): events are stored unsealed, `chaukas verify` reports each of them, and gateways say audit_proofs: false"
        );
    } else if signers.is_empty() {
        tracing::warn!(
            "no log signing key configured (log.signing_key_file): events are sealed into their tenants' logs, but no checkpoint is signed"
        );
    }
    let sequencer = Arc::new(sequencer::Sequencer::new(
        config.log.name.clone(),
        signers,
        config.log.enabled,
    ));
    let nats_client = config.nats.connect().await?;
    config.nats.refuse_mismatch(&nats_client).await?;
    let clickhouse = config.clickhouse.client()?;
    let scratch = config.writer.scratch(&config.clickhouse, &clickhouse)?;
    let staging = Arc::new(Staging::new(
        Duration::from_millis(config.writer.statement_timeout_ms),
        scratch,
    ));
    Ok(BoundWriter {
        http: health::bind(&config.writer.http_listen).await?,
        nats_client,
        clickhouse,
        staging,
        events_database: config.clickhouse.database.clone(),
        nats: config.nats.clone(),
        settings: config.writer.clone(),
        registry: Arc::new(registry),
        metrics,
        sequencer,
        checkpoint_spacing: Duration::from_millis(config.log.checkpoint_interval_ms.max(50)),
    })
}

fn writer_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "writer".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl BoundWriter {
    /// Where health probes and metrics scrapes connect.
    pub fn http_addr(&self) -> SocketAddr {
        health::local_addr(&self.http)
    }

    /// Stores events until `shutdown` resolves; then stops pulling, stores what it holds,
    /// acks it, hands its leases back and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WriterError> {
        let http_addr = self.http_addr();
        let stop_http = CancellationToken::new();
        let set_up = Arc::new(AtomicBool::new(false));
        let http = tokio::spawn(health::serve(
            self.http,
            health::routes(
                readiness(
                    self.nats_client.clone(),
                    self.clickhouse.clone(),
                    set_up.clone(),
                ),
                self.registry.clone(),
            ),
            stop_http.clone().cancelled_owned(),
        ));
        tracing::info!(http = %http_addr, "writer starting");

        let jetstream = jetstream::new(self.nats_client.clone());
        let mut shutdown = std::pin::pin!(shutdown);
        let kv = tokio::select! {
            () = &mut shutdown => None,
            kv = set_up_bus(&jetstream, &self.nats, &self.settings) => kv,
        };
        let backlog = tokio::spawn(backlog::watch(
            jetstream.clone(),
            self.nats.clone(),
            self.metrics.clone(),
            stop_http.clone(),
        ));
        let stop_report = CancellationToken::new();
        let reporter = worm::Reporter {
            jetstream: jetstream.clone(),
            nats: self.nats.clone(),
            clickhouse: self.clickhouse.clone(),
            scratch: self.staging.scratch().clone(),
            events_database: self.events_database.clone(),
            instance: writer_id(),
            sealing: self.sequencer.sealing(),
        };
        let reporter = tokio::spawn(reporter.run(stop_report.clone()));
        if let Some(kv) = kv {
            set_up.store(true, Ordering::Relaxed);
            let writer = Loop {
                jetstream: &jetstream,
                clickhouse: &self.clickhouse,
                staging: self.staging.clone(),
                nats: &self.nats,
                settings: &self.settings,
                metrics: &self.metrics,
                sequencer: self.sequencer.clone(),
            };
            let checkpoints = tokio::spawn(sequencer::checkpoint_loop(
                self.sequencer.clone(),
                self.clickhouse.clone(),
                self.checkpoint_spacing,
            ));
            writer.run(kv, shutdown).await;
            // Stop signing on a timer; sign what the last batches stored, once.
            checkpoints.abort();
            sequencer::sign_due(
                &self.sequencer,
                &self.clickhouse,
                self.checkpoint_spacing * 20,
            )
            .await;
        }
        stop_report.cancel();
        if tokio::time::timeout(Duration::from_secs(3), reporter)
            .await
            .is_err()
        {
            tracing::debug!("status report not withdrawn in time; it expires on its own");
        }
        stop_http.cancel();
        let _ = backlog.await;
        http.await
            .expect("http server task panicked")
            .map_err(WriterError::Http)?;
        match tokio::time::timeout(Duration::from_secs(5), self.nats_client.drain()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "nats connection did not drain cleanly"),
            Err(_) => tracing::warn!("nats connection drain timed out"),
        }
        tracing::info!("writer stopped");
        Ok(())
    }
}

fn readiness(
    nats: async_nats::Client,
    clickhouse: clickhouse::Client,
    set_up: Arc<AtomicBool>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let nats = nats.clone();
        let clickhouse = clickhouse.clone();
        let set_up = set_up.clone();
        Box::pin(async move {
            if !chaukas_bus::is_connected(&nats) {
                return Err("not connected to NATS".to_owned());
            }
            if !set_up.load(Ordering::Relaxed) {
                return Err(
                    "JetStream streams and lease bucket are not set up yet (`chaukas migrate` \
                     makes them)"
                        .to_owned(),
                );
            }
            chaukas_store::server_version(&clickhouse)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

/// Checks the streams and opens the lease bucket (both made by `chaukas migrate`), retrying
/// while NATS is away or they do not exist yet; `None` when they differ from this writer's
/// configuration (it must not run: see `chaukas_bus::layout`).
async fn set_up_bus(
    jetstream: &jetstream::Context,
    nats: &NatsConfig,
    settings: &WriterSettings,
) -> Option<async_nats::jetstream::kv::Store> {
    let leases = leases::bucket_spec(
        &nats.stream,
        Duration::from_secs(settings.lease_ttl_secs),
        nats.replicas,
    );
    loop {
        let attempt = async {
            nats.verify_streams(jetstream).await?;
            chaukas_bus::kv::open_bucket(jetstream, &leases).await
        };
        match attempt.await {
            Ok(kv) => return Some(kv),
            Err(error @ BusError::Mismatch { .. }) => {
                tracing::error!(%error, "the bus differs from this writer's configuration; not writing");
                return None;
            }
            Err(error) => tracing::warn!(%error, "bus not ready, retrying"),
        }
        tokio::time::sleep(SETUP_RETRY).await;
    }
}

/// The writer loop: owns the batch, the shard consumers and the reactions to leases.
struct Loop<'a> {
    jetstream: &'a jetstream::Context,
    clickhouse: &'a clickhouse::Client,
    staging: Arc<Staging>,
    nats: &'a NatsConfig,
    settings: &'a WriterSettings,
    metrics: &'a Arc<WriterMetrics>,
    sequencer: Arc<sequencer::Sequencer>,
}

impl Loop<'_> {
    async fn run(
        &self,
        kv: async_nats::jetstream::kv::Store,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) {
        let me = writer_id();
        tracing::info!(writer = %me, shards = self.nats.shards, "writer running");
        let (keeper, table, mut lease_events) =
            LeaseKeeper::new(kv, me, self.nats.shards, self.settings);
        let released = keeper.released();
        let stop_leases = CancellationToken::new();
        let keeper = tokio::spawn(keeper.run(stop_leases.clone()));
        let (inbox, mut incoming) = mpsc::channel::<FromShard>(INBOX_MESSAGES);
        // Each owned shard's task: its stop and its lease term (what its messages carry).
        let mut consumers: HashMap<u16, (CancellationToken, u64)> = HashMap::new();
        let current = |consumers: &HashMap<u16, (CancellationToken, u64)>, shard, term| {
            consumers
                .get(&shard)
                .is_some_and(|(_, current)| *current == term)
        };
        let mut batch = Batch::default();
        let mut failures: i64 = 0;
        let flusher = Flusher {
            clickhouse: self.clickhouse.clone(),
            jetstream: self.jetstream.clone(),
            nats: self.nats.clone(),
            settings: self.settings.clone(),
            leases: table.clone(),
            staging: self.staging.clone(),
            metrics: self.metrics.clone(),
            sequencer: self.sequencer.clone(),
        };
        let shard_context = ShardContext {
            jetstream: self.jetstream.clone(),
            clickhouse: self.clickhouse.clone(),
            nats: self.nats.clone(),
            settings: self.settings.clone(),
            leases: table.clone(),
            staging: self.staging.clone(),
            metrics: self.metrics.clone(),
        };
        // After a failed claim step the batch is retried as it is, before anything newer.
        let mut retrying = false;
        let sweeper = tokio::spawn(sweep_stages(self.staging.clone()));
        let mut in_flight = InFlight::default();
        let mut age_check = tokio::time::interval(AGE_CHECK);
        let max_age = Duration::from_millis(self.settings.max_batch_age_ms);

        loop {
            // A batch handed back to its shards' new owners is nothing to retry any more.
            retrying &= !batch.is_empty();
            let flush_now = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = lease_events.recv() => {
                    match event {
                        LeaseEvent::Acquired { shard, term } => {
                            let stop = CancellationToken::new();
                            tokio::spawn(consumer::consume(
                                shard_context.clone(),
                                shard,
                                term,
                                inbox.clone(),
                                stop.clone(),
                            ));
                            consumers.insert(shard, (stop, term));
                        }
                        LeaseEvent::Lost(shard) => {
                            if let Some((stop, _)) = consumers.remove(&shard) {
                                stop.cancel();
                            }
                            batch.hand_back_shard(shard).await;
                        }
                        LeaseEvent::Release(shard) => {
                            if let Some((stop, _)) = consumers.remove(&shard) {
                                stop.cancel();
                            }
                            batch.hand_back_shard(shard).await;
                            // Never hand a shard over with an insert of it in flight.
                            tracing::debug!(shard, "releasing after the insert in flight");
                            if !in_flight.finish().await {
                                failures += 1;
                            }
                            let _ = released.send(shard);
                        }
                    }
                    self.metrics.shards_owned.set(i64::try_from(consumers.len()).unwrap_or(0));
                    false
                }
                Some(from_shard) = incoming.recv(), if !retrying => match from_shard {
                    FromShard::Rewind { shard, term } => {
                        if current(&consumers, shard, term) {
                            batch.drop_shard(shard);
                        }
                        false
                    }
                    FromShard::Message(delivery) => {
                        if current(&consumers, delivery.shard, delivery.term) {
                            batch.push(Held::new(delivery));
                        } else {
                            // Pulled just before its shard was given up, or by a task that
                            // outlived its lease: hand it straight back.
                            flush::nak(&delivery.message, None).await;
                        }
                        batch.events() >= self.settings.max_batch_events
                            || batch.bytes() >= self.settings.max_batch_bytes
                    }
                },
                _ = age_check.tick() => !batch.is_empty() && (retrying || batch.age() >= max_age),
            };
            if flush_now {
                tracing::debug!(messages = batch.messages(), retrying, "flushing");
                if flusher.flush(&mut batch, &mut in_flight).await {
                    failures = 0;
                    retrying = false;
                } else {
                    failures += 1;
                    retrying = !batch.is_empty();
                    if failures % 20 == 0 {
                        tracing::warn!(
                            failures,
                            messages = batch.messages(),
                            "flushes keep failing"
                        );
                    }
                    let pause = self.settings.retry_delay(failures);
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }

        tracing::info!("writer draining: storing what it holds");
        for (stop, _) in consumers.values() {
            stop.cancel();
        }
        while let Ok(from_shard) = incoming.try_recv() {
            if let FromShard::Message(delivery) = from_shard
                && current(&consumers, delivery.shard, delivery.term)
            {
                batch.push(Held::new(delivery));
            }
        }
        let last_claimed = flusher.flush(&mut batch, &mut in_flight).await;
        let last_inserted = in_flight.finish().await;
        if !(last_claimed && last_inserted) {
            tracing::warn!("final flush failed; those messages are redelivered to the next owner");
        }
        for shard in consumers.keys() {
            let _ = released.send(*shard);
        }
        stop_leases.cancel();
        sweeper.abort();
        let _ = keeper.await;
    }
}

/// Drops insert stages left behind (a failed drop, a crashed writer) once a minute.
async fn sweep_stages(staging: Arc<Staging>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        match staging.sweep().await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "dropped insert stages left behind"),
            Err(error) => tracing::debug!(%error, "cannot sweep insert stages now"),
        }
    }
}
