//! Server-side redaction (issue #15): events are rewritten under their tenant's policy in
//! the gateway, before publishing, so the plaintext never reaches JetStream or ClickHouse;
//! a policy set anywhere reaches every gateway within seconds; what a policy cannot be
//! applied to is refused, never stored raw.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use chaukas_proto::common::v1::{Event, MessageContent, event::Content};
use chaukas_proto::server::v1 as server;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request};
use prost::Message;

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const SECRET: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";

const POLICY: &str = r#"{
  "retention": {"min_days": 2190, "max_days": 2555},
  "redaction": {
    "rules": [{"path": "/metadata/customer", "method": "hash", "category": "customer"},
              {"path": "/message/metadata/*/notes", "method": "drop"}],
    "detectors": {"email": "mask", "payment_card": "mask", "secret": "mask"}
  }
}"#;

fn personal_event(tenant: &str, id: &str) -> Event {
    let mut event = simple_event(tenant, id);
    event.content = Some(Content::Message(MessageContent {
        role: "user".into(),
        text: format!("I am {EMAIL}, card {CARD}, key {SECRET}"),
        metadata: None,
    }));
    event.metadata = Some(prost_types::Struct {
        fields: [(
            "customer".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue(
                    "customer-4242".into(),
                )),
            },
        )]
        .into(),
    });
    event
}

async fn set_policy(pipeline: &Pipeline, tenant: &str, json: &str) {
    chaukas_tests::set_policy(&pipeline.nats, tenant, json).await;
}

/// Sends `event` until the gateway answers with it redacted (the policy has arrived), or
/// fails after `within`; returns how long that took.
async fn until_redacted(pipeline: &Pipeline, tenant: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let mut client = pipeline.server_client().await;
    for attempt in 0.. {
        let id = format!("probe-{attempt}");
        client
            .ingest_event(server::IngestEventRequest {
                event: Some(personal_event(tenant, &id)),
            })
            .await
            .unwrap();
        if stream_holds(pipeline, EMAIL).await == Some(false) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "policy not applied within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

/// Whether the last message on the event stream contains `needle` (`None`: no message).
async fn stream_holds(pipeline: &Pipeline, needle: &str) -> Option<bool> {
    let client = pipeline.nats.connect().await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream(&pipeline.nats.stream)
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let message = stream.get_raw_message(last).await.ok()?;
    Some(contains(&message.payload, needle.as_bytes()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn nothing_the_policy_covers_reaches_jetstream_in_clear() {
    // No writer: every published message stays on the stream to be read back.
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let tenant = "tenant-private-bus";
    set_policy(&pipeline, tenant, POLICY).await;
    until_redacted(&pipeline, tenant, Duration::from_secs(10)).await;
    let events: Vec<Event> = (0..20)
        .map(|i| personal_event(tenant, &format!("e{i}")))
        .collect();
    let answer = pipeline
        .server_client()
        .await
        .ingest_event_batch(batch_request(events))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.rejected_count, 0, "{answer:?}");
    let client = pipeline.nats.connect().await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream(&pipeline.nats.stream)
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut read = 0;
    for sequence in 1..=last {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        read += 1;
        for needle in [EMAIL, CARD, SECRET, "customer-4242"] {
            assert!(
                !contains(&message.payload, needle.as_bytes()),
                "message {sequence} holds {needle:?} in clear"
            );
        }
    }
    assert!(read >= 2, "read {read} messages");
    pipeline.stop().await;
}

#[tokio::test]
async fn stored_and_queried_events_are_redacted_and_say_so() {
    let pipeline = Pipeline::start().await;
    let tenant = "tenant-private-store";
    set_policy(&pipeline, tenant, POLICY).await;
    until_redacted(&pipeline, tenant, Duration::from_secs(10)).await;
    pipeline
        .server_client()
        .await
        .ingest_event(server::IngestEventRequest {
            event: Some(personal_event(tenant, "the-one")),
        })
        .await
        .unwrap();
    let stored = wait_for_event(&pipeline, "the-one").await;
    let Some(Content::Message(message)) = &stored.content else {
        panic!("content lost: {stored:?}")
    };
    assert_eq!(
        message.text,
        "I am [REDACTED:email], card [REDACTED:payment_card], key [REDACTED:secret]"
    );
    let customer = &stored.metadata.as_ref().unwrap().fields["customer"];
    let Some(prost_types::value::Kind::StringValue(hashed)) = &customer.kind else {
        panic!("{customer:?}")
    };
    assert!(hashed.starts_with("[HMAC:customer:"), "{hashed}");
    assert_eq!(
        stored.content_hash,
        chaukas_audit::hash::to_hex(&chaukas_audit::content::content_hash(&mut stored.clone())),
        "the content hash covers the event as stored, redacted"
    );
    let redaction = stored
        .redaction
        .as_ref()
        .expect("the redaction is recorded");
    assert!(redaction.salt_id.starts_with("hmac-"), "{redaction:?}");
    assert_eq!(redaction.method, "hash+mask");
    assert!(
        redaction
            .fields
            .contains(&"server:mask:email:/message/text".to_owned()),
        "{redaction:?}"
    );
    let mut categories = stored.pii_categories.clone();
    categories.sort();
    assert_eq!(categories, ["customer", "email", "payment_card", "secret"]);
    // The raw rows hold no plaintext either (every column, as ClickHouse returns it).
    let rows: Vec<u8> = raw_rows(&pipeline).await;
    for needle in [EMAIL, CARD, SECRET, "customer-4242"] {
        assert!(
            !contains(&rows, needle.as_bytes()),
            "ClickHouse holds {needle:?}"
        );
    }
    pipeline.stop().await;
}

/// The stored event `id` with its log fields: its content hash covers it as redacted.
async fn wait_for_event(pipeline: &Pipeline, id: &str) -> Event {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(event) = pipeline
            .sealed_events()
            .await
            .into_iter()
            .find(|event| event.event_id == id)
        {
            return event;
        }
        assert!(Instant::now() < deadline, "{id} not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn raw_rows(pipeline: &Pipeline) -> Vec<u8> {
    let url = format!(
        "{}/?database={}&query={}",
        pipeline.clickhouse.url,
        pipeline.clickhouse.database,
        "SELECT%20*%20FROM%20events%20FORMAT%20TabSeparated"
    );
    let mut command = std::process::Command::new("curl");
    command.args(["-sS", "--fail", &url]);
    if !pipeline.clickhouse.user.is_empty() {
        command.args([
            "-u",
            &format!(
                "{}:{}",
                pipeline.clickhouse.user, pipeline.clickhouse.password
            ),
        ]);
    }
    let output = command.output().expect("curl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.stdout.is_empty());
    output.stdout
}

/// A second gateway on the pipeline's bus; stops when the returned sender is dropped.
async fn second_gateway(
    pipeline: &Pipeline,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = chaukas_gateway::GatewayConfig {
        nats: pipeline.nats.clone(),
        ..chaukas_gateway::GatewayConfig::default()
    };
    config.gateway.allow_unauthenticated = true;
    config.gateway.listen_on_free_loopback_ports();
    let bound = chaukas_gateway::bind(&config).await.unwrap();
    let (grpc, http) = (bound.grpc_addr(), bound.http_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async {
        stopped.await.ok();
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while chaukas_tests::http_get(http, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the second gateway is not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (grpc, stop)
}

#[tokio::test]
async fn a_policy_set_anywhere_reaches_another_gateway_within_seconds() {
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let (other, _stop) = second_gateway(&pipeline).await;
    let tenant = "tenant-private-spread";
    // Both gateways have loaded the (empty) policies: events pass unchanged.
    let mut client =
        chaukas_proto::server::v1::chaukas_server_service_client::ChaukasServerServiceClient::new(
            chaukas_tests::channel(other).await,
        );
    let send = |id: &str| server::IngestEventRequest {
        event: Some(personal_event(tenant, id)),
    };
    client.ingest_event(send("before")).await.unwrap();
    assert_eq!(stream_holds(&pipeline, EMAIL).await, Some(true));
    set_policy(&pipeline, tenant, POLICY).await;
    let started = Instant::now();
    for attempt in 0.. {
        client
            .ingest_event(send(&format!("after-{attempt}")))
            .await
            .unwrap();
        if stream_holds(&pipeline, EMAIL).await == Some(false) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not applied within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the second gateway applied the policy after {:?}",
        started.elapsed()
    );
    until_redacted(&pipeline, tenant, Duration::from_secs(5)).await;
    pipeline.stop().await;
}

#[tokio::test]
async fn an_event_the_policy_cannot_read_is_refused_not_stored_raw() {
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let tenant = "tenant-private-closed";
    set_policy(&pipeline, tenant, POLICY).await;
    until_redacted(&pipeline, tenant, Duration::from_secs(10)).await;
    let mut opaque = personal_event(tenant, "opaque");
    opaque.extensions.push(prost_types::Any {
        type_url: "type.googleapis.com/acme.Private".into(),
        value: EMAIL.as_bytes().to_vec(),
    });
    let status = pipeline
        .server_client()
        .await
        .ingest_event(server::IngestEventRequest {
            event: Some(opaque.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("extensions"),
        "{}",
        status.message()
    );
    let answer = pipeline
        .server_client()
        .await
        .ingest_event_batch(batch_request(vec![opaque, personal_event(tenant, "fine")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.rejected_count, 1, "{answer:?}");
    assert_eq!(stream_holds(&pipeline, EMAIL).await, Some(false));
    // An event that hashing makes too large is refused too, not cut or stored raw.
    let max = chaukas_gateway::GatewaySettings::default().max_event_bytes;
    let mut big = personal_event(tenant, "big");
    let text = format!("{} ", "a@b.co ".repeat(max / 8));
    big.content = Some(Content::Message(MessageContent {
        text,
        ..MessageContent::default()
    }));
    set_policy(
        &pipeline,
        tenant,
        &POLICY.replace("\"email\": \"mask\"", "\"email\": \"hash\""),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        big.encoded_len() <= max,
        "the event is acceptable before redaction"
    );
    let status = pipeline
        .server_client()
        .await
        .ingest_event(server::IngestEventRequest { event: Some(big) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("once redacted"),
        "{}",
        status.message()
    );
    pipeline.stop().await;
}
