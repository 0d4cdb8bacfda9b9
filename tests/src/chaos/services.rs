//! The services of one chaos run as real processes, so faults can be real: SIGKILL,
//! SIGSTOP past the lease and SIGCONT, restarts on the same ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chaukas_bus::NatsConfig;

/// Writer timers short enough that a run sees leases expire and messages come back, long
/// enough to be realistic (the fencing margin is 4 s - 1 s - 2 x 0.4 s = 2.2 s).
pub const LEASE_TTL_SECS: u64 = 4;
/// ClickHouse statement timeout of the writers.
pub const STATEMENT_TIMEOUT_MS: u64 = 1_000;
const WRITER_SETTINGS: [(&str, &str); 7] = [
    ("CHAUKAS_WRITER__MAX_BATCH_AGE_MS", "100"),
    ("CHAUKAS_WRITER__STATEMENT_TIMEOUT_MS", "1000"),
    ("CHAUKAS_WRITER__ACK_WAIT_SECS", "4"),
    ("CHAUKAS_WRITER__LEASE_TTL_SECS", "4"),
    ("CHAUKAS_WRITER__LEASE_RENEW_MS", "400"),
    ("CHAUKAS_WRITER__MAX_RETRY_DELAY_SECS", "1"),
    ("CHAUKAS_WRITER__MAX_BATCH_EVENTS", "500"),
];

/// Where the services of a run connect, and how to start them.
pub struct Services {
    binary: String,
    nats: NatsConfig,
    /// ClickHouse as the writers see it: through the fault proxy.
    writer_clickhouse: String,
    database: String,
    /// The gateway's fixed gRPC address (kept across restarts).
    pub gateway_grpc: SocketAddr,
    gateway_http: SocketAddr,
    logs: PathBuf,
    gateway: Option<Child>,
    writers: Vec<Writer>,
    /// The run's audit log settings, with a signing key of its own.
    pub log: chaukas_audit::LogConfig,
}

/// One writer process and whether it is paused.
struct Writer {
    child: Option<Child>,
    paused: bool,
}

impl Services {
    /// Prepares (starts nothing yet) the services of a run; logs go to files in `logs`.
    pub fn new(
        binary: &str,
        nats: NatsConfig,
        writer_clickhouse: String,
        database: String,
        logs: &Path,
    ) -> Self {
        let port = |_| SocketAddr::from(([127, 0, 0, 1], chaukas_testkit::free_port()));
        Self {
            binary: binary.to_owned(),
            nats,
            writer_clickhouse,
            database,
            gateway_grpc: port(()),
            gateway_http: port(()),
            logs: logs.to_owned(),
            gateway: None,
            writers: Vec::new(),
            log: crate::test_log_config(),
        }
    }

    fn command(&self, role: &str, log: &str) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(log))
            .expect("open the log file");
        let mut command = Command::new(&self.binary);
        command
            .arg(role)
            .envs(crate::nats_env(&self.nats))
            .env("CHAUKAS_CLICKHOUSE__DATABASE", &self.database)
            .env(
                "CHAUKAS_LOG__SIGNING_KEYS",
                self.log.signing_keys.clone().unwrap_or_default(),
            )
            .env(
                "CHAUKAS_LOG__CHECKPOINT_INTERVAL_MS",
                self.log.checkpoint_interval_ms.to_string(),
            )
            // The writer at debug: a failing seed's logs must show where a shard waited
            // (passing seeds' logs are deleted).
            .env(
                "RUST_LOG",
                std::env::var("CHAUKAS_CHAOS_LOG")
                    .unwrap_or_else(|_| "info,chaukas_writer=debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(log);
        command
    }

    /// Starts (or restarts) the gateway on its fixed ports.
    pub fn start_gateway(&mut self) {
        self.kill_gateway();
        let child = self
            .command("gateway", "gateway.log")
            .env(
                "CHAUKAS_GATEWAY__GRPC_LISTEN",
                self.gateway_grpc.to_string(),
            )
            .env(
                "CHAUKAS_GATEWAY__HTTP_LISTEN",
                self.gateway_http.to_string(),
            )
            .env("CHAUKAS_GATEWAY__ALLOW_UNAUTHENTICATED", "true")
            .env("CHAUKAS_GATEWAY__OTLP_GRPC_LISTEN", "127.0.0.1:0")
            .env("CHAUKAS_GATEWAY__OTLP_HTTP_LISTEN", "127.0.0.1:0")
            .spawn()
            .expect("the chaukas binary starts");
        self.gateway = Some(child);
    }

    /// SIGKILLs the gateway.
    pub fn kill_gateway(&mut self) {
        if let Some(mut child) = self.gateway.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts writer `index` (a new process if it was killed); adds writers as needed.
    pub fn start_writer(&mut self, index: usize) {
        while self.writers.len() <= index {
            self.writers.push(Writer {
                child: None,
                paused: false,
            });
        }
        if self.writers[index].child.is_some() {
            return;
        }
        let mut command = self.command("writer", &format!("writer-{index}.log"));
        command
            .env("CHAUKAS_CLICKHOUSE__URL", &self.writer_clickhouse)
            .env("CHAUKAS_WRITER__HTTP_LISTEN", "127.0.0.1:0")
            .envs(WRITER_SETTINGS);
        self.writers[index].child = Some(command.spawn().expect("the chaukas binary starts"));
    }

    /// SIGKILLs writer `index`.
    pub fn kill_writer(&mut self, index: usize) {
        if let Some(writer) = self.writers.get_mut(index) {
            if let Some(mut child) = writer.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            writer.paused = false;
        }
    }

    /// SIGSTOPs (`pause`) or SIGCONTs writer `index`.
    pub fn pause_writer(&mut self, index: usize, pause: bool) {
        if let Some(writer) = self.writers.get_mut(index)
            && let Some(child) = &writer.child
        {
            let signal = if pause { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            writer.paused = pause;
        }
    }

    /// Resumes every paused writer and starts every killed one.
    pub fn heal(&mut self) {
        for index in 0..self.writers.len() {
            if self.writers[index].paused {
                self.pause_writer(index, false);
            }
            self.start_writer(index);
        }
        if self.gateway.is_none() {
            self.start_gateway();
        }
    }

    /// How many writers there are.
    pub fn writer_count(&self) -> usize {
        self.writers.len()
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.kill_gateway();
        for index in 0..self.writers.len() {
            self.pause_writer(index, false);
            self.kill_writer(index);
        }
    }
}
