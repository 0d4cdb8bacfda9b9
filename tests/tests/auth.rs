//! API keys: every refusal has its status over gRPC and HTTP, a key never reaches another
//! tenant's (or project's) events, and a revocation reaches a second gateway within seconds.

use std::time::{Duration, Instant};

use chaukas_auth::{KeyStore, Scope};
use chaukas_proto::common::v1::{Event, EventBatch, QueryFilter, QueryRequest};
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{HttpResponse, Pipeline, http_request};
use tonic::Code;
use tonic::transport::Channel;

async fn secured() -> Pipeline {
    Pipeline::start_with(|gateway, _| gateway.gateway.allow_unauthenticated = false).await
}

async fn key_store(pipeline: &Pipeline) -> KeyStore {
    let client = async_nats::connect(&pipeline.nats.url).await.unwrap();
    KeyStore::open(&async_nats::jetstream::new(client), &pipeline.nats)
        .await
        .unwrap()
}

async fn create(
    keys: &KeyStore,
    tenant: &str,
    project: Option<&str>,
    scopes: &[Scope],
    expires_at_ms: Option<i64>,
) -> String {
    keys.create(
        "test".into(),
        tenant.into(),
        project.map(str::to_owned),
        scopes.to_vec(),
        expires_at_ms,
    )
    .await
    .unwrap()
    .token
}

fn with_key<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if !token.is_empty() {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn client(pipeline: &Pipeline) -> ChaukasServerServiceClient<Channel> {
    pipeline.server_client().await
}

async fn ingest(
    client: &mut ChaukasServerServiceClient<Channel>,
    token: &str,
    events: Vec<Event>,
) -> Result<server::IngestEventBatchResponse, tonic::Status> {
    client
        .ingest_event_batch(with_key(
            server::IngestEventBatchRequest {
                event_batch: Some(EventBatch {
                    events,
                    ..EventBatch::default()
                }),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn query(
    client: &mut ChaukasServerServiceClient<Channel>,
    token: &str,
    filter: QueryFilter,
) -> Result<Vec<Event>, tonic::Status> {
    client
        .query_events(with_key(
            server::QueryEventsRequest {
                query: Some(QueryRequest {
                    filter: Some(filter),
                    page_size: 1000,
                    ..QueryRequest::default()
                }),
            },
            token,
        ))
        .await
        .map(|response| {
            response
                .into_inner()
                .response
                .map(|r| r.events)
                .unwrap_or_default()
        })
}

async fn stats(
    client: &mut ChaukasServerServiceClient<Channel>,
    token: &str,
    tenant: &str,
    project: &str,
) -> Result<server::GetEventStatsResponse, tonic::Status> {
    client
        .get_event_stats(with_key(
            server::GetEventStatsRequest {
                tenant_id: tenant.into(),
                project_id: project.into(),
                time_range: None,
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Waits until a just-created key is known to the gateway (its watch delivers it).
async fn until_known(client: &mut ChaukasServerServiceClient<Channel>, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(status) = stats(client, token, "", "").await {
        assert!(
            status.code() != Code::Unauthenticated || Instant::now() < deadline,
            "key not known within 5 s: {status:?}"
        );
        if status.code() != Code::Unauthenticated {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn expect_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, words: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(words),
        "{:?} should mention {words:?}",
        status.message()
    );
}

async fn post(
    pipeline: &Pipeline,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> HttpResponse {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Content-Type", "application/json")];
    if !token.is_empty() {
        headers.push(("Authorization", bearer.as_str()));
    }
    http_request(
        pipeline.http,
        "POST",
        path,
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

fn expect_http(response: &HttpResponse, status: u16, words: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert!(
        response.body.contains(words),
        "{response:?} should mention {words:?}"
    );
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn every_refusal_has_its_status_over_grpc_and_http() {
    let pipeline = secured().await;
    let keys = key_store(&pipeline).await;
    let all = [Scope::Ingest, Scope::Query, Scope::Stats];
    let full = create(&keys, "t-auth", None, &all, None).await;
    let ingest_only = create(&keys, "t-auth", None, &[Scope::Ingest], None).await;
    let expiring = create(&keys, "t-auth", None, &all, Some(now_ms() + 1_500)).await;
    let revoked = create(&keys, "t-auth", None, &all, None).await;
    let mut grpc = client(&pipeline).await;
    until_known(&mut grpc, &full).await;
    until_known(&mut grpc, &revoked).await;
    let revoked_id = chaukas_auth::parse_token(&revoked).unwrap().to_owned();
    keys.revoke(&revoked_id).await.unwrap();

    let capabilities = grpc
        .get_capabilities(server::GetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .unwrap();
    assert!(capabilities.rbac, "keys and scopes are enforced");

    let event = || vec![simple_event("t-auth", "e-1")];
    assert_eq!(
        ingest(&mut grpc, &full, event())
            .await
            .unwrap()
            .accepted_count,
        1
    );
    expect_status(
        ingest(&mut grpc, "", event()).await,
        Code::Unauthenticated,
        "missing API key",
    );
    expect_status(
        ingest(&mut grpc, "sk-live-123", event()).await,
        Code::Unauthenticated,
        "malformed",
    );
    let unknown = format!("chk_0123456789ab_{}", "x".repeat(43));
    expect_status(
        ingest(&mut grpc, &unknown, event()).await,
        Code::Unauthenticated,
        "unknown API key 0123456789ab",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ingest(&mut grpc, &revoked, event()).await {
            Err(status) if status.message().contains("revoked") => {
                assert_eq!(status.code(), Code::Unauthenticated);
                break;
            }
            other => assert!(Instant::now() < deadline, "still accepted: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_status(
        query(&mut grpc, &ingest_only, QueryFilter::default()).await,
        Code::PermissionDenied,
        "lacks the query scope",
    );
    expect_status(
        stats(&mut grpc, &ingest_only, "", "").await,
        Code::PermissionDenied,
        "lacks the stats scope",
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    expect_status(
        ingest(&mut grpc, &expiring, event()).await,
        Code::Unauthenticated,
        "expired",
    );

    let body = serde_json::json!({"event_id": "h-1", "tenant_id": "t-auth", "type": "ERROR"});
    expect_http(
        &post(&pipeline, "/v1/events", &full, &body).await,
        202,
        "accepted",
    );
    expect_http(
        &post(&pipeline, "/v1/events", "", &body).await,
        401,
        "missing API key",
    );
    let response = post(&pipeline, "/events", "dev", &body).await;
    expect_http(&response, 401, "malformed");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"chaukas\"")
    );
    expect_http(
        &post(&pipeline, "/events", &unknown, &body).await,
        401,
        "unknown API key",
    );
    expect_http(
        &post(&pipeline, "/v1/events", &revoked, &body).await,
        401,
        "revoked",
    );
    expect_http(
        &post(&pipeline, "/v1/events", &expiring, &body).await,
        401,
        "expired",
    );
    expect_http(
        &post(
            &pipeline,
            "/v1/query",
            &ingest_only,
            &serde_json::json!({"filter": {}}),
        )
        .await,
        403,
        "lacks the query scope",
    );
    expect_http(
        &post(&pipeline, "/v1/stats", &ingest_only, &serde_json::json!({})).await,
        403,
        "lacks the stats scope",
    );

    let (_, metrics) = chaukas_tests::http_get(pipeline.http, "/metrics").await;
    for reason in [
        "missing",
        "malformed",
        "unknown",
        "revoked",
        "expired",
        "scope",
    ] {
        assert!(
            metrics.contains(&format!(
                "chaukas_gateway_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted:\n{metrics}"
        );
    }
    assert!(!metrics.contains(&full[17..]), "no secret in metrics");
    pipeline.stop().await;
}

#[tokio::test]
async fn a_key_reaches_only_its_own_tenant_and_project() {
    let pipeline = secured().await;
    let keys = key_store(&pipeline).await;
    let all = [Scope::Ingest, Scope::Query, Scope::Stats];
    let a = create(&keys, "tenant-a", None, &all, None).await;
    let b = create(&keys, "tenant-b", None, &all, None).await;
    let a_p1 = create(&keys, "tenant-a", Some("p1"), &all, None).await;
    let mut grpc = client(&pipeline).await;
    for token in [&a, &b, &a_p1] {
        until_known(&mut grpc, token).await;
    }

    // Writes: another tenant's event is rejected alone, with the reason; an empty tenant
    // (and, for a project key, an empty project) is filled from the key.
    let mut no_tenant = simple_event("", "a-filled");
    no_tenant.tenant_id.clear();
    let outcome = ingest(
        &mut grpc,
        &a,
        vec![
            simple_event("tenant-a", "a-1"),
            simple_event("tenant-b", "smuggled"),
            no_tenant,
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (outcome.accepted_count, outcome.rejected_event_ids.clone()),
        (2, vec!["smuggled".to_owned()])
    );
    expect_status(
        grpc.ingest_event(with_key(
            server::IngestEventRequest {
                event: Some(simple_event("tenant-b", "x")),
            },
            &a,
        ))
        .await,
        Code::PermissionDenied,
        "is not the tenant of API key",
    );
    let body = serde_json::json!({"events": [{"event_id": "h-b", "tenant_id": "tenant-b", "type": "ERROR"}]});
    let response = post(&pipeline, "/v1/events/batch", &a, &body).await;
    expect_http(&response, 202, "\"rejected_count\":1");
    assert!(
        response
            .body
            .contains("event.tenant_id \\\"tenant-b\\\" is not the tenant of API key"),
        "{}",
        response.body
    );
    expect_http(
        &post(
            &pipeline,
            "/v1/events",
            &a,
            &serde_json::json!({"event_id": "h", "tenant_id": "tenant-b", "type": "ERROR"}),
        )
        .await,
        403,
        "is not the tenant of API key",
    );
    let mut p1 = simple_event("tenant-a", "p1-empty");
    p1.project_id.clear();
    let mut p2 = simple_event("tenant-a", "p2-event");
    p2.project_id = "p2".into();
    let outcome = ingest(&mut grpc, &a_p1, vec![p1, p2]).await.unwrap();
    assert_eq!(outcome.rejected_event_ids, vec!["p2-event".to_owned()]);
    assert_eq!(
        ingest(&mut grpc, &b, vec![simple_event("tenant-b", "b-1")])
            .await
            .unwrap()
            .accepted_count,
        1
    );
    assert_eq!(pipeline.wait_for_rows(4, Duration::from_secs(30)).await, 4);

    // Reads: confined to the key's tenant; naming another is refused, never answered.
    let mut ids: Vec<String> = query(&mut grpc, &a, QueryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["a-1", "a-filled", "p1-empty"]);
    let foreign = QueryFilter {
        tenant_id: "tenant-b".into(),
        ..QueryFilter::default()
    };
    expect_status(
        query(&mut grpc, &a, foreign).await,
        Code::PermissionDenied,
        "filter.tenant_id \"tenant-b\"",
    );
    expect_status(
        stats(&mut grpc, &a, "tenant-b", "").await,
        Code::PermissionDenied,
        "tenant_id \"tenant-b\"",
    );
    assert_eq!(stats(&mut grpc, &a, "", "").await.unwrap().total_events, 3);
    assert_eq!(stats(&mut grpc, &b, "", "").await.unwrap().total_events, 1);
    expect_http(
        &post(
            &pipeline,
            "/v1/query",
            &a,
            &serde_json::json!({"filter": {"tenant_id": "tenant-b"}}),
        )
        .await,
        403,
        "tenant-b",
    );
    expect_http(
        &post(
            &pipeline,
            "/v1/stats",
            &a,
            &serde_json::json!({"tenant_id": "tenant-b"}),
        )
        .await,
        403,
        "tenant-b",
    );
    let response = post(
        &pipeline,
        "/v1/query",
        &b,
        &serde_json::json!({"filter": {}}),
    )
    .await;
    expect_http(&response, 200, "b-1");
    assert!(!response.body.contains("tenant-a"), "{}", response.body);

    // A project-bound key reads its project only.
    let ids: Vec<String> = query(&mut grpc, &a_p1, QueryFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, vec!["p1-empty"]);
    let other_project = QueryFilter {
        project_id: "p2".into(),
        ..QueryFilter::default()
    };
    expect_status(
        query(&mut grpc, &a_p1, other_project).await,
        Code::PermissionDenied,
        "project_id \"p2\"",
    );
    expect_status(
        stats(&mut grpc, &a_p1, "", "p2").await,
        Code::PermissionDenied,
        "project_id \"p2\"",
    );
    assert_eq!(
        stats(&mut grpc, &a_p1, "", "").await.unwrap().total_events,
        1
    );
    pipeline.stop().await;
}

#[tokio::test]
async fn a_revocation_reaches_a_second_gateway_within_five_seconds() {
    let pipeline = secured().await;
    let mut config = chaukas_gateway::GatewayConfig {
        nats: pipeline.nats.clone(),
        ..chaukas_gateway::GatewayConfig::default()
    };
    config.gateway.listen_on_free_loopback_ports();
    let second = chaukas_gateway::bind(&config).await.unwrap();
    let second_addr = second.grpc_addr();
    let second_http = second.http_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(second.serve(async {
        stopped.await.ok();
    }));
    let mut second_client =
        ChaukasServerServiceClient::new(chaukas_tests::channel(second_addr).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while chaukas_tests::http_get(second_http, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the second gateway gets ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let keys = key_store(&pipeline).await;
    let token = create(
        &keys,
        "t-revoke",
        None,
        &[Scope::Ingest, Scope::Stats],
        None,
    )
    .await;
    until_known(&mut second_client, &token).await;
    let event = |id: &str| vec![simple_event("t-revoke", id)];
    assert_eq!(
        ingest(&mut second_client, &token, event("before"))
            .await
            .unwrap()
            .accepted_count,
        1
    );

    // Revoked through another connection, as `chaukas keys revoke` would.
    let revoked_at = Instant::now();
    keys.revoke(chaukas_auth::parse_token(&token).unwrap())
        .await
        .unwrap();
    loop {
        match ingest(&mut second_client, &token, event("after")).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            other => assert!(
                revoked_at.elapsed() < Duration::from_secs(5),
                "still accepted 5 s after revocation: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = revoked_at.elapsed();
    eprintln!("revocation refused on the second gateway after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    pipeline.stop().await;
}
