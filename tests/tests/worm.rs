//! Write-once storage (issue #15) on the real ClickHouse, with the users `make up` makes:
//! the writer stores events through an insert-only user (its stages made by a user confined
//! to a scratch database), and neither it nor the query user can delete, drop or truncate;
//! the scratch user cannot even read the events.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use chaukas_bus::NatsConfig;
use chaukas_store::ClickHouseConfig;
use chaukas_testkit::{PrivateClickHouse, unique_name};
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{apply_bus, http_get, quick_writer_settings, test_log_config};

fn as_user(base: &ClickHouseConfig, user: &str, password: &str) -> clickhouse::Client {
    ClickHouseConfig {
        user: user.into(),
        password: password.into(),
        ..base.clone()
    }
    .client()
    .unwrap()
}

/// Runs `statement` as `client`; the server's refusal, or `None` if it was done.
async fn refusal(client: &clickhouse::Client, statement: &str) -> Option<String> {
    client
        .query(statement)
        .execute()
        .await
        .err()
        .map(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_stores_through_an_insert_only_user_and_nobody_but_the_admin_deletes() {
    let database = unique_name("worm");
    let scratch = format!("{database}_scratch");
    let server = PrivateClickHouse::start_with_roles(&database, &scratch);
    let admin = ClickHouseConfig {
        url: server.url(),
        database: database.clone(),
        user: "chaukas_migrate".into(),
        password: "m".into(),
    };
    chaukas_store::migrations::migrate(&admin).await.unwrap();
    chaukas_store::scratch::prepare(&admin, &scratch)
        .await
        .unwrap();

    let nats = chaukas_testkit::nats_config();
    let mut settings = quick_writer_settings();
    settings.scratch_database.clone_from(&scratch);
    settings.scratch_user = "chaukas_scratch".into();
    settings.scratch_password = "s".into();
    apply_bus(&nats, settings.lease_ttl_secs).await;
    let config = chaukas_writer::WriterConfig {
        writer: settings,
        nats: nats.clone(),
        clickhouse: ClickHouseConfig {
            user: "chaukas_writer".into(),
            password: "w".into(),
            ..admin.clone()
        },
        log: test_log_config(),
    };
    let writer = chaukas_writer::bind(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.serve(async {
        stopped.await.ok();
    }));

    // Events on the bus as a gateway publishes them; the writer must store them all, once.
    let events: Vec<_> = (0..300)
        .map(|i| simple_event(&format!("tenant-{}", i % 3), &format!("e{i}")))
        .collect();
    let js = jetstream::new(nats.connect().await.unwrap());
    for chunk in chaukas_bus::pack(&events, nats.shards, 64 * 1024) {
        let publish = PublishMessage::build()
            .payload(chunk.payload)
            .message_id(&chunk.message_id)
            .header(chaukas_bus::INGEST_TIME_HEADER, "1764000000000000000");
        js.send_publish(nats.shard_subject(chunk.shard), publish)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let reader = as_user(&admin, "chaukas_query", "q");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: u64 = reader
            .query("SELECT count() FROM events")
            .fetch_one()
            .await
            .unwrap();
        if stored == 300 {
            break;
        }
        assert!(stored < 300, "{stored} rows: something was stored twice");
        assert!(Instant::now() < deadline, "only {stored} of 300 stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Flushes share one claim lookup table; stages go once moved.
    let admin_client = as_user(&admin, "chaukas_migrate", "m");
    let scratch_tables = |admin_client: clickhouse::Client, scratch: String| async move {
        admin_client
            .query(
                "SELECT name FROM system.tables WHERE database = ? AND name LIKE 'insert_stage_%'",
            )
            .bind(scratch)
            .fetch_all::<String>()
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = scratch_tables(admin_client.clone(), scratch.clone()).await;
        let lookups = left.iter().filter(|name| name.ends_with("_s_")).count();
        if lookups == left.len() {
            assert!(lookups <= 1, "more than one lookup table: {left:?}");
            break;
        }
        assert!(Instant::now() < deadline, "stages left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let writer_user = as_user(&admin, "chaukas_writer", "w");
    for user in [&writer_user, &reader] {
        for statement in [
            "ALTER TABLE events DELETE WHERE 1 = 1",
            "DROP TABLE events",
            "TRUNCATE TABLE events",
            "ALTER TABLE log_leaves DELETE WHERE 1 = 1",
            "DROP TABLE log_checkpoints",
            "RENAME TABLE events TO events_gone",
            "SET allow_ddl = 1",
        ] {
            let refused = refusal(user, statement).await;
            assert!(refused.is_some(), "{statement} was allowed");
        }
    }
    let scratch_user = as_user(&admin, "chaukas_scratch", "s");
    let denied = refusal(&scratch_user, &format!("DROP TABLE {database}.events")).await;
    assert!(
        denied
            .as_deref()
            .is_some_and(|e| e.contains("Access denied")),
        "{denied:?}"
    );
    let kept: u64 = reader
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(kept, 300);
    // The admin (retention) still can.
    assert_eq!(
        refusal(
            &as_user(&admin, "chaukas_migrate", "m"),
            "ALTER TABLE events DELETE WHERE event_id = 'e0'"
        )
        .await,
        None
    );
    users_say_what_they_may_do(&admin).await;
    capabilities_say_worm_once_reported(&admin, &nats).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Each user's confinement as the server reports it, for both roles.
async fn users_say_what_they_may_do(admin: &ClickHouseConfig) {
    use chaukas_store::confinement::{Role, check};
    let version = chaukas_store::server_version(&as_user(admin, "chaukas_migrate", "m"))
        .await
        .unwrap();
    for (user, password, role, confined) in [
        ("chaukas_writer", "w", Role::InsertOnly, true),
        ("chaukas_query", "q", Role::ReadOnly, true),
        ("chaukas_query", "q", Role::InsertOnly, false),
        ("chaukas_writer", "w", Role::ReadOnly, false),
        ("chaukas_migrate", "m", Role::InsertOnly, false),
        ("chaukas_migrate", "m", Role::ReadOnly, false),
    ] {
        let found = check(&as_user(admin, user, password), &version, role)
            .await
            .unwrap();
        assert_eq!(found.confined, confined, "{user} as {role:?}: {found:?}");
    }
}

/// A gateway answers `worm_retention: true` once the running writer (insert-only) has
/// reported and its query service runs as the read-only user.
async fn capabilities_say_worm_once_reported(admin: &ClickHouseConfig, nats: &NatsConfig) {
    let mut query = chaukas_query::QueryConfig {
        clickhouse: ClickHouseConfig {
            user: "chaukas_query".into(),
            password: "q".into(),
            ..admin.clone()
        },
        log: test_log_config(),
        ..chaukas_query::QueryConfig::default()
    };
    query.query.grpc_listen = "127.0.0.1:0".into();
    query.query.http_listen = "127.0.0.1:0".into();
    let query = chaukas_query::bind(&query).await.unwrap();
    let mut gateway = chaukas_gateway::GatewayConfig {
        nats: nats.clone(),
        ..chaukas_gateway::GatewayConfig::default()
    };
    gateway.gateway.allow_unauthenticated = true;
    gateway.gateway.listen_on_free_loopback_ports();
    gateway.gateway.query_endpoint = format!("http://{}", query.grpc_addr());
    let gateway = chaukas_gateway::bind(&gateway).await.unwrap();
    let http = gateway.http_addr();
    let (stop_query, query_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let query = tokio::spawn(query.serve(async {
        query_stopped.await.ok();
    }));
    let gateway = tokio::spawn(gateway.serve(async {
        gateway_stopped.await.ok();
    }));
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (status, body) = http_get(http, "/v1/capabilities").await;
        if status == 200 && body.contains("\"worm_retention\":true") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worm_retention never turned on: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_gateway.send(()).unwrap();
    gateway.await.unwrap().unwrap();
    stop_query.send(()).unwrap();
    query.await.unwrap().unwrap();
}
