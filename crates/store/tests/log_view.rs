//! Migration 0010 against the real ClickHouse of the test harness: the view records each
//! sealed row's hash in `log_leaves` from its payload, exactly once, whichever writer
//! inserted it, and rows sealed before the migration still read as sealed.

use sha2::{Digest, Sha256};

mod common;

use common::migrated;

#[derive(Debug, serde::Deserialize, clickhouse::Row)]
struct LeafRow {
    event_id: String,
    leaf_index: u64,
    #[serde(with = "serde_bytes")]
    content_hash: Vec<u8>,
}

async fn leaves(client: &clickhouse::Client) -> Vec<LeafRow> {
    client
        .query("SELECT event_id, leaf_index, content_hash FROM log_leaves ORDER BY leaf_index")
        .fetch_all()
        .await
        .unwrap()
}

async fn sealed_of(client: &clickhouse::Client, event_id: &str) -> u8 {
    client
        .query("SELECT sealed FROM events WHERE event_id = ?")
        .bind(event_id)
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_view_hashes_each_sealed_payload_once_whichever_writer_inserted_it() {
    let (_db, client) = migrated().await;
    // `x272` hashes to a value ending in a zero byte: a FixedString-to-String conversion
    // would have cut it to 31 bytes.
    let new_payload = b"x272";
    assert_eq!(Sha256::digest(new_payload)[31], 0);
    let old_payload = b"an older writer's row";
    let old_hash = Sha256::digest(old_payload).to_vec();
    let statements = [
        // This writer: `sealed`, no stored hash.
        "INSERT INTO events (tenant_id, event_id, leaf_index, sealed, payload) \
         VALUES ('t', 'new', 0, 1, 'x272')"
            .to_owned(),
        // A writer of before 0010, still running during an upgrade: the hash, no `sealed`.
        format!(
            "INSERT INTO events (tenant_id, event_id, leaf_index, content_hash, payload) \
             VALUES ('t', 'old', 1, unhex('{}'), 'an older writer''s row')",
            hex(&old_hash)
        ),
        // With the log off: neither.
        "INSERT INTO events (tenant_id, event_id, payload) VALUES ('t', 'unsealed', 'x')"
            .to_owned(),
    ];
    for statement in &statements {
        client.query(statement).execute().await.unwrap();
    }
    let recorded = leaves(&client).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(
        (recorded[0].event_id.as_str(), recorded[0].leaf_index),
        ("new", 0)
    );
    assert_eq!(
        recorded[0].content_hash,
        Sha256::digest(new_payload).to_vec()
    );
    assert_eq!(
        (recorded[1].event_id.as_str(), recorded[1].leaf_index),
        ("old", 1)
    );
    assert_eq!(recorded[1].content_hash, old_hash);
    assert_eq!(
        [
            sealed_of(&client, "new").await,
            sealed_of(&client, "old").await,
            sealed_of(&client, "unsealed").await
        ],
        [1, 1, 0]
    );
}

#[tokio::test]
async fn rows_stored_before_the_sealed_column_read_as_sealed_when_they_have_a_hash() {
    let (_db, client) = migrated().await;
    // Parts written before 0010 have no `sealed` column: take it (and the view reading it)
    // away, write, bring it back as 0010 adds it.
    for statement in [
        "DROP TABLE log_leaves_hashed_mv",
        "ALTER TABLE events DROP COLUMN sealed",
        "INSERT INTO events (tenant_id, event_id, content_hash, payload) \
         VALUES ('t', 'sealed-before', unhex('00ff'), 'p'), ('t', 'unsealed-before', '', 'p')",
        "ALTER TABLE events ADD COLUMN sealed UInt8 DEFAULT content_hash != ''",
    ] {
        client.query(statement).execute().await.unwrap();
    }
    assert_eq!(sealed_of(&client, "sealed-before").await, 1);
    assert_eq!(sealed_of(&client, "unsealed-before").await, 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
