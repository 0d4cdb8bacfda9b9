//! Shared pieces of the end-to-end tests in `tests/tests/`: a whole ingestion pipeline
//! (gateway and writer, in this process) on the harness's NATS and ClickHouse, isolated by
//! its own database and stream names, plus a realistic event corpus.

pub mod chaos;
mod contract;
pub mod corpus;
mod http;
mod stored;

pub use chaukas_testkit::raw_grpc;
pub use contract::{ScriptOutput, assert_conforms, run_contract_script};
pub use http::{
    HttpResponse, create_key, create_project_key, get_json, get_with_key, gzip, http_get, http_raw,
    http_request, ingest_with_key,
};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaukas_bus::NatsConfig;
use chaukas_gateway::GatewayConfig;
use chaukas_proto::common::v1::Event;
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_store::ClickHouseConfig;
use chaukas_testkit::TestDatabase;
use chaukas_writer::WriterConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Settings for a writer that reacts quickly, so tests do not wait for production timers.
pub fn quick_writer_settings() -> chaukas_writer::WriterSettings {
    chaukas_writer::WriterSettings {
        http_listen: "127.0.0.1:0".into(),
        max_batch_age_ms: 100,
        statement_timeout_ms: 3_000,
        ack_wait_secs: 10,
        lease_ttl_secs: 6,
        lease_renew_ms: 500,
        max_retry_delay_secs: 2,
        ..chaukas_writer::WriterSettings::default()
    }
}

/// The default log name with a fresh signing key, as `make up` would make one.
pub fn test_log_config() -> chaukas_audit::LogConfig {
    let key = chaukas_audit::SignerKey::generate("chaukas.localhost").expect("randomness");
    chaukas_audit::LogConfig {
        signing_keys: Some(key.to_secret_string()),
        checkpoint_interval_ms: 200,
        ..chaukas_audit::LogConfig::default()
    }
}

/// Events as their clients sent them: the server's log fields (which every stored event
/// has, docs/audit.md) checked present, then cleared.
pub fn as_sent(mut events: Vec<Event>) -> Vec<Event> {
    for event in &mut events {
        assert!(
            event.content_hash.len() == 64 && !event.worm_proof_id.is_empty(),
            "event {} came back without its log fields",
            event.event_id
        );
        event.content_hash.clear();
        event.hash_prev.clear();
        event.worm_proof_id.clear();
    }
    events
}

/// A running gateway and writer of a test's own.
pub struct Pipeline {
    /// Where gRPC clients connect.
    pub grpc: SocketAddr,
    /// The gateway's HTTP address.
    pub http: SocketAddr,
    /// The in-process writer's HTTP address, if there is one.
    pub writer_http: Option<SocketAddr>,
    /// The query service's gRPC address (internal: gateways present its token).
    pub query_grpc: SocketAddr,
    /// The test's database.
    pub db: TestDatabase,
    /// Settings pointing at it.
    pub clickhouse: ClickHouseConfig,
    /// The test's streams.
    pub nats: NatsConfig,
    /// The audit log's name and the test's own signing key.
    pub log: chaukas_audit::LogConfig,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts a gateway and a writer with test settings.
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// Starts a gateway and a writer after `adjust` has changed their settings.
    pub async fn start_with(adjust: impl FnOnce(&mut GatewayConfig, &mut WriterConfig)) -> Self {
        Self::start_custom(None, true, adjust).await
    }

    /// The general form: a database on the ClickHouse at `clickhouse_url` (the harness's by
    /// default), with or without an in-process writer (tests that kill writers run their
    /// own), settings changed by `adjust`.
    pub async fn start_custom(
        clickhouse_url: Option<String>,
        with_writer: bool,
        adjust: impl FnOnce(&mut GatewayConfig, &mut WriterConfig),
    ) -> Self {
        init_logs();
        let (db, clickhouse) = migrated_database(clickhouse_url).await;
        let nats = chaukas_testkit::nats_config();
        let mut gateway = GatewayConfig {
            nats: nats.clone(),
            ..GatewayConfig::default()
        };
        // Most tests are about other things than keys; those about keys turn this off.
        gateway.gateway.allow_unauthenticated = true;
        gateway.gateway.listen_on_free_loopback_ports();
        let log = test_log_config();
        let mut writer = WriterConfig {
            writer: quick_writer_settings(),
            nats: nats.clone(),
            clickhouse: clickhouse.clone(),
            log: log.clone(),
        };
        let mut query_config = chaukas_query::QueryConfig {
            clickhouse: clickhouse.clone(),
            log,
            ..chaukas_query::QueryConfig::default()
        };
        query_config.query.grpc_listen = "127.0.0.1:0".into();
        query_config.query.http_listen = "127.0.0.1:0".into();
        let bound_query = chaukas_query::bind(&query_config).await.unwrap();
        let query_grpc = bound_query.grpc_addr();
        gateway.gateway.query_endpoint = format!("http://{query_grpc}");
        adjust(&mut gateway, &mut writer);
        apply_bus(&gateway.nats, writer.writer.lease_ttl_secs).await;

        let (stop_query, query_stopped) = oneshot::channel::<()>();
        let query_task = tokio::spawn(async move {
            bound_query
                .serve(async {
                    query_stopped.await.ok();
                })
                .await
                .unwrap();
        });
        let bound_gateway = chaukas_gateway::bind(&gateway).await.unwrap();
        let (grpc, http) = (bound_gateway.grpc_addr(), bound_gateway.http_addr());
        let (stop_gateway, gateway_stopped) = oneshot::channel::<()>();
        let mut stops = vec![stop_gateway, stop_query];
        let mut tasks = vec![
            query_task,
            tokio::spawn(async move {
                bound_gateway
                    .serve(async {
                        gateway_stopped.await.ok();
                    })
                    .await
                    .unwrap();
            }),
        ];
        let mut writer_http = None;
        if with_writer {
            let bound_writer = chaukas_writer::bind(&writer).await.unwrap();
            writer_http = Some(bound_writer.http_addr());
            let (stop_writer, writer_stopped) = oneshot::channel::<()>();
            stops.push(stop_writer);
            tasks.push(tokio::spawn(async move {
                bound_writer
                    .serve(async {
                        writer_stopped.await.ok();
                    })
                    .await
                    .unwrap();
            }));
        }
        let pipeline = Self {
            grpc,
            http,
            writer_http,
            query_grpc,
            db,
            clickhouse,
            nats,
            log: writer.log.clone(),
            stops,
            tasks,
        };
        pipeline.wait_until_ready().await;
        pipeline
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for addr in std::iter::once(self.http).chain(self.writer_http) {
            loop {
                let (status, reason) = http_get(addr, "/readyz").await;
                if status == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{addr} not ready within 30 s: {reason}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// A client of the gateway's server service.
    pub async fn server_client(&self) -> ChaukasServerServiceClient<Channel> {
        ChaukasServerServiceClient::new(channel(self.grpc).await)
    }

    /// ClickHouse client on the test's database.
    pub fn clickhouse_client(&self) -> clickhouse::Client {
        self.clickhouse.client().unwrap()
    }

    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("services stop within 30 s")
                .unwrap();
        }
        self.db.drop_database().await;
    }
}

/// A database of the test's own with the schema applied, on the ClickHouse at `url` (the
/// harness's by default): services are ready only once the schema exists.
pub async fn migrated_database(url: Option<String>) -> (TestDatabase, ClickHouseConfig) {
    let db = match url {
        Some(url) => TestDatabase::new_on(url).await,
        None => TestDatabase::new().await,
    };
    let clickhouse = ClickHouseConfig {
        url: db.url.clone(),
        database: db.name.clone(),
        ..ClickHouseConfig::default()
    };
    chaukas_store::migrations::migrate(&clickhouse)
        .await
        .unwrap();
    (db, clickhouse)
}

/// What `chaukas migrate` does to NATS: the streams of `nats` and the key and lease buckets
/// (leases living `lease_ttl_secs`). Services only check the layout; tests make it first.
pub async fn apply_bus(nats: &NatsConfig, lease_ttl_secs: u64) {
    let client = nats.connect().await.expect("connect to NATS");
    let buckets = [
        chaukas_auth::bucket_spec(nats),
        chaukas_policies::bucket_spec(nats),
        chaukas_bus::status::bucket_spec(nats),
        chaukas_writer::leases::bucket_spec(
            &nats.stream,
            Duration::from_secs(lease_ttl_secs),
            nats.replicas,
        ),
    ];
    let jetstream = async_nats::jetstream::new(client);
    // A cluster that has just started listens before its JetStream meta group knows every
    // peer: replicated streams cannot be placed yet. Wait for it, as an operator would.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match nats.apply_layout(&jetstream, &buckets).await {
            Ok(_) => return,
            Err(error) => {
                let text = error.to_string();
                let forming =
                    text.contains("no suitable peers") || text.contains("temporarily unavailable");
                assert!(
                    forming && Instant::now() < deadline,
                    "apply the bus layout: {text}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Stores `json` as `tenant`'s privacy policy, as `chaukas policy set` does; gateways
/// apply it once their watch has it (within a second).
pub async fn set_policy(nats: &NatsConfig, tenant: &str, json: &str) {
    let client = nats.connect().await.expect("connect to NATS");
    let store = chaukas_policies::PolicyStore::open(&async_nats::jetstream::new(client), nats)
        .await
        .expect("the policy bucket exists");
    let policy = chaukas_privacy::Policy::parse(json.as_bytes()).expect("a valid policy");
    store
        .set(tenant, None, policy, "test")
        .await
        .expect("the policy is stored");
}

/// An IngestEventBatch request carrying `events`.
pub fn batch_request(events: Vec<Event>) -> server::IngestEventBatchRequest {
    server::IngestEventBatchRequest {
        event_batch: Some(chaukas_proto::common::v1::EventBatch {
            batch_id: "test-batch".into(),
            events,
            ..Default::default()
        }),
    }
}

/// Sends service logs to the test's captured output (shown for failing tests); level from
/// `RUST_LOG`, warnings by default.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A connected gRPC channel.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The `[nats]` settings a service process needs to find `nats`' streams exactly as
/// [`apply_bus`] made them (services refuse a bus that differs from their settings).
pub fn nats_env(nats: &NatsConfig) -> Vec<(&'static str, String)> {
    vec![
        ("CHAUKAS_NATS__URL", nats.url.clone()),
        ("CHAUKAS_NATS__STREAM", nats.stream.clone()),
        ("CHAUKAS_NATS__SUBJECT_PREFIX", nats.subject_prefix.clone()),
        (
            "CHAUKAS_NATS__DEAD_LETTER_STREAM",
            nats.dead_letter_stream.clone(),
        ),
        (
            "CHAUKAS_NATS__DEAD_LETTER_SUBJECT",
            nats.dead_letter_subject.clone(),
        ),
        ("CHAUKAS_NATS__MAX_BYTES", nats.max_bytes.to_string()),
        (
            "CHAUKAS_NATS__DEAD_LETTER_MAX_BYTES",
            nats.dead_letter_max_bytes.to_string(),
        ),
        (
            "CHAUKAS_NATS__DUPLICATE_WINDOW_SECS",
            nats.duplicate_window_secs.to_string(),
        ),
    ]
}

/// A `chaukas <role>` process command (the binary at `binary`) sharing `pipeline`'s NATS
/// stream and ClickHouse database, with the quick writer timers tests use; callers add their
/// own settings and spawn it.
pub fn role_command(binary: &str, pipeline: &Pipeline, role: &str) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command.arg(role).envs(nats_env(&pipeline.nats));
    command
        .env("CHAUKAS_CLICKHOUSE__URL", &pipeline.clickhouse.url)
        .env(
            "CHAUKAS_CLICKHOUSE__DATABASE",
            &pipeline.clickhouse.database,
        )
        .env("CHAUKAS_WRITER__HTTP_LISTEN", "127.0.0.1:0")
        .env("CHAUKAS_WRITER__MAX_BATCH_AGE_MS", "100")
        .env("CHAUKAS_WRITER__STATEMENT_TIMEOUT_MS", "3000")
        .env("CHAUKAS_WRITER__ACK_WAIT_SECS", "10")
        .env("CHAUKAS_WRITER__LEASE_TTL_SECS", "6")
        .env("CHAUKAS_WRITER__LEASE_RENEW_MS", "500")
        .env("CHAUKAS_GATEWAY__ALLOW_UNAUTHENTICATED", "true")
        // Many gateways run at once: OTLP's usual ports only where a test asks for them.
        .env("CHAUKAS_GATEWAY__OTLP_GRPC_LISTEN", "127.0.0.1:0")
        .env("CHAUKAS_GATEWAY__OTLP_HTTP_LISTEN", "127.0.0.1:0")
        .env(
            "CHAUKAS_LOG__SIGNING_KEYS",
            pipeline.log.signing_keys.clone().unwrap_or_default(),
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command
}

/// A steady stream of batches to a pipeline's gateway, each acknowledged or the test fails
/// (the gateway must keep accepting through whatever the test does to storage).
pub struct SteadyLoad {
    acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl SteadyLoad {
    /// Sends batches of `batch` new events of `tenant`, `pause` apart.
    pub async fn start(
        pipeline: &Pipeline,
        tenant: &'static str,
        batch: usize,
        pause: Duration,
    ) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let acked = std::sync::Arc::new(AtomicU64::new(0));
        let running = std::sync::Arc::new(AtomicBool::new(true));
        let mut client = pipeline.server_client().await;
        let task = {
            let (acked, running) = (acked.clone(), running.clone());
            tokio::spawn(async move {
                let mut number = 0;
                while running.load(Ordering::Relaxed) {
                    let events = (0..batch)
                        .map(|i| corpus::simple_event(tenant, &format!("b{number}-e{i}")))
                        .collect();
                    let response = client
                        .ingest_event_batch(batch_request(events))
                        .await
                        .expect("the gateway keeps accepting whatever happens to storage");
                    let accepted = u64::try_from(response.into_inner().accepted_count).unwrap();
                    acked.fetch_add(accepted, Ordering::Relaxed);
                    number += 1;
                    tokio::time::sleep(pause).await;
                }
            })
        };
        Self {
            acked,
            running,
            task,
        }
    }

    /// Events acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops sending and returns every event acknowledged.
    pub async fn stop(self) -> u64 {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        self.acked.load(std::sync::atomic::Ordering::Relaxed)
    }
}
