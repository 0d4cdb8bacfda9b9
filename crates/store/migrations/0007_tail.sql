-- The live tail (docs/sessions.md): where each sealed event is stored, by its tenant's leaf
-- index. Leaves are gapless and assigned in storage order, so "every event after leaf L" is
-- one keyed read here and one keyed read of `events` (by project, time and id) — the
-- resumable cursor of `GET /v1/tail`, without scanning a tenant's history.
CREATE TABLE IF NOT EXISTS tail_index
(
    tenant_id     String,
    leaf_index    UInt64,
    project_id    String,
    event_time_ns Int64,
    event_id      String
)
ENGINE = MergeTree
ORDER BY (tenant_id, leaf_index);

CREATE MATERIALIZED VIEW IF NOT EXISTS tail_index_mv TO tail_index AS
SELECT tenant_id, leaf_index, project_id, event_time_ns, event_id
FROM events
WHERE content_hash != '';
