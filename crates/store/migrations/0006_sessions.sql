-- Sessions (docs/sessions.md): a summary per session and the state of each of its actions,
-- maintained by ClickHouse at insert time so that listing 10k sessions with their outcome
-- reads one aggregate row per session and per action, never the sessions' events.
--
-- The writer fills the figures below from each event's content (EventRow::new); rows
-- stored before this migration have zeros and count as no tokens, no cost and recoverable.
ALTER TABLE events ADD COLUMN input_tokens UInt64 DEFAULT 0;
ALTER TABLE events ADD COLUMN output_tokens UInt64 DEFAULT 0;
-- CostDetails.total_cost, in the currency the client reported
ALTER TABLE events ADD COLUMN cost Float64 DEFAULT 0;
-- 1 for an ERROR event whose ErrorInfo says it is not recoverable
ALTER TABLE events ADD COLUMN unrecovered UInt8 DEFAULT 0;

-- One row per session and project. Agents are the 16 most frequent names (topK: bounded
-- state whatever a client sends).
CREATE TABLE IF NOT EXISTS session_summaries
(
    tenant_id     String,
    session_id    String,
    project_id    String,
    first_ns      AggregateFunction(min, Int64),
    last_ns       AggregateFunction(max, Int64),
    events        AggregateFunction(count),
    agents        AggregateFunction(topK(16), String),
    model_calls   AggregateFunction(sum, UInt64),
    tool_calls    AggregateFunction(sum, UInt64),
    mcp_calls     AggregateFunction(sum, UInt64),
    -- ERROR events and events with status FAILED
    errors        AggregateFunction(sum, UInt64),
    input_tokens  AggregateFunction(sum, UInt64),
    output_tokens AggregateFunction(sum, UInt64),
    cost          AggregateFunction(sum, Float64),
    -- the latest SESSION_END's time; 0 while none arrived
    ended_ns      AggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, session_id, project_id);

-- Event types: 2 SESSION_END, 21 MODEL_INVOCATION_END, 23 TOOL_CALL_END, 25 MCP_CALL_END,
-- 40 ERROR (chaukas.spec.common.v1.EventType).
CREATE MATERIALIZED VIEW IF NOT EXISTS session_summaries_mv TO session_summaries AS
SELECT tenant_id, session_id, project_id,
       minState(event_time_ns) AS first_ns,
       maxState(event_time_ns) AS last_ns,
       countState() AS events,
       topKState(16)(agent_name) AS agents,
       sumState(toUInt64(event_type = 21)) AS model_calls,
       sumState(toUInt64(event_type = 23)) AS tool_calls,
       sumState(toUInt64(event_type = 25)) AS mcp_calls,
       sumState(toUInt64(event_type = 40 OR status = 4)) AS errors,
       sumState(input_tokens) AS input_tokens,
       sumState(output_tokens) AS output_tokens,
       sumState(cost) AS cost,
       maxState(if(event_type = 2, event_time_ns, toInt64(0))) AS ended_ns
FROM events
WHERE session_id != ''
GROUP BY tenant_id, session_id, project_id;

-- One row per action of a session: the span of an AGENT / MODEL_INVOCATION / TOOL_CALL /
-- MCP_CALL end (11, 21, 23, 25) or of an ERROR (40); the event id when it has no span.
-- An action's outcome is its latest end's status, unless an unrecovered error came after
-- it (docs/sessions.md); a time of -1 stands for "none".
CREATE TABLE IF NOT EXISTS session_actions
(
    tenant_id        String,
    session_id       String,
    project_id       String,
    action           String,
    last_end_status  AggregateFunction(argMax, Int32, Int64),
    last_end_ns      AggregateFunction(max, Int64),
    unrecovered_ns   AggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, session_id, project_id, action);

CREATE MATERIALIZED VIEW IF NOT EXISTS session_actions_mv TO session_actions AS
SELECT tenant_id, session_id, project_id,
       if(span_id != '', span_id, event_id) AS action,
       argMaxState(status, if(event_type = 40, toInt64(-1), event_time_ns)) AS last_end_status,
       maxState(if(event_type = 40, toInt64(-1), event_time_ns)) AS last_end_ns,
       maxState(if(event_type = 40 AND unrecovered = 1, event_time_ns, toInt64(-1))) AS unrecovered_ns
FROM events
WHERE session_id != '' AND event_type IN (11, 21, 23, 25, 40)
GROUP BY tenant_id, session_id, project_id, action;
