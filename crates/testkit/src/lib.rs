//! What every integration test needs to share one pair of real servers safely.
//!
//! `make test` starts a NATS and a ClickHouse server for the whole run (see
//! `tests/harness/servers.sh`) and exports their addresses; each test then works in its
//! own ClickHouse database and its own JetStream stream names, so tests run in parallel
//! without seeing each other.
pub mod fault_proxy;
pub mod nats_cluster;
pub mod raw_grpc;

pub use nats_cluster::NatsCluster;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// ClickHouse HTTP endpoint the harness started (`CHAUKAS_TEST_CLICKHOUSE_URL`).
pub fn clickhouse_url() -> String {
    std::env::var("CHAUKAS_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// The harness ClickHouse as a socket address, for putting a [`fault_proxy::FaultProxy`] in
/// front of it.
pub fn clickhouse_addr() -> std::net::SocketAddr {
    clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the harness ClickHouse URL is http://<ip>:<port>")
}

/// NATS endpoint the harness started (`CHAUKAS_TEST_NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("CHAUKAS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".into())
}

/// A name no other test in this or a concurrent run will pick: prefix, process id, a
/// per-process counter and the clock.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{prefix}_{}_{count}_{nanos}", std::process::id())
}

/// A ClickHouse database of a test's own, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    /// HTTP endpoint of the server.
    pub url: String,
    /// The database name, unique to this test.
    pub name: String,
}

impl TestDatabase {
    /// Picks a fresh name after checking the server answers, so a forgotten harness
    /// fails with instructions rather than a connection error deep in a test.
    pub async fn new() -> Self {
        Self::new_on(clickhouse_url()).await
    }

    /// Like [`TestDatabase::new`], on the server at `url`.
    pub async fn new_on(url: String) -> Self {
        let client = clickhouse::Client::default()
            .with_url(&url)
            .with_validation(false);
        if let Err(error) = client.query("SELECT 1").execute().await {
            panic!(
                "no ClickHouse test server at {url} ({error}); run the tests with `make test`, \
                 or start the servers with `make test-servers` and export the variables it prints"
            );
        }
        Self {
            url,
            name: unique_name("test"),
        }
    }

    /// Removes the database; call it at the end of a test that passed.
    pub async fn drop_database(self) {
        let client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false);
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        client
            .query(&sql)
            .execute()
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }
}

/// NATS settings pointing at the test server, with stream, subject and dead-letter names
/// no other test uses.
pub fn nats_config() -> chaukas_bus::NatsConfig {
    let name = unique_name("T").to_uppercase();
    chaukas_bus::NatsConfig {
        url: nats_url(),
        subject_prefix: format!("{}.events", name.to_lowercase()),
        dead_letter_subject: format!("{}.deadletter", name.to_lowercase()),
        dead_letter_stream: format!("{name}_DEAD_LETTER"),
        stream: format!("{name}_EVENTS"),
        // Every test's streams reserve their limits on the one harness server (JetStream
        // refuses new streams once the reservations pass its storage limit), so keep them
        // small: a test's backlog is a few MiB.
        max_bytes: 64 * 1024 * 1024,
        dead_letter_max_bytes: 16 * 1024 * 1024,
        ..chaukas_bus::NatsConfig::default()
    }
}

/// A free TCP port on loopback (bound and released; good enough for test servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn server_binary(name: &str) -> String {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// A NATS server of one test's own, for tests that stop and restart the bus. Its
/// JetStream data survives a restart, as a real server's does.
pub struct PrivateNats {
    /// Client port.
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    /// `(user, password)` the server requires, if any.
    credentials: Option<(String, String)>,
}

impl PrivateNats {
    /// Starts `nats-server -js` on a free port with storage in a fresh directory.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`PrivateNats::start`], with a server that requires `user` and `password`.
    pub fn start_with_password(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_owned(), password.to_owned())))
    }

    fn start_with(credentials: Option<(String, String)>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique_name("chaukas-nats"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            port,
            dir,
            child: None,
            credentials,
        };
        server.restart();
        server
    }

    /// URL for clients.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Shuts the server down (SIGTERM: it flushes its storage and consumer state) and waits
    /// for it to exit.
    pub fn shut_down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and storage, waiting until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new(server_binary("nats-server"))
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .args(
                self.credentials
                    .iter()
                    .flat_map(|(user, password)| ["--user", user, "--pass", password]),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is installed (make test installs it)");
        self.child = Some(child);
        wait_for_port(self.port);
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A ClickHouse server of one test's own, started with the project's own local config
/// (deploy/local/lib.sh), for tests that take storage away.
pub struct PrivateClickHouse {
    /// HTTP port.
    pub http_port: u16,
    tcp_port: u16,
    dir: std::path::PathBuf,
}

impl PrivateClickHouse {
    /// Starts a server on free ports with data in a fresh directory; waits until it answers.
    pub fn start() -> Self {
        let server = Self {
            http_port: free_port(),
            tcp_port: free_port(),
            dir: std::env::temp_dir().join(unique_name("chaukas-clickhouse")),
        };
        server.restart();
        server
    }

    /// Like [`PrivateClickHouse::start`], with the users `make up` makes, one per role
    /// (deploy/local/lib.sh): `chaukas_migrate`, `chaukas_writer` (insert-only),
    /// `chaukas_query` (read-only) and `chaukas_scratch`, with the passwords `m`, `w`, `q`
    /// and `s`, confined to `database` and `scratch_database`; the default user is locked.
    pub fn start_with_roles(database: &str, scratch_database: &str) -> Self {
        let server = Self {
            http_port: free_port(),
            tcp_port: free_port(),
            dir: std::env::temp_dir().join(unique_name("chaukas-clickhouse")),
        };
        server.lib_with(
            &format!(
                "start_clickhouse {} {} m w q s",
                server.http_port, server.tcp_port
            ),
            &[
                ("CHAUKAS_CLICKHOUSE__DATABASE", database),
                ("CHAUKAS_WRITER__SCRATCH_DATABASE", scratch_database),
            ],
        );
        server
    }

    /// HTTP URL for clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn lib(&self, command: &str) {
        self.lib_with(command, &[]);
    }

    fn lib_with(&self, command: &str, env: &[(&str, &str)]) {
        let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/local/lib.sh");
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("source {lib} && {command}"))
            .env("RUN_DIR", &self.dir)
            .envs(env.iter().copied())
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "`{command}` failed; see {}/logs",
            self.dir.display()
        );
    }

    /// Stops the server (SIGTERM, as an orchestrator would) and waits for it to exit.
    pub fn stop(&self) {
        self.lib("stop_process clickhouse");
    }

    /// Freezes the server (SIGSTOP): connections stay open and statements hang, as on a
    /// stalled machine. [`PrivateClickHouse::resume`] lets it go on where it was.
    pub fn pause(&self) {
        self.lib("kill -STOP \"$(cat \"$RUN_DIR/pids/clickhouse.pid\")\"");
    }

    /// Continues a paused server (SIGCONT).
    pub fn resume(&self) {
        self.lib("kill -CONT \"$(cat \"$RUN_DIR/pids/clickhouse.pid\")\"");
    }

    /// Starts the server again with the same data.
    pub fn restart(&self) {
        self.lib(&format!(
            "start_clickhouse {} {}",
            self.http_port, self.tcp_port
        ));
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "server on port {port} did not start within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
