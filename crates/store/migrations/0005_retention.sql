-- Retention (docs/privacy.md): `chaukas retention apply` removes the content of a tenant's
-- oldest events once they are past the maximum retention, never their leaves (`log_leaves`
-- is never pruned), so the log still verifies. Each run records here, before it deletes
-- anything, that leaves below `pruned_below` may have no event any more: `chaukas verify`
-- reports those as pruned rather than missing, and still checks their hashes against the
-- signed root.
CREATE TABLE IF NOT EXISTS log_prunes
(
    tenant_id    String,
    -- every leaf below this index may have had its event removed
    pruned_below UInt64,
    -- events stored (ingest time, ns) before this were past the maximum retention
    cutoff_ns    Int64,
    -- events removed by the run
    events       UInt64,
    run_at_ns    Int64,
    run_by       String
)
ENGINE = MergeTree
ORDER BY (tenant_id, pruned_below);
