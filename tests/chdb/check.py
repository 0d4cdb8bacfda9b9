"""Current ClickHouse, in-process (chDB): what the deployment relies on beyond ClickHouse
18.16, the only server this project's machines can run.

1. Every migration (crates/store/migrations, split on `;` as the Rust runner splits them)
   applies in order; the writer's scratch database, stage, move, claim lookup and the
   retention delete run against the result. The statements below mirror their Rust sources
   (named next to each); the migrations are read from the files themselves.
2. The write-once settings (docs/privacy.md): `allow_ddl = 0` (the writer's profile) refuses
   every statement that deletes or rewrites and cannot be undone by the session; `readonly = 2`
   (the query service's) refuses every write. Each is checked in a fresh session.
3. The queries `chaukas_store::confinement` asks to report `worm_retention` run, and the
   unrestricted default user is not taken for a confined one.

Usage: check.py MIGRATIONS_DIR. Exits non-zero naming the first thing that failed.
"""

import os
import re
import sys
import tempfile

from chdb import session

FAILURES = []


def split_statements(sql):
    """`;`-separated statements outside quotes and `--` comments (migrations.rs)."""
    statements, start, index = [], 0, 0
    while index < len(sql):
        char = sql[index]
        if char in "'\"`":
            index += 1
            while index < len(sql) and sql[index] != char:
                index += 2 if sql[index] == "\\" else 1
        elif sql.startswith("--", index):
            while index < len(sql) and sql[index] != "\n":
                index += 1
        elif char == ";":
            statements.append(sql[start:index])
            start = index + 1
        index += 1
    statements.append(sql[start:])
    meaningful = lambda s: any(l.strip() and not l.strip().startswith("--") for l in s.splitlines())
    return [s.strip() for s in statements if meaningful(s)]


CURRENT = []


def fresh():
    """A new embedded server of its own (one per process at a time: the last is closed)."""
    while CURRENT:
        CURRENT.pop().close()
    db = session.Session(tempfile.mkdtemp(prefix="chaukas-chdb-"))
    CURRENT.append(db)
    return db


def run(db, sql, what):
    try:
        return str(db.query(sql, "TSV"))
    except Exception as error:  # chDB raises its own error types
        FAILURES.append(f"{what}: {str(error).splitlines()[0][:300]}\n    {sql[:300]}")
        return None


def refused(db, sql, why):
    try:
        db.query(sql, "TSV")
    except Exception as error:
        if why not in str(error):
            FAILURES.append(f"refused for another reason than {why!r}: {sql}: {error}")
        return
    FAILURES.append(f"allowed, should be refused ({why}): {sql}")


def migrations(directory):
    db = fresh()
    run(db, "CREATE DATABASE chaukas", "create database")
    run(db, "USE chaukas", "use database")
    files = sorted(f for f in os.listdir(directory) if re.match(r"\d{4}_.*\.sql$", f))
    count = 0
    for name in files:
        with open(os.path.join(directory, name)) as file:
            for statement in split_statements(file.read()):
                run(db, statement, f"migration {name}")
                count += 1
    print(f"  {count} statements of {len(files)} migrations applied on ClickHouse "
          f"{run(db, 'SELECT version()', 'version').strip()}")
    return db


def write_path(db):
    """The writer's and retention's statements on the migrated schema."""
    columns = [row.split("\t")[0] for row in run(db, "SELECT name FROM system.columns "
               "WHERE database = 'chaukas' AND table = 'events' ORDER BY position",
               "columns").splitlines()]
    listed = ", ".join(columns)
    steps = [
        # scratch.rs prepare
        ("scratch database", "CREATE DATABASE IF NOT EXISTS chaukas_scratch"),
        ("stage template", "CREATE TABLE chaukas_scratch.events_template AS chaukas.events "
                           "ENGINE = Memory"),
        # scratch.rs stage_rows, move_stage, drop_stage
        ("stage", "CREATE TABLE chaukas_scratch.insert_stage_1_x_0_s_1_ AS "
                  "chaukas_scratch.events_template ENGINE = Memory"),
        ("stage rows", f"INSERT INTO chaukas_scratch.insert_stage_1_x_0_s_1_ (tenant_id, "
                       "event_id, event_date, sealed, leaf_index, payload) "
                       "VALUES ('t', 'e1', today(), 1, 0, 'x272')"),
        ("move", f"INSERT INTO events ({listed}) SELECT {listed} FROM "
                 "chaukas_scratch.insert_stage_1_x_0_s_1_ WHERE toYYYYMM(event_date) = "
                 "toYYYYMM(today())"),
        ("drop stage", "DROP TABLE IF EXISTS chaukas_scratch.insert_stage_1_x_0_s_1_"),
        # a writer of before migration 0010 during an upgrade: its own hash, no `sealed`
        ("older writer", "INSERT INTO events (tenant_id, event_id, event_date, content_hash, "
                         "leaf_index, payload) VALUES ('t', 'e2', today(), "
                         "unhex(hex(SHA256('p'))), 1, 'p')"),
        # events.rs create_lookup, claims
        ("lookup", "CREATE TABLE chaukas_scratch.insert_stage_1_x_1_s_ (lookup UInt64, "
                   "tenant_id String, event_id String) ENGINE = Memory"),
        ("lookup keys", "INSERT INTO chaukas_scratch.insert_stage_1_x_1_s_ VALUES (7, 't', 'e1')"),
        ("claims", "SELECT tenant_id, event_id, min(stream_seq) FROM event_claims WHERE "
                   "tenant_id IN (SELECT tenant_id FROM chaukas_scratch.insert_stage_1_x_1_s_ "
                   "WHERE lookup = 7) AND event_id IN (SELECT event_id FROM "
                   "chaukas_scratch.insert_stage_1_x_1_s_ WHERE lookup = 7) "
                   "GROUP BY tenant_id, event_id"),
        # retention.rs delete_below
        ("retention delete", "ALTER TABLE events DELETE WHERE tenant_id = 't' AND "
                             "sealed = 1 AND leaf_index < 1"),
    ]
    for what, sql in steps:
        run(db, sql, what)
    # Each row once, its hash whole: SHA256('x272') ends in a zero byte, which a
    # FixedString-to-String conversion would cut off.
    leaves = run(db, "SELECT leaf_index, length(content_hash), hex(content_hash) = "
                 "hex(SHA256(if(leaf_index = 0, 'x272', 'p'))) FROM log_leaves "
                 "WHERE tenant_id = 't' ORDER BY leaf_index", "leaves")
    if leaves is not None and leaves.split() != ["0", "32", "1", "1", "32", "1"]:
        FAILURES.append(f"each row should reach log_leaves once with its whole hash: {leaves!r}")
    print(f"  {len(steps)} writer and retention statements ran")


def with_table(setting):
    db = fresh()
    run(db, "CREATE DATABASE d", "create database")
    run(db, "CREATE TABLE d.t (a UInt8) ENGINE = MergeTree ORDER BY a", "create table")
    run(db, "INSERT INTO d.t VALUES (1)", "insert")
    run(db, setting, setting)
    return db


def write_once_settings():
    destructive = ["ALTER TABLE d.t DELETE WHERE 1", "ALTER TABLE d.t UPDATE a = 3 WHERE 1",
                   "DELETE FROM d.t WHERE 1", "DROP TABLE d.t", "TRUNCATE TABLE d.t",
                   "ALTER TABLE d.t DROP PARTITION tuple()", "RENAME TABLE d.t TO d.u",
                   "DETACH TABLE d.t"]
    writer = with_table("SET allow_ddl = 0")
    run(writer, "INSERT INTO d.t VALUES (2)", "the insert-only writer inserts")
    for sql in destructive + ["SET allow_ddl = 1"]:
        refused(writer, sql, "QUERY_IS_PROHIBITED")
    kept = run(writer, "SELECT count() FROM d.t", "count")
    if kept is not None and kept.strip() != "2":
        FAILURES.append(f"allow_ddl = 0: {kept.strip()} rows left of 2")
    reader = with_table("SET readonly = 2")
    for sql in destructive + ["INSERT INTO d.t VALUES (2)", "SET readonly = 0"]:
        refused(reader, sql, "READONLY")
    print(f"  allow_ddl = 0 refused {len(destructive) + 1} statements; "
          f"readonly = 2 refused {len(destructive) + 2}")


def confinement_queries():
    db = fresh()
    settings = run(db, "SELECT name, value FROM system.settings "
                       "WHERE name IN ('readonly', 'allow_ddl')", "settings")
    grants = run(db, "SHOW GRANTS FINAL", "SHOW GRANTS FINAL")
    if settings is not None and "allow_ddl\t1" not in settings:
        FAILURES.append(f"default session settings: {settings!r}")
    if grants is not None and not re.search(r"\bDROP\b", grants):
        FAILURES.append(f"the default user should hold DROP: {grants!r}")
    print("  the confinement check's queries ran")


def sessions_queries(db):
    """sessions/list.rs statement and sessions/detail.rs events_statement, on rows fed
    through the 0006 views: one session whose tool call failed and then succeeded on retry
    (complete) and one whose only action failed (failed)."""
    rows = [
        # (session, event, type, status, span, time s, unrecovered)
        ("s1", "e1", 23, 4, "t1", 1, 0),
        ("s1", "e2", 23, 3, "t1", 2, 0),
        ("s1", "e3", 2, 3, "", 3, 0),
        ("s2", "e4", 40, 4, "", 4, 1),
        ("s2", "e5", 2, 3, "", 5, 0),
    ]
    values = ", ".join(
        f"('t', 'p', '{sess}', '{ev}', {kind}, {status}, '{span}', {sec}000000000, "
        f"toDate('2025-01-01'), {unrec}, 'agent')"
        for sess, ev, kind, status, span, sec, unrec in rows)
    run(db, "INSERT INTO events (tenant_id, project_id, session_id, event_id, event_type, "
            "status, span_id, event_time_ns, event_date, unrecovered, agent_name) "
            f"VALUES {values}", "session rows")
    listed = run(db, """
        SELECT session_id, project_id, start_ns, last_ns, ended_ns, events, agents,
         model_calls, tool_calls, mcp_calls, errors, input_tokens, output_tokens, cost,
         actions, failed FROM (SELECT session_id, project_id,
         minMerge(first_ns) AS start_ns, maxMerge(last_ns) AS last_ns,
         maxMerge(ended_ns) AS ended_ns, countMerge(events) AS events,
         topKMerge(16)(agents) AS agents, sumMerge(model_calls) AS model_calls,
         sumMerge(tool_calls) AS tool_calls, sumMerge(mcp_calls) AS mcp_calls,
         sumMerge(errors) AS errors, sumMerge(input_tokens) AS input_tokens,
         sumMerge(output_tokens) AS output_tokens, sumMerge(cost) AS cost
         FROM session_summaries WHERE tenant_id = 't'
         GROUP BY session_id, project_id) AS summaries ANY LEFT JOIN (SELECT session_id, project_id,
         count() AS actions, sum(failed) AS failed FROM (SELECT session_id, project_id,
         argMaxMerge(last_end_status) AS end_status, maxMerge(last_end_ns) AS end_ns,
         maxMerge(unrecovered_ns) AS error_ns,
         toUInt64((end_ns >= 0 AND end_status IN (4, 5)) OR error_ns > end_ns) AS failed
         FROM session_actions WHERE tenant_id = 't'
         GROUP BY session_id, project_id, action HAVING end_ns >= 0 OR error_ns >= 0)
         GROUP BY session_id, project_id) AS outcomes USING (session_id, project_id) WHERE 1
         AND (errors > 0 OR failed > 0)
         AND multiIf(ended_ns = 0 AND last_ns < 0, 'abandoned', ended_ns = 0, 'in_progress',
         failed = 0, 'complete', failed = actions, 'failed', 'partial') = 'failed'
         ORDER BY start_ns DESC, session_id DESC, project_id DESC LIMIT 51""", "session list")
    if listed is not None and [line.split("\t")[0] for line in listed.splitlines()] != ["s2"]:
        FAILURES.append(f"the failed sessions should be just s2: {listed!r}")
    events = run(db, """
        SELECT event_id, event_type, status, span_id, parent_span_id, agent_name,
         event_time_ns, leaf_index, sealed, if(length(payload) <= 1048576, payload, '')
         AS payload FROM events WHERE tenant_id = 't' AND session_id = 's1'
         AND event_time_ns >= (SELECT minMerge(first_ns) FROM session_spans
         WHERE tenant_id = 't' AND session_id = 's1')
         AND event_time_ns <= (SELECT maxMerge(last_ns) FROM session_spans
         WHERE tenant_id = 't' AND session_id = 's1')
         ORDER BY event_time_ns, event_id LIMIT 50001""", "session events")
    if events is not None and len(events.splitlines()) != 3:
        FAILURES.append(f"session s1 has 3 events: {events!r}")
    print("  the sessions list and detail statements ran")


def model_stats_queries(db):
    """model_stats.rs's statement, on rows fed through the 0009 view: two calls of one model
    (one failed) and one of another; an event naming no model is left out."""
    rows = [
        # (event, type, status, provider, model, input, output, cost)
        ("m1", 21, 3, "openai", "gpt-4o", 100, 20, 0.25),
        ("m2", 21, 4, "openai", "gpt-4o", 10, 0, 0.0),
        ("m3", 21, 3, "anthropic", "claude", 7, 3, 0.1),
        ("x1", 23, 3, "", "", 0, 0, 1.0),
    ]
    values = ", ".join(
        f"('tm', 'p', '{ev}', {kind}, {status}, '{provider}', '{model}', {tokens_in}, "
        f"{tokens_out}, {cost}, 120000000000, toDate('2025-01-01'))"
        for ev, kind, status, provider, model, tokens_in, tokens_out, cost in rows)
    run(db, "INSERT INTO events (tenant_id, project_id, event_id, event_type, status, "
            "provider, model, input_tokens, output_tokens, cost, event_time_ns, event_date) "
            f"VALUES {values}", "model rows")
    summed = run(db, """
        SELECT provider, model, sum(calls) AS calls, sum(failed_calls) AS failed_calls,
         sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
         sum(cost) AS cost FROM stats_model_minute WHERE tenant_id = 'tm' AND project_id = 'p'
         AND minute >= 1 AND minute < 3 GROUP BY provider, model
         ORDER BY calls DESC, input_tokens + output_tokens DESC, provider, model""",
                 "model stats")
    expected = "openai\tgpt-4o\t2\t1\t110\t20\t0.25\nanthropic\tclaude\t1\t0\t7\t3\t0.1"
    if summed is not None and summed.strip() != expected:
        FAILURES.append(f"the figures by model should be {expected!r}: {summed!r}")
    print("  the figures-by-model statement ran")


def main():
    db = migrations(sys.argv[1])
    write_path(db)
    sessions_queries(db)
    model_stats_queries(db)
    write_once_settings()
    confinement_queries()
    if FAILURES:
        print("FAILED on current ClickHouse (chDB):", *FAILURES, sep="\n  ")
        sys.exit(1)
    print("current ClickHouse (chDB): ok")


if __name__ == "__main__":
    main()
