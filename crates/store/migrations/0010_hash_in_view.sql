-- The content hash is stored once, in log_leaves. Until now every sealed event carried its
-- 32-byte SHA-256 in events.content_hash as well: incompressible bytes that every insert and
-- every merge wrote twice. From here on the writer marks a sealed row `sealed = 1` and leaves
-- events.content_hash empty, and the view records the hash by computing it from the payload,
-- which is by construction exactly the bytes the writer hashed (the event's canonical
-- encoding without the log fields). Rows sealed before keep their stored hash, and their
-- `sealed` reads as 1 from the default; so does a row an older writer inserts after this.
--
-- unhex(hex(...)): a FixedString(32) converted to String loses its trailing zero bytes,
-- which would cut one hash in 256 short (and 18.16 refuses a FixedString into the String
-- column outright).
--
-- Upgrade: the new view is made before 0008's is dropped, so an INSERT in between records
-- its leaves twice, identically (the hash is the same either way), never not at all;
-- readers take each leaf once. Migrate before rolling the writers, as always: a writer of
-- this version cannot insert `sealed` into an unmigrated table, and retries until it can.
ALTER TABLE events ADD COLUMN sealed UInt8 DEFAULT content_hash != '';

CREATE MATERIALIZED VIEW IF NOT EXISTS log_leaves_hashed_mv TO log_leaves AS
SELECT tenant_id, leaf_index, unhex(hex(SHA256(payload))) AS content_hash, event_id,
       project_id, event_time_ns
FROM events
WHERE sealed = 1;

DROP TABLE IF EXISTS log_leaves_located_mv;
