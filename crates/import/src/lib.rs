//! `chaukas import`: loads the JSON Lines that `chaukas-sdk` writes in file mode
//! (`CHAUKAS_OUTPUT_MODE=file`) into a running stack.
//!
//! Agents that ran offline, in CI or in an air-gapped sandbox keep their audit trail in a file;
//! importing it later must give the same rows as if they had been online. Each line is one
//! event as protobuf's canonical JSON (the SDK writes naive UTC timestamps; both JSON spellings
//! are accepted, see `chaukas-json`). Lines are validated here with the gateway's own rules, so
//! every bad line is reported with its number and the reason, then sent in batches over gRPC
//! (`IngestEventBatch`) and retried while the gateway is unavailable. Importing the same file
//! twice stores each event once: the pipeline deduplicates by event key.

mod progress;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chaukas_proto::common::v1::{Event, EventBatch};
use chaukas_proto::server::v1::IngestEventBatchRequest;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tonic::transport::{Channel, Endpoint};

pub use progress::Progress;

/// Attempts per batch while the gateway answers UNAVAILABLE (or similar), ~2 minutes in all.
const MAX_ATTEMPTS: u32 = 12;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The gateway's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub endpoint: String,
    /// Events per `IngestEventBatch` request (the gateway accepts at most 1000 by default).
    pub batch_events: usize,
    /// Encoded bytes per request, kept under the gateway's request limit.
    pub batch_bytes: usize,
    /// The largest event accepted, as the gateway is configured (`max_event_bytes`).
    pub max_event_bytes: usize,
    /// Tenant for events that have none (the SDK always sets one; hand-written files may not).
    pub tenant: Option<String>,
    /// Project for events that have none.
    pub project: Option<String>,
    /// API key presented to the gateway (`chk_...`), for a gateway that enforces keys.
    pub api_key: Option<String>,
}

impl ImportOptions {
    /// Defaults matching a gateway with default limits at `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            batch_events: 500,
            batch_bytes: 4 * 1024 * 1024,
            max_event_bytes: 512 * 1024,
            tenant: None,
            project: None,
            api_key: None,
        }
    }
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the input.
    pub line: u64,
    /// What is wrong, naming the field where there is one.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Blank lines, skipped.
    pub blank_lines: u64,
    /// Events the gateway accepted (JetStream has them).
    pub accepted: u64,
    /// Lines not imported, in line order.
    pub rejected: Vec<BadLine>,
}

impl ImportReport {
    /// Whether every non-blank line was imported.
    pub fn is_complete(&self) -> bool {
        self.rejected.is_empty()
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {} events from {} lines: {} accepted, {} rejected, {} blank",
            self.accepted,
            self.lines,
            self.accepted,
            self.rejected.len(),
            self.blank_lines
        )?;
        for bad in &self.rejected {
            writeln!(f, "  line {}: {}", bad.line, bad.reason)?;
        }
        Ok(())
    }
}

/// Why an import stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// As given.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the input failed midway.
    #[error("reading the input failed after line {line}: {source}")]
    Read {
        /// Last line read completely.
        line: u64,
        /// Why.
        source: std::io::Error,
    },
    /// No gateway at the endpoint.
    #[error("cannot reach the gateway at {endpoint}: {reason} (is the stack up? see `make up`)")]
    Connect {
        /// As configured.
        endpoint: String,
        /// Transport error.
        reason: String,
    },
    /// The gateway refused a whole batch, or stayed unavailable through every retry.
    #[error(
        "the gateway refused lines {first_line}-{last_line}: {code:?}: {message} \
         ({accepted} events accepted before; importing again is safe, duplicates are dropped)"
    )]
    Gateway {
        /// First line of the batch.
        first_line: u64,
        /// Last line of the batch.
        last_line: u64,
        /// The gRPC status code.
        code: tonic::Code,
        /// The gateway's message.
        message: String,
        /// Events accepted before this batch.
        accepted: u64,
    },
}

/// Imports `path` (`-` for standard input), drawing `progress` as it goes.
pub async fn import_path(
    path: &str,
    options: &ImportOptions,
    progress: &mut Progress,
) -> Result<ImportReport, ImportError> {
    if path == "-" {
        return import(tokio::io::stdin(), options, progress).await;
    }
    let open_error = |source| ImportError::Open {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(open_error)?;
    if let Ok(metadata) = file.metadata().await {
        progress.set_total_bytes(metadata.len());
    }
    import(file, options, progress).await
}

/// Imports every line of `input`.
pub async fn import(
    input: impl AsyncRead + Unpin,
    options: &ImportOptions,
    progress: &mut Progress,
) -> Result<ImportReport, ImportError> {
    let mut sender = Sender::connect(options).await?;
    let mut reader = BufReader::new(input);
    let mut report = ImportReport::default();
    let mut batch = Batch::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| ImportError::Read {
                line: report.lines,
                source,
            })?;
        if read == 0 {
            break;
        }
        report.lines += 1;
        progress.advance(read as u64);
        match parse_line(&line, options) {
            Ok(None) => report.blank_lines += 1,
            Ok(Some(event)) => {
                if batch.would_overflow(&event, options) {
                    sender.send(std::mem::take(&mut batch), &mut report).await?;
                }
                batch.push(report.lines, event);
            }
            Err(reason) => report.rejected.push(BadLine {
                line: report.lines,
                reason,
            }),
        }
        progress.draw(&report);
    }
    if !batch.lines.is_empty() {
        sender.send(batch, &mut report).await?;
    }
    report.rejected.sort_by_key(|bad| bad.line);
    progress.finish(&report);
    Ok(report)
}

/// One line into an event: `None` for a blank line, `Err` with the reason for a bad one.
fn parse_line(line: &[u8], options: &ImportOptions) -> Result<Option<Event>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut event: Event = chaukas_json::from_slice(line).map_err(|error| error.to_string())?;
    if event.tenant_id.is_empty()
        && let Some(tenant) = &options.tenant
    {
        event.tenant_id.clone_from(tenant);
    }
    if event.project_id.is_empty()
        && let Some(project) = &options.project
    {
        event.project_id.clone_from(project);
    }
    chaukas_gateway::validate::validate(&event, options.max_event_bytes)
        .map_err(|rejection| rejection.to_string())?;
    Ok(Some(event))
}

/// Events on their way, with the line each came from.
#[derive(Default)]
struct Batch {
    lines: Vec<u64>,
    events: Vec<Event>,
    bytes: usize,
}

impl Batch {
    fn would_overflow(&self, event: &Event, options: &ImportOptions) -> bool {
        !self.events.is_empty()
            && (self.events.len() >= options.batch_events
                || self.bytes + event.encoded_len() > options.batch_bytes)
    }

    fn push(&mut self, line: u64, event: Event) {
        self.bytes += event.encoded_len();
        self.lines.push(line);
        self.events.push(event);
    }
}

struct Sender {
    client: ChaukasServerServiceClient<Channel>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Sender {
    async fn connect(options: &ImportOptions) -> Result<Self, ImportError> {
        let connect_error = |reason: String| ImportError::Connect {
            endpoint: options.endpoint.clone(),
            reason,
        };
        let channel = Endpoint::from_shared(options.endpoint.clone())
            .map_err(|error| connect_error(error.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .map_err(|error| connect_error(error.to_string()))?;
        let client = ChaukasServerServiceClient::new(channel)
            .max_encoding_message_size(options.batch_bytes.saturating_mul(2));
        let authorization = options
            .api_key
            .as_deref()
            .map(|key| format!("Bearer {}", key.trim()).parse())
            .transpose()
            .map_err(|_| {
                connect_error("the API key has characters a header cannot carry".into())
            })?;
        Ok(Self {
            client,
            authorization,
        })
    }

    /// Sends `batch`, retrying while the gateway is temporarily unable to take it, and
    /// records what it accepted and rejected.
    async fn send(&mut self, batch: Batch, report: &mut ImportReport) -> Result<(), ImportError> {
        let first_line = batch.lines.first().copied().unwrap_or_default();
        let last_line = batch.lines.last().copied().unwrap_or_default();
        let request = IngestEventBatchRequest {
            event_batch: Some(EventBatch {
                batch_id: format!("import-lines-{first_line}-{last_line}"),
                events: batch.events,
                ..EventBatch::default()
            }),
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        let response = loop {
            let mut call = tonic::Request::new(request.clone());
            if let Some(authorization) = &self.authorization {
                call.metadata_mut()
                    .insert("authorization", authorization.clone());
            }
            match self.client.ingest_event_batch(call).await {
                Ok(response) => break response.into_inner(),
                Err(status) if retryable(status.code()) && attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(status) => {
                    return Err(ImportError::Gateway {
                        first_line,
                        last_line,
                        code: status.code(),
                        message: status.message().to_owned(),
                        accepted: report.accepted,
                    });
                }
            }
        };
        report.accepted += u64::try_from(response.accepted_count).unwrap_or_default();
        let refused: HashSet<&str> = response
            .rejected_event_ids
            .iter()
            .map(String::as_str)
            .collect();
        let events = request.event_batch.map(|batch| batch.events);
        for (line, event) in batch.lines.iter().zip(events.iter().flatten()) {
            if refused.contains(event.event_id.as_str()) {
                report.rejected.push(BadLine {
                    line: *line,
                    reason: format!(
                        "event {:?} rejected by the gateway: a tenant or project other than the \
                         API key's, or a gateway limit stricter than this import's (the gateway \
                         log names it)",
                        event.event_id
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Codes that mean "later", not "never".
fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::DeadlineExceeded
    )
}
