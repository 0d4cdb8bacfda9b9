//! A replicated bus (issue #13): on a 3-node NATS cluster with 3 replicas, killing the event
//! stream's leader during ingestion loses no acknowledged event and stores none twice; and
//! events acknowledged but not yet stored survive the whole cluster being killed.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use chaukas_bus::NatsConfig;
use chaukas_proto::common::v1::Event;
use chaukas_testkit::NatsCluster;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, batch_request, quick_writer_settings};

const EVENTS_PER_BATCH: usize = 50;

fn on_cluster(nats: &mut NatsConfig, cluster: &NatsCluster) {
    nats.url = cluster.url();
    nats.replicas = 3;
}

fn batch(tenant: &str, number: usize) -> Vec<Event> {
    (0..EVENTS_PER_BATCH)
        .map(|index| simple_event(tenant, &format!("b{number:03}-{index:02}")))
        .collect()
}

/// Sends batch `number` until it is acknowledged (UNAVAILABLE while the bus fails over).
async fn send_until_acked(pipeline: &Pipeline, tenant: &str, number: usize) {
    let mut client = pipeline.server_client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .ingest_event_batch(batch_request(batch(tenant, number)))
            .await
        {
            Ok(answer) => {
                assert_eq!(answer.into_inner().rejected_count, 0);
                return;
            }
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(
                    Instant::now() < deadline,
                    "batch {number} never acknowledged"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn stream_leader(nats: &NatsConfig) -> String {
    let client = nats.connect().await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream(&nats.stream)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    info.cluster
        .as_ref()
        .and_then(|cluster| cluster.leader.clone())
        .expect("a replicated stream has a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_and_duplicates_nothing() {
    let mut cluster = NatsCluster::start(3);
    let pipeline = Pipeline::start_with(|gateway, writer| {
        on_cluster(&mut gateway.nats, &cluster);
        on_cluster(&mut writer.nats, &cluster);
    })
    .await;
    let mut nats = pipeline.nats.clone();
    on_cluster(&mut nats, &cluster);
    let tenant = "t-leader-kill";
    for number in 0..20 {
        send_until_acked(&pipeline, tenant, number).await;
    }
    let leader = stream_leader(&nats).await;
    let index = cluster
        .index_of(&leader)
        .expect("the leader is one of ours");
    cluster.kill(index);
    for number in 20..60 {
        send_until_acked(&pipeline, tenant, number).await;
    }
    cluster.restart(index);
    let expected = (60 * EVENTS_PER_BATCH) as u64;
    pipeline
        .assert_stored_once(expected, Duration::from_secs(90))
        .await;
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_the_whole_cluster_being_killed() {
    let mut cluster = NatsCluster::start(3);
    // Gateway only: acknowledged events wait in JetStream, none is stored yet.
    let pipeline = Pipeline::start_custom(None, false, |gateway, _| {
        on_cluster(&mut gateway.nats, &cluster);
    })
    .await;
    let tenant = "t-cluster-restart";
    for number in 0..20 {
        send_until_acked(&pipeline, tenant, number).await;
    }
    for index in 0..cluster.len() {
        cluster.kill(index);
    }
    for index in 0..cluster.len() {
        cluster.restart(index);
    }
    let mut nats = pipeline.nats.clone();
    on_cluster(&mut nats, &cluster);
    let writer = chaukas_writer::bind(&chaukas_writer::WriterConfig {
        writer: quick_writer_settings(),
        nats,
        clickhouse: pipeline.clickhouse.clone(),
        log: pipeline.log.clone(),
    })
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(writer.serve(async {
        stopped.await.ok();
    }));
    let expected = (20 * EVENTS_PER_BATCH) as u64;
    pipeline
        .assert_stored_once(expected, Duration::from_secs(90))
        .await;
    let _ = stop.send(());
    writer.await.unwrap().unwrap();
    pipeline.stop().await;
}
