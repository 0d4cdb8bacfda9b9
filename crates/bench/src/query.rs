//! Query latency: QueryEvents by session, by trace, by tenant and time (first and a deep
//! page), with filters and text; GetEventStats for a day, a month and everything; the
//! sessions list (a first page, and filtered by outcome) and one session's detail. Each is
//! repeated and reported as p50/p99.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaukas_proto::common::v1::{EventType, QueryFilter, QueryRequest, TimeRange};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use prost_types::Timestamp;
use tonic::transport::Channel;

use crate::stats::Samples;
use crate::workload::{self, SESSION_EVENTS, TRACE_EVENTS};

/// Pages followed before timing a "deep" page.
const DEEP_PAGE: usize = 10;

enum Request {
    Query(Box<QueryRequest>),
    Stats(server::GetEventStatsRequest),
    /// A GET of the gateway's HTTP API (the sessions routes).
    Get(String),
}

/// A named query.
pub struct Case {
    pub name: &'static str,
    request: Request,
}

fn ago(duration: Duration) -> Timestamp {
    let at = SystemTime::now()
        .checked_sub(duration)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(at.as_secs()).unwrap_or_default(),
        nanos: 0,
    }
}

fn query(filter: QueryFilter, page_token: String) -> Request {
    Request::Query(Box::new(QueryRequest {
        filter: Some(filter),
        page_size: 100,
        page_token,
        ..QueryRequest::default()
    }))
}

/// The queries, over data of run `run` (clients `0..clients`, `events_per_client` each).
pub async fn cases(
    grpc: &mut ChaukasServerServiceClient<Channel>,
    run: &str,
    tenants: u64,
    events_per_client: u64,
) -> anyhow::Result<Vec<Case>> {
    let tenant = workload::tenant_of(run, 0, tenants);
    let session = (events_per_client / SESSION_EVENTS / 2).max(1);
    let trace = (events_per_client / TRACE_EVENTS / 3).max(1);
    let by_tenant = QueryFilter {
        tenant_id: tenant.clone(),
        time: Some(TimeRange {
            start: Some(ago(Duration::from_secs(3600))),
            end: None,
        }),
        ..QueryFilter::default()
    };
    // The token of the deep page, found by following the pages once.
    let mut token = String::new();
    for _ in 1..DEEP_PAGE {
        let response = grpc
            .query_events(server::QueryEventsRequest {
                query: Some(QueryRequest {
                    filter: Some(by_tenant.clone()),
                    page_size: 100,
                    page_token: token.clone(),
                    ..QueryRequest::default()
                }),
            })
            .await?
            .into_inner()
            .response
            .unwrap_or_default();
        token = response.next_page_token;
        if token.is_empty() {
            anyhow::bail!("tenant {tenant} has fewer than {DEEP_PAGE} pages of events");
        }
    }
    let stats = |start: Option<Timestamp>| {
        Request::Stats(server::GetEventStatsRequest {
            tenant_id: tenant.clone(),
            project_id: String::new(),
            time_range: start.map(|start| TimeRange {
                start: Some(start),
                end: None,
            }),
        })
    };
    Ok(vec![
        Case {
            name: "QueryEvents by session",
            request: query(
                QueryFilter {
                    tenant_id: tenant.clone(),
                    session_id: workload::session_id(run, 0, session),
                    ..QueryFilter::default()
                },
                String::new(),
            ),
        },
        Case {
            name: "QueryEvents by trace",
            request: query(
                QueryFilter {
                    tenant_id: tenant.clone(),
                    trace_id: workload::trace_id(run, 0, trace),
                    ..QueryFilter::default()
                },
                String::new(),
            ),
        },
        Case {
            name: "QueryEvents tenant+hour, page 1",
            request: query(by_tenant.clone(), String::new()),
        },
        Case {
            name: "QueryEvents tenant+hour, page 10",
            request: query(by_tenant.clone(), token),
        },
        Case {
            name: "QueryEvents types+text_query",
            request: query(
                QueryFilter {
                    tenant_id: tenant.clone(),
                    types: vec![
                        EventType::ToolCallStart as i32,
                        EventType::ToolCallEnd as i32,
                    ],
                    text_query: "refund".into(),
                    ..QueryFilter::default()
                },
                String::new(),
            ),
        },
        Case {
            name: "GetEventStats day",
            request: stats(Some(ago(Duration::from_secs(86_400)))),
        },
        Case {
            name: "GetEventStats month",
            request: stats(Some(ago(Duration::from_secs(30 * 86_400)))),
        },
        Case {
            name: "GetEventStats everything",
            request: stats(None),
        },
        Case {
            name: "sessions list, page 1",
            request: Request::Get(format!("/v1/sessions?tenant={tenant}&page_size=50")),
        },
        Case {
            name: "sessions list, outcome",
            request: Request::Get(format!(
                "/v1/sessions?tenant={tenant}&page_size=50&outcome=complete"
            )),
        },
        Case {
            name: "session detail",
            request: Request::Get(format!(
                "/v1/sessions/{}?tenant={tenant}",
                workload::session_id(run, 0, session)
            )),
        },
    ])
}

/// GETs `path` from the gateway's HTTP port; the status and body.
async fn get(http: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(http).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {http}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP head from {path}"))?;
    let status = String::from_utf8_lossy(&answer[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, answer[end + 4..].to_vec()))
}

/// Runs `case` `runs` times (after one warm-up) and returns the latencies.
pub async fn measure(
    grpc: &mut ChaukasServerServiceClient<Channel>,
    http: std::net::SocketAddr,
    case: &Case,
    runs: usize,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for run in 0..=runs {
        let started = Instant::now();
        match &case.request {
            Request::Query(request) => {
                let response = grpc
                    .query_events(server::QueryEventsRequest {
                        query: Some(request.as_ref().clone()),
                    })
                    .await?
                    .into_inner();
                if response.response.is_none_or(|r| r.events.is_empty()) {
                    anyhow::bail!("{} returned no events", case.name);
                }
            }
            Request::Stats(request) => {
                let response = grpc.get_event_stats(request.clone()).await?.into_inner();
                if response.total_events == 0 {
                    anyhow::bail!("{} counted no events", case.name);
                }
            }
            Request::Get(path) => {
                let (status, body) = get(http, path).await?;
                if status != 200 || body.len() < 3 {
                    anyhow::bail!(
                        "{} answered {status}: {}",
                        case.name,
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
        if run > 0 {
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}
