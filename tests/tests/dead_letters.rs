//! A message no writer can ever store goes to the dead-letter stream with the reason,
//! and does not block the events behind it.

use std::time::Duration;

use async_nats::jetstream;
use chaukas_proto::server::v1 as server;
use chaukas_tests::Pipeline;
use chaukas_tests::corpus::simple_event;

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_with_its_reason() {
    let pipeline = Pipeline::start().await;
    let client = async_nats::connect(pipeline.nats.url.as_str())
        .await
        .unwrap();
    let js = jetstream::new(client);
    let subject = pipeline.nats.shard_subject(0);
    js.publish(subject.clone(), "not protobuf at all".into())
        .await
        .unwrap()
        .await
        .unwrap();

    pipeline
        .server_client()
        .await
        .ingest_event(server::IngestEventRequest {
            event: Some(simple_event("tenant-dlq", "after-the-bad-one")),
        })
        .await
        .unwrap();
    assert_eq!(pipeline.wait_for_rows(1, Duration::from_secs(30)).await, 1);

    let dead_letters = js
        .get_stream(&pipeline.nats.dead_letter_stream)
        .await
        .unwrap();
    let mut found = None;
    for _ in 0..100 {
        if let Ok(message) = dead_letters
            .get_last_raw_message_by_subject(&pipeline.nats.dead_letter_subject)
            .await
        {
            found = Some(message);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let message = found.expect("the bad message reaches the dead-letter stream");
    assert_eq!(message.payload.as_ref(), b"not protobuf at all");
    let headers = message.headers;
    let reason = headers
        .get(chaukas_writer::flush::DEAD_LETTER_REASON_HEADER)
        .expect("a reason header")
        .as_str();
    assert!(reason.contains("Chaukas-Ingest-Time-Ns"), "{reason}");
    assert_eq!(
        headers
            .get(chaukas_writer::flush::DEAD_LETTER_SUBJECT_HEADER)
            .unwrap()
            .as_str(),
        subject
    );
    pipeline.stop().await;
}
