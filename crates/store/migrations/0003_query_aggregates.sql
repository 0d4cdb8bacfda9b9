-- Tables maintained by ClickHouse at insert time, for queries and statistics that must not
-- scan the raw events. Every one is fed by a materialized view on `events` (which the writer
-- fills exactly once), so counts are exact. Reads always aggregate (sum / -Merge) and never
-- rely on background merges having happened.
--
-- Minute buckets: `minute = intDiv(event_time_ns, 60e9)`. Statistics over a range that cuts
-- through a minute read whole minutes here and the cut edges from `events`, bounded to at
-- most two minutes of raw rows.

-- Time span of each session per project: turns "everything in session S" into a read of one
-- project and time window of `events` instead of the tenant's whole history.
CREATE TABLE IF NOT EXISTS session_spans
(
    tenant_id  String,
    session_id String,
    project_id String,
    first_ns   AggregateFunction(min, Int64),
    last_ns    AggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, session_id, project_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS session_spans_mv TO session_spans AS
SELECT tenant_id, session_id, project_id,
       minState(event_time_ns) AS first_ns, maxState(event_time_ns) AS last_ns
FROM events
GROUP BY tenant_id, session_id, project_id;

-- The same for traces.
CREATE TABLE IF NOT EXISTS trace_spans
(
    tenant_id  String,
    trace_id   String,
    project_id String,
    first_ns   AggregateFunction(min, Int64),
    last_ns    AggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, trace_id, project_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_spans_mv TO trace_spans AS
SELECT tenant_id, trace_id, project_id,
       minState(event_time_ns) AS first_ns, maxState(event_time_ns) AS last_ns
FROM events
GROUP BY tenant_id, trace_id, project_id;

-- Events per minute and type.
CREATE TABLE IF NOT EXISTS stats_type_minute
(
    tenant_id  String,
    project_id String,
    minute     Int64,
    event_type Int32,
    events     UInt64
)
ENGINE = SummingMergeTree
ORDER BY (tenant_id, project_id, minute, event_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_type_minute_mv TO stats_type_minute AS
SELECT tenant_id, project_id, intDiv(event_time_ns, 60000000000) AS minute, event_type,
       count() AS events
FROM events
GROUP BY tenant_id, project_id, minute, event_type;

-- First and last event time of each session per minute: distinct sessions and session
-- durations over any set of minutes, exactly.
CREATE TABLE IF NOT EXISTS stats_session_minute
(
    tenant_id  String,
    project_id String,
    minute     Int64,
    session_id String,
    first_ns   AggregateFunction(min, Int64),
    last_ns    AggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, project_id, minute, session_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_session_minute_mv TO stats_session_minute AS
SELECT tenant_id, project_id, intDiv(event_time_ns, 60000000000) AS minute, session_id,
       minState(event_time_ns) AS first_ns, maxState(event_time_ns) AS last_ns
FROM events
WHERE session_id != ''
GROUP BY tenant_id, project_id, minute, session_id;
