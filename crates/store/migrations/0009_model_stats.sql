-- Tokens, cost and calls by model and provider (the console's stats page, docs/sessions.md),
-- kept at insert time like the other statistics.
--
-- The writer fills `provider` and `model` from each event's LLMInvocation (the provider
-- from its CostDetails when the invocation names none); rows stored before this migration
-- have neither and are in no model's figures.
ALTER TABLE events ADD COLUMN provider String DEFAULT '';
ALTER TABLE events ADD COLUMN model String DEFAULT '';

-- Per minute, provider and model: model calls (MODEL_INVOCATION_END events), those that
-- failed, and the tokens and cost the events of that model report.
CREATE TABLE IF NOT EXISTS stats_model_minute
(
    tenant_id     String,
    project_id    String,
    minute        Int64,
    provider      String,
    model         String,
    calls         UInt64,
    failed_calls  UInt64,
    input_tokens  UInt64,
    output_tokens UInt64,
    cost          Float64
)
ENGINE = SummingMergeTree
ORDER BY (tenant_id, project_id, minute, provider, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_model_minute_mv TO stats_model_minute AS
SELECT tenant_id, project_id, intDiv(event_time_ns, 60000000000) AS minute, provider, model,
       sum(toUInt64(event_type = 21)) AS calls,
       sum(toUInt64(event_type = 21 AND status = 4)) AS failed_calls,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cost) AS cost
FROM events
WHERE provider != '' OR model != ''
GROUP BY tenant_id, project_id, minute, provider, model;
