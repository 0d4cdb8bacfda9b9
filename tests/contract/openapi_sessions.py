"""docs/openapi.yaml's sessions API and live tail (docs/sessions.md): paths and schemas.

Written by hand like the other paths, kept apart from tests/contract/openapi.py (which
includes them) because the JSON these routes answer is ours, not the wire contract's.
"""


def query_param(name, description, schema=None, required=False):
    return {"name": name, "in": "query", "required": required,
            "schema": schema or {"type": "string"}, "description": description}


def path_param(name, description):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


DEV_TENANT = query_param("tenant", "Dev mode (no API keys) only: the tenant to read. With a "
                                   "key it may only be the key's own.")
SESSION_ID = path_param("id", "A session id, or a unique prefix of one (an exact id wins).")


def session_get(error, summary, description, parameters, ok, not_found=True, conflict=True):
    """A GET of the sessions API (docs/sessions.md): `query` scope, the key's tenant;
    `error` makes a response whose body is the document's Error."""
    responses = {
        "200": ok,
        "400": {"$ref": "#/components/responses/BadRequest"},
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
    }
    if not_found:
        responses["404"] = error("No session (or event) of the key's tenant has that id.")
    if conflict:
        responses["409"] = error("The id is a prefix of several sessions; the message names "
                                 "up to ten of them.")
    responses.update({
        "429": {"$ref": "#/components/responses/TooManyRequests"},
        "500": {"$ref": "#/components/responses/Internal"},
        "503": {"$ref": "#/components/responses/Unavailable"},
        "504": {"$ref": "#/components/responses/Timeout"},
    })
    return {"get": {"summary": summary, "description": description,
                    "security": [{"bearer": []}], "parameters": parameters,
                    "responses": responses}}


def json_ok(description, ref, media_type="application/json"):
    return {"description": description,
            "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def typed(kind, description, **extra):
    return {"type": kind, "description": description, **extra}


TIME = {"type": "string", "format": "date-time"}


def schemas():
    row = {
        "session_id": {"type": "string"},
        "project_id": {"type": "string"},
        "start": TIME,
        "end": typed("string", "The SESSION_END's time; absent while the session is open.",
                     format="date-time"),
        "last_event": TIME,
        "duration_ms": typed("number", "To the end, or to the last event while open."),
        "event_count": {"type": "integer", "format": "int64"},
        "agents": typed("array", "The 16 most active agent names.", items={"type": "string"}),
        "model_calls": {"type": "integer", "format": "int64"},
        "tool_calls": {"type": "integer", "format": "int64"},
        "mcp_calls": {"type": "integer", "format": "int64"},
        "errors": typed("integer", "ERROR events and events with status FAILED.",
                        format="int64"),
        "input_tokens": {"type": "integer", "format": "int64"},
        "output_tokens": {"type": "integer", "format": "int64"},
        "cost": typed("number", "Sum of CostDetails.total_cost, in the clients' currency."),
        "actions": {"type": "integer", "format": "int64"},
        "failed_actions": {"type": "integer", "format": "int64"},
        "outcome": typed("string", "Derived from the events (docs/sessions.md).",
                         enum=["complete", "partial", "failed", "in_progress", "abandoned"]),
        "reasons": typed("array", "Sentences saying why the outcome is what it is.",
                         items={"type": "string"}),
    }
    required = [name for name in row if name != "end"]
    span = {
        "span_id": {"type": "string"},
        "parent_span_id": {"type": "string"},
        "kind": {"type": "string",
                 "enum": ["session", "agent", "model", "tool", "mcp", "error"]},
        "name": typed("string", "Tool name, provider/model, or MCP server and method."),
        "agent": {"type": "string"},
        "start": TIME,
        "end": TIME,
        "duration_ms": {"type": "number"},
        "status": typed("string", "The latest end's status."),
        "failure": typed("string", "Why the action failed, when it did."),
        "start_event_id": {"type": "string"},
        "end_event_id": {"type": "string"},
    }
    line = {
        "event_id": {"type": "string"},
        "type": {"type": "string"},
        "time": TIME,
        "status": {"type": "string"},
        "span_id": {"type": "string"},
        "agent": {"type": "string"},
        "leaf_index": typed("integer", "The event's leaf in the tenant's audit log.",
                            format="int64"),
    }
    change = {"op": {"type": "string", "enum": ["add", "remove", "replace"]},
              "path": typed("string", "RFC 6901 JSON Pointer."),
              "before": {}, "after": {}}
    state = {"event_id": {"type": "string"}, "agent": {"type": "string"}, "time": TIME,
             "before": typed("object", "The same agent's previous state; null for its first.",
                             nullable=True),
             "after": typed("object", "This STATE_UPDATE's state."),
             "diff": {"type": "array", "items": {"type": "object", "properties": change}}}
    handoff = {"event_id": {"type": "string"}, "time": TIME, "from_agent": {"type": "string"},
               "to_agent": {"type": "string"}, "reason": {"type": "string"}}
    array = lambda properties: {"type": "array",  # noqa: E731
                                "items": {"type": "object", "properties": properties}}
    figures = {
        "provider": {"type": "string"},
        "model": {"type": "string"},
        "calls": typed("integer", "MODEL_INVOCATION_END events.", format="int64"),
        "failed_calls": typed("integer", "Of those, the ones with status FAILED.",
                              format="int64"),
        "input_tokens": {"type": "integer", "format": "int64"},
        "output_tokens": {"type": "integer", "format": "int64"},
        "cost": typed("number", "Sum of CostDetails.total_cost, in the clients' currency."),
    }
    return {
        "ModelFigures": {"type": "object", "required": list(figures), "properties": figures},
        "ModelStats": {"type": "object", "required": ["from", "to", "models"], "properties": {
            "from": typed("string", "The first whole minute counted.", format="date-time"),
            "to": typed("string", "The end of the last whole minute counted.",
                        format="date-time"),
            "models": {"type": "array", "description": "Most calls first, at most 200.",
                       "items": {"$ref": "#/components/schemas/ModelFigures"}},
            "others": {"allOf": [{"$ref": "#/components/schemas/ModelFigures"}],
                       "description": "The models past the first 200, summed (provider and "
                                      "model empty); absent when there are none."},
        }},
        "SessionRow": {"type": "object", "required": required, "properties": row},
        "SessionPage": {"type": "object", "required": ["sessions"], "properties": {
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/SessionRow"}},
            "next_page_token": typed("string", "Pass as `page_token` for the next page "
                                               "(bound to the same filters); absent on the last."),
        }},
        "SessionDetail": {
            "type": "object",
            "description": "A SessionRow and the session's structure.",
            "required": required + ["spans", "events", "state_updates", "handoffs",
                                    "truncated"],
            "properties": {
                **row,
                "spans": array(span),
                "events": array(line),
                "state_updates": array(state),
                "handoffs": array(handoff),
                "truncated": typed("boolean", "The session has more than 50,000 events and "
                                              "only the first were read."),
            },
        },
    }


def paths(error):
    """The routes; `error(description)` makes an error response."""
    filters = [
        query_param("project", "One project."),
        query_param("from", "Sessions that started at or after: RFC 3339 or ns since the "
                            "epoch."),
        query_param("to", "Sessions that started before (same forms)."),
        query_param("agent", "Sessions with this agent among their 16 most active."),
        query_param("outcome", "One outcome.", {"type": "string", "enum": [
            "complete", "partial", "failed", "in_progress", "abandoned"]}),
        query_param("has_errors", "With (true) or without (false) errors.",
                    {"type": "boolean"}),
        query_param("text", "Case-insensitive substring of the session id or its events' text."),
        query_param("page_size", "1 to 500.", {"type": "integer", "minimum": 1, "maximum": 500,
                                               "default": 50}),
        query_param("page_token", "`next_page_token` of the previous page."),
        DEV_TENANT,
    ]
    return {
        "/v1/sessions": session_get(
            error,
            "Sessions, newest first (our addition)",
            "One page of the tenant's sessions with their outcome, read from aggregates kept "
            "at insert time. An unknown parameter is refused, naming the known ones.",
            filters, json_ok("One page.", "SessionPage"), not_found=False, conflict=False),
        "/v1/sessions/{id}": session_get(
            error,
            "One session: summary, span tree, events, state diffs (our addition)",
            "The list row plus the START/END pairs joined by span, every event without its "
            "payload (with its audit-log leaf), STATE_UPDATE diffs and handoffs. At most "
            "50,000 events are read (`truncated`).",
            [SESSION_ID, DEV_TENANT], json_ok("The session.", "SessionDetail")),
        "/v1/sessions/{id}/prov": session_get(
            error,
            "One session as W3C PROV-O (our addition)",
            "JSON-LD: the session and its actions as prov:Activity, agents as "
            "prov:SoftwareAgent (handoffs as delegation), START/END events as prov:Entity "
            "(used / wasGeneratedBy), the sequence as wasInformedBy (docs/sessions.md).",
            [SESSION_ID, DEV_TENANT],
            {"description": "The PROV-O graph.",
             "content": {"application/ld+json": {"schema": {"type": "object"}}}}),
        "/v1/sessions/{id}/events/{event_id}": session_get(
            error,
            "One event of a session, whole (our addition)",
            "The event with its payload, as /v1/query answers it (log fields filled); what "
            "the console loads on demand.",
            [SESSION_ID, path_param("event_id", "The event's id."), DEV_TENANT],
            json_ok("The event.", "Event")),
        "/v1/stats/models": session_get(
            error,
            "Tokens, cost and calls by model and provider (our addition)",
            "Sums over whole minutes (the range is widened to the minutes it touches) from an "
            "aggregate kept at insert time. Needs the `stats` scope. Tokens and cost are those "
            "of events that name a model (LLMInvocation); a cost reported on other events is "
            "in no model's figures.",
            [query_param("project", "One project."),
             query_param("from", "Start: RFC 3339 or ns since the epoch; default a day ago."),
             query_param("to", "End (same forms); default now."),
             DEV_TENANT],
            json_ok("The figures.", "ModelStats"), not_found=False, conflict=False),
        "/v1/tail": session_get(
            error,
            "Live tail of stored events, as Server-Sent Events (our addition)",
            "Each message is one stored event in this document's JSON spelling; its `id` is "
            "the event's leaf in the tenant's audit log, and reconnecting with "
            "`Last-Event-ID` resumes after it without loss or repeats (without it the tail "
            "starts from now). A comment line every 15 s keeps an idle stream open. A reader "
            "that leaves its 64-message buffer full for 10 s gets an `error` message and the "
            "stream ends; a gateway serves at most 256 tails, one tenant at most 32 of them (then 429).",
            [query_param("project", "Only this project's events."),
             query_param("session", "Only this session's events."),
             query_param("agent", "Only this agent's events (name or id)."),
             query_param("type", "Only these event types (repeatable).",
                         {"type": "array", "items": {"type": "string"}}),
             {"name": "Last-Event-ID", "in": "header", "required": False,
              "schema": {"type": "string"}, "description": "Resume after this leaf."},
             DEV_TENANT],
            {"description": "The stream.",
             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            not_found=False, conflict=False),
    }
