-- Which message first carried each (tenant, event id): the writer's record for exactly-once.
--
-- Before inserting events, the writer claims their keys here with the JetStream stream
-- sequence of the message that carries them; a key claimed by another message is a
-- duplicate and is skipped, a key claimed by the same message (a redelivery after a crash
-- or a failed insert) is inserted only if its row is not in `events` yet. See
-- docs/architecture.md, "Exactly once".
CREATE TABLE IF NOT EXISTS event_claims
(
    tenant_id     String,
    event_id      String,
    stream_seq    UInt64,
    claimed_at_ns Int64
)
ENGINE = MergeTree
ORDER BY (tenant_id, event_id);
