//! The services as a deployment runs them: bound to real sockets, talking to the real NATS
//! and ClickHouse the harness started, stopped by their shutdown signal.

use std::net::SocketAddr;
use std::time::Duration;

use chaukas_proto::client::v1 as client;
use chaukas_proto::client::v1::chaukas_client_service_client::ChaukasClientServiceClient;
use chaukas_proto::server::v1 as server;
use chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient;
use chaukas_store::ClickHouseConfig;
use chaukas_tests::{channel, http_get, migrated_database};
use tokio::sync::oneshot;

fn local_gateway_config() -> chaukas_gateway::GatewayConfig {
    let mut config = chaukas_gateway::GatewayConfig {
        nats: chaukas_testkit::nats_config(),
        ..chaukas_gateway::GatewayConfig::default()
    };
    config.gateway.listen_on_free_loopback_ports();
    config
}

#[tokio::test]
async fn gateway_answers_healthz_under_both_service_names_and_stops_on_signal() {
    let config = local_gateway_config();
    chaukas_tests::apply_bus(&config.nats, 30).await;
    let gateway = chaukas_gateway::bind(&config).await.unwrap();
    let (grpc, http) = (gateway.grpc_addr(), gateway.http_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(gateway.serve(async {
        stopped.await.ok();
    }));

    let channel = channel(grpc).await;
    ChaukasServerServiceClient::new(channel.clone())
        .healthz(server::HealthzRequest {})
        .await
        .expect("server service Healthz");
    ChaukasClientServiceClient::new(channel.clone())
        .healthz(client::HealthzRequest {})
        .await
        .expect("client service Healthz");
    assert_eq!(http_get(http, "/healthz").await, (200, "ok".into()));
    wait_for_readiness(http, 200, "ready").await;
    let (status, metrics) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("chaukas_gateway_events_accepted_total"),
        "{metrics}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("gateway stops within 10 s of the signal")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn gateway_reports_only_implemented_capabilities_and_says_when_reads_cannot_be_served() {
    let mut config = local_gateway_config();
    // A port nothing listens on, whatever else runs on this machine.
    config.gateway.query_endpoint = format!("http://127.0.0.1:{}", chaukas_testkit::free_port());
    // Without enforced keys `rbac` is false (auth.rs checks the enforced case).
    config.gateway.allow_unauthenticated = true;
    let gateway = chaukas_gateway::bind(&config).await.unwrap();
    let grpc = gateway.grpc_addr();
    let _running = tokio::spawn(gateway.serve(std::future::pending()));
    let channel = channel(grpc).await;

    let mut server_client = ChaukasServerServiceClient::new(channel.clone());
    let capabilities = server_client
        .get_capabilities(server::GetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities
        .expect("capabilities are always present");
    assert_eq!(
        capabilities,
        chaukas_proto::capabilities(false, false, true)
    );
    assert!(!capabilities.rbac && !capabilities.worm_retention && capabilities.audit_proofs);
    assert!(!capabilities.sso && !capabilities.distributed_query);
    assert!(capabilities.policy_decisions && capabilities.data_access_events);

    let client_capabilities = ChaukasClientServiceClient::new(channel)
        .get_capabilities(client::GetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert_eq!(client_capabilities, Some(capabilities));

    let refused = server_client
        .get_event_stats(server::GetEventStatsRequest::default())
        .await
        .unwrap_err();
    // No query service runs in this test: reads are forwarded to it, and fail clearly.
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(
        refused.message().contains("query service unreachable"),
        "{}",
        refused.message()
    );
}

fn writer_config(clickhouse: ClickHouseConfig) -> chaukas_writer::WriterConfig {
    let mut config = chaukas_writer::WriterConfig::default();
    config.writer.http_listen = "127.0.0.1:0".into();
    config.nats = chaukas_testkit::nats_config();
    config.clickhouse = clickhouse;
    config
}

/// Polls `/readyz` until it answers `status` with a body containing `text`: readiness
/// follows connections made in the background, so the first answers may differ.
async fn wait_for_readiness(addr: SocketAddr, status: u16, text: &str) {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = http_get(addr, "/readyz").await;
        if last.0 == status && last.1.contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {status} with {text:?}; last answer {last:?}");
}

#[tokio::test]
async fn writer_is_ready_only_when_nats_and_clickhouse_answer() {
    let (db, clickhouse) = migrated_database(None).await;
    let config = writer_config(clickhouse.clone());
    chaukas_tests::apply_bus(&config.nats, config.writer.lease_ttl_secs).await;
    let writer = chaukas_writer::bind(&config).await.unwrap();
    let http = writer.http_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(writer.serve(async {
        stopped.await.ok();
    }));
    wait_for_readiness(http, 200, "ready").await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    // Nothing listens on port 9: ClickHouse "down".
    let unreachable = ClickHouseConfig {
        url: "http://127.0.0.1:9".into(),
        ..clickhouse
    };
    let writer = chaukas_writer::bind(&chaukas_writer::WriterConfig {
        clickhouse: unreachable,
        ..config.clone()
    })
    .await
    .unwrap();
    let http = writer.http_addr();
    let _running = tokio::spawn(writer.serve(std::future::pending()));
    wait_for_readiness(http, 503, "clickhouse statement failed").await;
    db.drop_database().await;
}

#[tokio::test]
async fn query_service_answers_healthz_and_reports_clickhouse_readiness() {
    let mut config = chaukas_query::QueryConfig::default();
    config.query.grpc_listen = "127.0.0.1:0".into();
    config.query.http_listen = "127.0.0.1:0".into();
    let (db, clickhouse) = migrated_database(None).await;
    config.clickhouse = clickhouse;
    let query = chaukas_query::bind(&config).await.unwrap();
    let (grpc, http) = (query.grpc_addr(), query.http_addr());
    let _running = tokio::spawn(query.serve(std::future::pending()));

    ChaukasServerServiceClient::new(channel(grpc).await)
        .healthz(server::HealthzRequest {})
        .await
        .expect("query service Healthz");
    wait_for_readiness(http, 200, "ready").await;
    db.drop_database().await;
}

/// Only `chaukas migrate` makes the bus; a service whose settings differ from what it finds
/// (here: twice the shards, which would give one tenant two writers) refuses to start and
/// names the difference; until migrate has run, it waits and is not ready.
#[tokio::test]
async fn services_refuse_a_bus_that_differs_from_their_settings() {
    let (db, clickhouse) = migrated_database(None).await;
    let config = writer_config(clickhouse);
    let writer = chaukas_writer::bind(&config).await.unwrap();
    let http = writer.http_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(writer.serve(async {
        stopped.await.ok();
    }));
    wait_for_readiness(http, 503, "streams and lease bucket are not set up").await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();

    chaukas_tests::apply_bus(&config.nats, config.writer.lease_ttl_secs).await;
    let mut doubled = config.clone();
    doubled.nats.shards *= 2;
    let refused = chaukas_writer::bind(&doubled).await.err().expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains("shards=8")
            && message.contains("shards=16")
            && message.contains("migrate"),
        "{message}"
    );
    let mut gateway = local_gateway_config();
    gateway.nats = doubled.nats.clone();
    let refused = chaukas_gateway::bind(&gateway)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("shard count"), "{refused}");
    db.drop_database().await;
}
