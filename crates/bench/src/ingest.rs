//! Ingestion load: closed loop for the maximum rate, open loop for latency at a fixed rate
//! (scheduled send times, so a slow answer cannot hide the requests it delayed), unary calls,
//! and probes timing ingest → queryable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chaukas_proto::client::v1 as client;
use chaukas_proto::common::v1::{Event, EventBatch, QueryFilter, QueryRequest};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tonic::transport::Channel;

use crate::stats::Samples;
use crate::workload::Client;

/// Which front door the load uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `IngestEventBatch` over gRPC.
    Grpc,
    /// `POST /events/batch` with a binary protobuf body, as chaukas-sdk sends it.
    Http,
}

/// Where the stack listens, and the run's identity.
#[derive(Clone)]
pub struct Target {
    pub grpc: ChaukasServerServiceClient<Channel>,
    pub http: SocketAddr,
    pub clickhouse: clickhouse::Client,
    pub run: String,
    pub tenants: u64,
}

impl Target {
    /// Rows in `events` now.
    pub async fn stored_rows(&self) -> anyhow::Result<u64> {
        Ok(self
            .clickhouse
            .query("SELECT count() FROM events")
            .fetch_one()
            .await?)
    }

    /// Waits (at most `timeout`) until ClickHouse has no merge running, so one phase's
    /// background merges do not land on the next phase's figures.
    pub async fn settle(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let merges: u64 = self
                .clickhouse
                .query("SELECT count() FROM system.merges")
                .fetch_one()
                .await?;
            if merges == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// Active data parts per table of the database, most first: ClickHouse slows inserts
    /// down on purpose once a partition holds too many (`parts_to_delay_insert`).
    pub async fn active_parts(&self) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(self
            .clickhouse
            .query(
                "SELECT table, count() AS parts FROM system.parts \
                 WHERE active AND database = currentDatabase() \
                 GROUP BY table ORDER BY parts DESC",
            )
            .fetch_all()
            .await?)
    }

    /// Waits until `events` holds `rows` rows; returns when it did. Each look is a query
    /// ClickHouse answers on the same cores as the pipeline it times: looking every 25 ms
    /// for a whole run was ~7% of ClickHouse's time in a 15 s run (and more of the slower
    /// side's, as it ran longer). So it looks every 250 ms until the rows left are within
    /// 5% of the total or 20k (more than a quarter second of storing at any rate this box
    /// reaches, so no sleep can step over the end), then every 25 ms as before.
    pub async fn wait_for_rows(&self, rows: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let first = self.stored_rows().await?;
        loop {
            let stored = self.stored_rows().await?;
            if stored >= rows {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("only {stored} of {rows} rows stored after {timeout:?}");
            }
            let left = rows - stored;
            let near = left <= 20_000 || left * 20 <= rows.saturating_sub(first);
            let pause = if near { 25 } else { 250 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

/// A keep-alive HTTP/1.1 connection posting protobuf batches.
struct HttpConnection {
    stream: TcpStream,
    addr: SocketAddr,
    buffer: Vec<u8>,
}

impl HttpConnection {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("gateway HTTP at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            addr,
            buffer: Vec::with_capacity(4096),
        })
    }

    async fn post(&mut self, path: &str, token: Option<&str>, body: &[u8]) -> anyhow::Result<u16> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
             Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            token.unwrap_or("bench"),
            body.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(body).await?;
        self.buffer.clear();
        let (status, body_start, length) = loop {
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                bail!("gateway closed the connection");
            }
            self.buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
                let status: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|code| code.parse().ok())
                    .context("no HTTP status")?;
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                break (status, end + 4, length);
            }
        };
        while self.buffer.len() < body_start + length {
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                bail!("gateway closed the connection mid-answer");
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
        Ok(status)
    }
}

/// One sender: a gRPC client or an HTTP connection, with the API key it presents (if any).
struct Sender {
    link: Link,
    token: Option<String>,
}

enum Link {
    Grpc(ChaukasServerServiceClient<Channel>),
    Http(HttpConnection),
}

impl Sender {
    async fn new(
        target: &Target,
        transport: Transport,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let link = match transport {
            Transport::Grpc => Link::Grpc(target.grpc.clone()),
            Transport::Http => Link::Http(HttpConnection::connect(target.http).await?),
        };
        Ok(Self { link, token })
    }

    /// Sends a batch; returns how many events were accepted.
    async fn send(&mut self, events: Vec<Event>) -> anyhow::Result<u64> {
        let count = events.len() as u64;
        let batch = EventBatch {
            batch_id: String::new(),
            events,
            ..EventBatch::default()
        };
        match &mut self.link {
            Link::Grpc(client) => {
                let mut request = tonic::Request::new(server::IngestEventBatchRequest {
                    event_batch: Some(batch),
                });
                if let Some(token) = &self.token {
                    request
                        .metadata_mut()
                        .insert("authorization", format!("Bearer {token}").parse()?);
                }
                let response = client.ingest_event_batch(request).await?.into_inner();
                if response.rejected_count > 0 {
                    bail!("{} events rejected", response.rejected_count);
                }
                Ok(u64::try_from(response.accepted_count)?)
            }
            Link::Http(connection) => {
                let body = client::IngestEventBatchRequest {
                    event_batch: Some(batch),
                }
                .encode_to_vec();
                let status = connection
                    .post("/events/batch", self.token.as_deref(), &body)
                    .await?;
                if status != 202 {
                    bail!("HTTP {status}");
                }
                Ok(count)
            }
        }
    }
}

/// What a closed-loop run measured.
pub struct ClosedLoop {
    pub events: u64,
    /// Events acknowledged per second (gateway answered).
    pub acked_per_second: f64,
    /// Events stored per second, from the first send until ClickHouse held them all.
    pub stored_per_second: f64,
    pub ack: Samples,
}

/// Sends `events` events in batches of `batch` from `concurrency` clients as fast as the
/// stack answers, then waits until ClickHouse has them. With `keys` (tenant -> API key), each
/// client presents its tenant's key.
pub async fn closed_loop(
    target: &Target,
    transport: Transport,
    events: u64,
    batch: usize,
    concurrency: u64,
    first_client: u64,
    keys: Option<&std::collections::HashMap<String, String>>,
) -> anyhow::Result<ClosedLoop> {
    let rows_before = target.stored_rows().await?;
    let remaining = Arc::new(AtomicU64::new(events));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let client_id = first_client + worker;
        let token = keys.and_then(|keys| {
            keys.get(&crate::workload::tenant_of(
                &target.run,
                client_id,
                target.tenants,
            ))
            .cloned()
        });
        let mut sender = Sender::new(target, transport, token).await?;
        let remaining = remaining.clone();
        let mut client = Client::new(&target.run, client_id, target.tenants);
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut accepted = 0;
            loop {
                let take = remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        left.checked_sub(1)
                            .map(|_| left.saturating_sub(batch as u64))
                    })
                    .map(|left| left.min(batch as u64));
                let Ok(take) = take else { break };
                let events = client.batch(usize::try_from(take)?);
                let sent = Instant::now();
                accepted += sender.send(events).await?;
                samples.push(sent.elapsed());
            }
            anyhow::Ok((accepted, samples))
        }));
    }
    let mut accepted = 0;
    let mut ack = Samples::default();
    for worker in workers {
        let (count, samples) = worker.await??;
        accepted += count;
        ack.extend(samples);
    }
    let acked = started.elapsed();
    let stored_at = target
        .wait_for_rows(rows_before + accepted, Duration::from_secs(600))
        .await?;
    let stored = stored_at - started;
    Ok(ClosedLoop {
        events: accepted,
        #[allow(clippy::cast_precision_loss)]
        acked_per_second: accepted as f64 / acked.as_secs_f64(),
        #[allow(clippy::cast_precision_loss)]
        stored_per_second: accepted as f64 / stored.as_secs_f64(),
        ack,
    })
}

/// Unary `IngestEvent` calls from `concurrency` tasks for `duration`; events/s.
pub async fn unary(
    target: &Target,
    concurrency: u64,
    duration: Duration,
    first_client: u64,
) -> anyhow::Result<(f64, Samples)> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let mut grpc = target.grpc.clone();
        let mut client = Client::new(&target.run, first_client + worker, target.tenants);
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while started.elapsed() < duration {
                let sent = Instant::now();
                grpc.ingest_event(server::IngestEventRequest {
                    event: Some(client.next_event()),
                })
                .await?;
                samples.push(sent.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Samples::default();
    for worker in workers {
        all.extend(worker.await??);
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, all))
}

/// What an open-loop run measured.
pub struct OpenLoop {
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// Ack latency measured from each request's scheduled send time.
    pub ack: Samples,
    /// Ingest → returned by QueryEvents.
    pub queryable: Samples,
    pub errors: u64,
}

/// Sends batches of `batch` at `rate` events/s for `duration`, on schedule whatever the
/// answers do, while probes time how long an acked event takes to become queryable.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    batch: usize,
    duration: Duration,
    first_client: u64,
    clients: u64,
) -> anyhow::Result<OpenLoop> {
    #[allow(clippy::cast_precision_loss)]
    let interval = Duration::from_secs_f64(batch as f64 / rate);
    let generators: Vec<Arc<Mutex<Client>>> = (0..clients)
        .map(|c| {
            Arc::new(Mutex::new(Client::new(
                &target.run,
                first_client + c,
                target.tenants,
            )))
        })
        .collect();
    let ack = Arc::new(Mutex::new(Samples::default()));
    let errors = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let probe = tokio::spawn(probe_queryable(target.clone(), duration, first_client));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let mut index: u32 = 0;
    loop {
        let scheduled = started + interval * index;
        if scheduled - started >= duration {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let generator = generators[index as usize % generators.len()].clone();
        let mut grpc = target.grpc.clone();
        let (ack, errors, sent) = (ack.clone(), errors.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let events = generator.lock().await.batch(batch);
            let result = grpc
                .ingest_event_batch(server::IngestEventBatchRequest {
                    event_batch: Some(EventBatch {
                        events,
                        ..EventBatch::default()
                    }),
                })
                .await;
            let latency = scheduled.elapsed();
            match result {
                Ok(response) => {
                    sent.fetch_add(
                        u64::try_from(response.into_inner().accepted_count).unwrap_or(0),
                        Ordering::Relaxed,
                    );
                    ack.lock().await.push(latency);
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        index += 1;
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let queryable = probe.await??;
    let ack = std::mem::take(&mut *ack.lock().await);
    Ok(OpenLoop {
        target_rate: rate,
        #[allow(clippy::cast_precision_loss)]
        achieved_rate: sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        ack,
        queryable,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Every 200 ms: ingest one event in a session of its own, then poll QueryEvents for it.
/// `loop_id` (the open loop's first client) keeps each loop's probes apart: a probe that
/// reused an earlier loop's event id would be stored once and found at once.
async fn probe_queryable(
    target: Target,
    duration: Duration,
    loop_id: u64,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let started = Instant::now();
    let mut client = Client::new(&format!("{}-probe", target.run), loop_id, 1);
    let mut grpc = target.grpc.clone();
    let mut probe = 0u64;
    while started.elapsed() < duration {
        let mut event = client.next_event();
        event.session_id = format!("{}-probe-{loop_id}-{probe}", target.run);
        probe += 1;
        let filter = QueryFilter {
            tenant_id: event.tenant_id.clone(),
            session_id: event.session_id.clone(),
            ..QueryFilter::default()
        };
        let sent = Instant::now();
        grpc.ingest_event(server::IngestEventRequest { event: Some(event) })
            .await?;
        loop {
            let response = grpc
                .query_events(server::QueryEventsRequest {
                    query: Some(QueryRequest {
                        filter: Some(filter.clone()),
                        page_size: 1,
                        ..QueryRequest::default()
                    }),
                })
                .await?
                .into_inner();
            if response.response.is_some_and(|r| !r.events.is_empty()) {
                samples.push(sent.elapsed());
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                bail!("a probe event was not queryable within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(samples)
}
