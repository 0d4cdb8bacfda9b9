-- The live tail reads leaves straight from `log_leaves` (docs/sessions.md): each leaf also
-- records where its event is stored (project and time, with the tenant and id the primary
-- key of `events`). This replaces `tail_index` (0007), a second table and view filled from
-- the same rows by the same INSERT: one table less to write and merge for every batch.
--
-- The new view is made before the old one is dropped, so an INSERT running meanwhile fills
-- a leaf twice (identical but for the location) rather than not at all; readers take each
-- leaf once and prefer the located row. Leaves recorded before this migration have no
-- location (project '', time 0): the tail finds those events by leaf in `events`.
ALTER TABLE log_leaves ADD COLUMN project_id String DEFAULT '';
ALTER TABLE log_leaves ADD COLUMN event_time_ns Int64 DEFAULT 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS log_leaves_located_mv TO log_leaves AS
SELECT tenant_id, leaf_index, content_hash, event_id, project_id, event_time_ns
FROM events
WHERE content_hash != '';

DROP TABLE IF EXISTS log_leaves_mv;
DROP TABLE IF EXISTS tail_index_mv;
DROP TABLE IF EXISTS tail_index;
