//! Query latency against a loaded stack (`make up`, then the `ingest_load` example): p50 and
//! p99 of QueryEvents and GetEventStats through the gateway. The bench crate will own the
//! full suite; this gives the figures for a locally loaded dataset.
//!
//! cargo run --release -p chaukas --example query_latency -- --runs 200

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaukas_proto::common::v1::{EventType, QueryFilter, QueryRequest, TimeRange};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use clap::Parser;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
struct Args {
    /// Gateway gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// Tenant to query (the ingest_load example writes tenant-0 .. tenant-49).
    #[arg(long, default_value = "tenant-7")]
    tenant: String,
    /// Repetitions per query kind.
    #[arg(long, default_value_t = 200)]
    runs: usize,
}

fn request(filter: QueryFilter, page_token: String) -> server::QueryEventsRequest {
    server::QueryEventsRequest {
        query: Some(QueryRequest {
            filter: Some(filter),
            page_size: 100,
            page_token,
            order_by_time: 0,
        }),
    }
}

async fn first_event(
    client: &mut ChaukasServerServiceClient<Channel>,
    tenant: &str,
) -> (String, String) {
    let page = client
        .query_events(request(
            QueryFilter {
                tenant_id: tenant.into(),
                ..QueryFilter::default()
            },
            String::new(),
        ))
        .await
        .unwrap()
        .into_inner()
        .response
        .unwrap();
    let event = page
        .events
        .first()
        .expect("the tenant has events: run ingest_load first");
    (event.session_id.clone(), event.trace_id.clone())
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<38} p50 {:>8.2} ms   p99 {:>8.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())?
        .connect()
        .await?;
    let mut client =
        ChaukasServerServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
    let (session, trace) = first_event(&mut client, &args.tenant).await;
    let tenant = QueryFilter {
        tenant_id: args.tenant.clone(),
        ..QueryFilter::default()
    };

    // A token for page 20 of the tenant's timeline.
    let mut deep_token = String::new();
    for _ in 0..20 {
        deep_token = client
            .query_events(request(tenant.clone(), deep_token))
            .await?
            .into_inner()
            .response
            .unwrap()
            .next_page_token;
    }
    let queries: Vec<(&str, server::QueryEventsRequest)> = vec![
        (
            "QueryEvents by session",
            request(
                QueryFilter {
                    session_id: session,
                    ..tenant.clone()
                },
                String::new(),
            ),
        ),
        (
            "QueryEvents by trace",
            request(
                QueryFilter {
                    trace_id: trace,
                    ..tenant.clone()
                },
                String::new(),
            ),
        ),
        (
            "QueryEvents tenant, first page",
            request(tenant.clone(), String::new()),
        ),
        (
            "QueryEvents tenant, page 21",
            request(tenant.clone(), deep_token),
        ),
        (
            "QueryEvents types+tags+text_query",
            request(
                QueryFilter {
                    types: vec![
                        EventType::OutputEmitted as i32,
                        EventType::ToolCallStart as i32,
                    ],
                    text_query: "xxxxxxxxxx".into(),
                    ..tenant.clone()
                },
                String::new(),
            ),
        ),
    ];
    for (name, query) in queries {
        let mut samples = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            client.query_events(query.clone()).await?;
            samples.push(started.elapsed());
        }
        report(name, samples);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let now = i64::try_from(now)?;
    let since = |seconds: i64| {
        Some(TimeRange {
            start: Some(prost_types::Timestamp {
                seconds: now - seconds,
                nanos: 7,
            }),
            end: Some(prost_types::Timestamp {
                seconds: now + 60,
                nanos: 0,
            }),
        })
    };
    for (name, range) in [
        ("GetEventStats last day", since(86_400)),
        ("GetEventStats last 30 days", since(30 * 86_400)),
        ("GetEventStats everything", None),
    ] {
        let mut samples = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let started = Instant::now();
            client
                .get_event_stats(server::GetEventStatsRequest {
                    tenant_id: args.tenant.clone(),
                    project_id: String::new(),
                    time_range: range,
                })
                .await?;
            samples.push(started.elapsed());
        }
        report(name, samples);
    }
    Ok(())
}
