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

/// A dead letter that can be stored after all (here: a valid message, as after a fix) is
/// listed with its reason, replayed to its original subject, stored, and gone from the list.
#[tokio::test]
async fn dead_letters_are_listed_and_replayed() {
    let pipeline = Pipeline::start().await;
    let js = jetstream::new(pipeline.nats.connect().await.unwrap());
    let event = simple_event("tenant-replay", "replayed-event");
    let chunk = chaukas_bus::pack(
        std::slice::from_ref(&event),
        pipeline.nats.shards,
        pipeline.nats.max_message_bytes,
    )
    .remove(0);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(chaukas_bus::INGEST_TIME_HEADER, "1700000000000000000");
    headers.insert("Nats-Msg-Id", chunk.message_id.as_str());
    headers.insert(chaukas_bus::dead_letters::REASON_HEADER, "a test reason");
    headers.insert(
        chaukas_bus::dead_letters::SUBJECT_HEADER,
        pipeline.nats.shard_subject(chunk.shard).as_str(),
    );
    js.publish_with_headers(
        pipeline.nats.dead_letter_subject.clone(),
        headers,
        chunk.payload.clone(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let listed = chaukas_bus::dead_letters::list(&js, &pipeline.nats, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].reason, "a test reason");
    assert_eq!(
        listed[0].original_subject,
        pipeline.nats.shard_subject(chunk.shard)
    );
    chaukas_bus::dead_letters::replay(&js, &pipeline.nats, listed[0].sequence)
        .await
        .unwrap();
    assert_eq!(pipeline.wait_for_rows(1, Duration::from_secs(30)).await, 1);
    assert_eq!(pipeline.stored_events().await, vec![event]);
    assert!(
        chaukas_bus::dead_letters::list(&js, &pipeline.nats, 10)
            .await
            .unwrap()
            .is_empty()
    );
    pipeline.stop().await;
}

/// A full dead-letter stream refuses the newest letter instead of dropping the oldest; the
/// refused message waits in the event stream (nothing lost), and the backlog age shows it.
#[tokio::test]
async fn a_full_dead_letter_stream_drops_nothing() {
    let pipeline = Pipeline::start_with(|gateway, writer| {
        for nats in [&mut gateway.nats, &mut writer.nats] {
            nats.dead_letter_max_bytes = 700;
        }
    })
    .await;
    let js = jetstream::new(pipeline.nats.connect().await.unwrap());
    for payload in [vec![b'a'; 200], vec![b'b'; 200]] {
        js.publish(pipeline.nats.shard_subject(0), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let dead_letters = || chaukas_bus::dead_letters::list(&js, &pipeline.nats, 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while dead_letters().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first letter arrives"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let letters = dead_letters().await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "the full stream kept its first letter: {letters:?}"
    );
    let mut events = js.get_stream(&pipeline.nats.stream).await.unwrap();
    let waiting = events.info().await.unwrap().state.messages;
    assert_eq!(
        waiting, 1,
        "the refused message still waits in the event stream"
    );
    let (_, metrics) = chaukas_tests::http_get(pipeline.writer_http.unwrap(), "/metrics").await;
    let age: u64 = metrics
        .lines()
        .find(|line| line.starts_with("chaukas_writer_oldest_unstored_seconds"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    assert!(age >= 1, "{metrics}");
    pipeline.stop().await;
}
