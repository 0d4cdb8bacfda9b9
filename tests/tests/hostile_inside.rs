//! The inside of the stack (issue #12, defect 7): internal hops require credentials, so
//! reaching a port is not enough to read or write any tenant's data.

use std::time::Duration;

use chaukas_proto::common::v1::{QueryFilter, QueryRequest};
use chaukas_proto::server::v1 as server;
use chaukas_tests::Pipeline;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::raw_grpc::{self, QUERY_EVENTS};
use prost::Message;
use tonic::Code;

fn query_request(query: QueryRequest) -> Vec<u8> {
    server::QueryEventsRequest { query: Some(query) }.encode_to_vec()
}

/// Defect 7: the query service answers gateways only; reaching its port is not enough.
#[tokio::test]
async fn the_query_service_refuses_callers_without_the_internal_token() {
    let pipeline = Pipeline::start().await;
    let query = QueryRequest {
        filter: Some(QueryFilter {
            tenant_id: "anyone".into(),
            ..QueryFilter::default()
        }),
        ..QueryRequest::default()
    };
    let direct = raw_grpc::call(
        pipeline.query_grpc,
        QUERY_EVENTS,
        query_request(query.clone()),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(direct.code(), Code::Unauthenticated, "{direct:?}");
    assert!(
        direct.message().contains("x-chaukas-internal-token"),
        "{direct:?}"
    );
    let through_gateway =
        raw_grpc::call(pipeline.grpc, QUERY_EVENTS, query_request(query), None).await;
    assert!(through_gateway.is_ok(), "{through_gateway:?}");
    let health = raw_grpc::call(
        pipeline.query_grpc,
        "/chaukas.spec.server.v1.ChaukasServerService/Healthz",
        Vec::new(),
        None,
    )
    .await;
    assert!(health.is_ok(), "probes need no token: {health:?}");
    pipeline.stop().await;
}

/// Defect 7: a NATS that requires credentials is used with them, and without them nothing
/// connects (the gateway never becomes ready).
#[tokio::test]
async fn services_authenticate_to_nats() {
    let nats = chaukas_testkit::PrivateNats::start_with_password("chaukas", "s3cret-for-test");
    let url = nats.url();
    let pipeline = Pipeline::start_with(|gateway, writer| {
        for config in [&mut gateway.nats, &mut writer.nats] {
            config.url.clone_from(&url);
            config.user = "chaukas".into();
            config.password = "s3cret-for-test".into();
        }
    })
    .await;
    let mut client = pipeline.server_client().await;
    client
        .ingest_event(server::IngestEventRequest {
            event: Some(simple_event("t-nats-auth", "authenticated")),
        })
        .await
        .expect("accepted through an authenticated NATS");
    pipeline.wait_for_rows(1, Duration::from_secs(20)).await;
    pipeline.stop().await;

    let anonymous = chaukas_bus::NatsConfig {
        url,
        connect_timeout_ms: 500,
        ..chaukas_bus::NatsConfig::default()
    };
    let client = anonymous.connect().await;
    let refused = match client {
        Err(_) => true,
        Ok(client) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            !chaukas_bus::is_connected(&client)
        }
    };
    assert!(refused, "an anonymous client must not get in");
}
