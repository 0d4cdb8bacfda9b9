-- The tamper-evident audit log (docs/audit.md): each tenant's stored events, in the order
-- the writer stored them, are the leaves of an RFC 9162 Merkle tree.
--
-- The writer seals each event before storing it: `content_hash` is the SHA-256 of its
-- canonical encoding (32 raw bytes), `leaf_index` its place in the tenant's log. Rows stored
-- before the log existed have an empty `content_hash` and are in no log.
--
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: the migration runner skips an
-- ADD COLUMN whose column exists, so racing runs still agree.
ALTER TABLE events ADD COLUMN leaf_index UInt64 DEFAULT 0;
ALTER TABLE events ADD COLUMN content_hash String DEFAULT '';

-- The leaves, by tenant and index: tiles, proofs and the writer's restart read ranges of
-- them. Filled by ClickHouse in the same INSERT as `events`, so the two cannot drift apart
-- through anything the writer does (the writer moves one partition per statement).
CREATE TABLE IF NOT EXISTS log_leaves
(
    tenant_id    String,
    leaf_index   UInt64,
    content_hash String,
    event_id     String
)
ENGINE = MergeTree
ORDER BY (tenant_id, leaf_index);

CREATE MATERIALIZED VIEW IF NOT EXISTS log_leaves_mv TO log_leaves AS
SELECT tenant_id, leaf_index, content_hash, event_id
FROM events
WHERE content_hash != '';

-- Full hash tiles of level 1 and up (256 hashes, 8192 bytes), cached as they are completed
-- or first computed: immutable, so duplicates are identical and any one is right. Level-0
-- tiles and partial tiles are computed from `log_leaves`.
CREATE TABLE IF NOT EXISTS log_tiles
(
    tenant_id  String,
    level      UInt8,
    tile_index UInt64,
    hashes     String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, level, tile_index);

-- Signed checkpoints (C2SP signed notes), the newest per tenant kept after merges; reads
-- take the largest tree size and never rely on merges having happened.
CREATE TABLE IF NOT EXISTS log_checkpoints
(
    tenant_id    String,
    tree_size    UInt64,
    root_hash    String,
    note         String,
    signed_at_ns Int64
)
ENGINE = ReplacingMergeTree(tree_size)
ORDER BY tenant_id;
