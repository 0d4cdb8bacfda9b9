-- The audit trail: one row per accepted event, never updated.
--
-- Typed columns exist for everything a query filters or sorts on; `payload` keeps the
-- event exactly as the client sent it (its protobuf encoding), so what a query returns is
-- byte for byte what was ingested. Times are nanoseconds since the Unix epoch in Int64
-- because DateTime64 does not exist on ClickHouse 18.16 and protobuf timestamps carry
-- nanoseconds: range filters stay exact at any precision a client uses.
CREATE TABLE IF NOT EXISTS events
(
    tenant_id       String,
    project_id      String,
    session_id      String,
    trace_id        String,
    span_id         String,
    parent_span_id  String,
    event_id        String,
    event_type      Int32,
    status          Int32,
    severity        Int32,
    author          Int32,
    agent_id        String,
    agent_name      String,
    tags            Array(String),
    -- event time in ns; the ingest time when the client sent no timestamp
    event_time_ns   Int64,
    -- 1 when event_time_ns came from the client, 0 when it is the ingest time
    has_event_time  UInt8,
    ingest_time_ns  Int64,
    -- UTC day of event_time_ns, the partitioning key
    event_date      Date,
    -- lower-cased human text (messages, tool names and arguments, errors, ...) for text_query
    search_text     String,
    -- the event's protobuf encoding, as received
    payload         String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (tenant_id, project_id, event_time_ns, event_id);
