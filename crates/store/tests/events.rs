//! Event rows, claims and existence checks against the real ClickHouse of the test harness.

use chaukas_proto::common::v1::Event;
use chaukas_store::EventRow;
use chaukas_store::events::{self, ClaimRow};
use prost::Message;

mod common;

use common::migrated;

fn row(tenant: &str, id: &str, seconds: i64) -> EventRow {
    let event = Event {
        event_id: id.into(),
        tenant_id: tenant.into(),
        project_id: "p".into(),
        agent_name: "Agent 'quoted' \\ name".into(),
        timestamp: Some(prost_types::Timestamp { seconds, nanos: 1 }),
        tags: vec!["a".into(), "b".into()],
        ..Event::default()
    };
    EventRow::new(&event, 42)
}

#[tokio::test]
async fn rows_round_trip_byte_for_byte() {
    let (db, client) = migrated().await;
    let rows = [
        row("t1", "e1", 1_700_000_000),
        row("t'2", "e\\2", 1_700_000_100),
    ];
    events::insert_events(&client, &rows.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    #[derive(serde::Deserialize, clickhouse::Row)]
    struct Stored {
        event_id: String,
        tags: Vec<String>,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    }
    let stored: Vec<Stored> = client
        .query("SELECT event_id, tags, payload FROM events ORDER BY event_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for Stored {
        event_id,
        tags,
        payload,
    } in stored
    {
        let original = rows.iter().find(|row| row.event_id == event_id).unwrap();
        assert_eq!(tags, original.tags);
        assert_eq!(payload, original.payload);
        assert_eq!(
            Event::decode(payload.as_slice()).unwrap().event_id,
            event_id
        );
    }
    db.drop_database().await;
}

#[tokio::test]
async fn claims_and_stored_rows_are_found_exactly() {
    let (db, client) = migrated().await;
    let first = row("tenant-a", "shared-id", 1_700_000_000);
    let tricky = ClaimRow {
        tenant_id: "tenant-'?\\".into(),
        event_id: "id ? with ' quotes".into(),
        stream_seq: 9,
        claimed_at_ns: 1,
    };
    let other_tenant = row("tenant-b", "shared-id", 1_700_000_000);
    events::insert_events(&client, &[&first]).await.unwrap();
    events::insert_claims(
        &client,
        &[
            ClaimRow {
                tenant_id: "tenant-a".into(),
                event_id: "shared-id".into(),
                stream_seq: 7,
                claimed_at_ns: 1,
            },
            tricky.clone(),
        ],
    )
    .await
    .unwrap();

    let keys = vec![
        ("tenant-a".to_owned(), "shared-id".to_owned()),
        ("tenant-b".to_owned(), "shared-id".to_owned()),
        (tricky.tenant_id.clone(), tricky.event_id.clone()),
    ];
    let scratch = chaukas_store::scratch::Scratch::beside_events(client.clone());
    let lookup = "insert_stage_1700000000_testx1_0_s_";
    events::create_lookup(&scratch, lookup).await.unwrap();
    // Lookups share the table, each under its own number.
    let first_lookup = events::claims(&client, &scratch, lookup, 0, &keys[..1])
        .await
        .unwrap();
    assert_eq!(first_lookup.len(), 1);
    let claims = events::claims(&client, &scratch, lookup, 1, &keys)
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[&keys[0]], 7);
    assert_eq!(
        claims[&keys[2]], 9,
        "quotes, backslashes and ? are bound literally"
    );

    let stored = events::stored(&client, &[&first, &other_tenant])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored.contains(&keys[0]));

    // Same key, another time: not the same row.
    let moved = row("tenant-a", "shared-id", 1_700_000_001);
    assert!(events::stored(&client, &[&moved]).await.unwrap().is_empty());
    db.drop_database().await;
}
