"""docs/openapi.yaml: the HTTP API we serve, its schemas derived from the wire contract.

The paths below are written by hand (they say what our gateway does); every schema of a
protobuf message is generated from the published descriptors, so the document cannot drift
from the messages the gateway decodes. `check` (part of `make test`) fails when the committed
file differs from what this script writes; `write` (`make openapi`) regenerates it.

Run inside the contract virtualenv (tests/contract/published.sh creates it).
"""

import sys

import openapi_sessions

from google.protobuf.descriptor import FieldDescriptor as FD

import chaukas.spec.common.v1.events_pb2 as events
import chaukas.spec.common.v1.query_pb2 as query
import chaukas.spec.server.v1.server_pb2 as server

OUTPUT = "docs/openapi.yaml"
# The document's `kind` for the content fields whose proto name differs.
KIND_ALIASES = {"policy": "policy_decision", "error": "error_info"}
SCALARS = {
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_INT64: {"type": "integer", "format": "int64",
                    "description": "Also accepted as a decimal string."},
    FD.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
WELL_KNOWN = {
    "google.protobuf.Timestamp": {
        "type": "string", "format": "date-time",
        "description": "RFC 3339. A time without zone (as chaukas-sdk file mode writes) is UTC.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Any": {
        "type": "object", "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
        "description": "A type this server does not know travels as "
                       "{\"@type\": url, \"value\": base64 of the encoded message}.",
    },
}


def enum_schema(enum):
    prefix = enum.values_by_number[0].name[: -len("UNSPECIFIED")]
    short = [v.name[len(prefix):] for v in enum.values if v.number != 0]
    return {
        "type": "string",
        "enum": short,
        "description": f"Short names as listed; the full protobuf names ({prefix}{short[0]} ...) "
                       "are accepted too.",
    }


def field_schema(field):
    if field.type == FD.TYPE_ENUM:
        single = {"$ref": f"#/components/schemas/{field.enum_type.name}"}
    elif field.type == FD.TYPE_MESSAGE:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            return {"type": "object",
                    "additionalProperties": field_schema(entry.fields_by_name["value"])}
        single = WELL_KNOWN.get(entry.full_name) or {"$ref": f"#/components/schemas/{entry.name}"}
    else:
        single = dict(SCALARS[field.type])
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def message_schema(message, required=()):
    properties = {}
    content = message.oneofs_by_name.get("content")
    for field in message.fields:
        if content is not None and field.containing_oneof is content:
            continue
        properties[field.name] = field_schema(field)
    if content is not None:
        properties["content"] = {"$ref": "#/components/schemas/Content"}
        state = message.fields_by_name["state_update"]
        properties[state.name] = dict(field_schema(state), description=(
            "The STATE_UPDATE content (a free-form object the document gives no kind)."))
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def content_schema(event):
    variants, mapping = [], {}
    for field in event.oneofs_by_name["content"].fields:
        if field.name == "state_update":
            continue
        kind = KIND_ALIASES.get(field.name, field.name)
        name = f"{field.message_type.name}Content"
        mapping[kind] = f"#/components/schemas/{name}"
        variants.append((name, kind, field.message_type))
    union = {
        "description": "The event's content: `kind` names the variant, its fields sit beside it. "
                       "Protobuf's canonical JSON (the variant under its field name, e.g. "
                       "\"tool_call\": {...} on the event) is accepted too.",
        "oneOf": [{"$ref": mapping[kind]} for _, kind, _ in variants],
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    }
    schemas = {"Content": union}
    for name, kind, message in variants:
        body = message_schema(message)
        body["properties"] = {"kind": {"type": "string", "enum": [kind]}, **body["properties"]}
        body["required"] = ["kind"]
        schemas[name] = body
    return schemas


def all_messages():
    seen, order = set(), []

    def visit(message):
        if message.full_name in seen or message.full_name in WELL_KNOWN:
            return
        if message.GetOptions().map_entry:
            for field in message.fields:
                if field.message_type is not None:
                    visit(field.message_type)
            return
        seen.add(message.full_name)
        order.append(message)
        for field in message.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for root in (events.Event, events.EventBatch, query.QueryRequest, query.QueryResponse,
                 query.Capabilities, server.GetEventStatsRequest, server.GetEventStatsResponse):
        visit(root.DESCRIPTOR)
    return order


def components():
    schemas = {}
    content_messages = {f.message_type.full_name
                        for f in events.Event.DESCRIPTOR.oneofs_by_name["content"].fields}
    required = {
        "Event": ("event_id", "type", "status", "timestamp", "session_id"),
        "QueryRequest": ("filter",),
    }
    for message in all_messages():
        if message.full_name in content_messages and message.name != "Struct":
            continue
        schemas[message.name] = message_schema(message, required.get(message.name, ()))
    schemas["QueryRequest"]["properties"]["page_size"].update(
        {"default": 100, "minimum": 1, "maximum": 1000})
    schemas["QueryRequest"]["properties"]["order_by_time"] = {
        "allOf": [{"$ref": "#/components/schemas/SortOrder"}], "default": "DESC"}
    schemas.update(content_schema(events.Event.DESCRIPTOR))
    for enum in (events.EventType, events.EventStatus, events.Severity, events.Author,
                 query.SortOrder):
        schemas[enum.DESCRIPTOR.name] = enum_schema(enum.DESCRIPTOR)
    schemas["IngestResult"] = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["accepted"]},
            "event_id": {"type": "string", "description": "Single-event routes."},
            "batch_id": {"type": "string", "description": "Batch routes."},
            "accepted_count": {"type": "integer"},
            "rejected_count": {"type": "integer"},
            "rejected_event_ids": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "array", "items": {
                "type": "object",
                "properties": {"event_id": {"type": "string"}, "error": {"type": "string"}}}},
        },
    }
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string",
                                 "description": "What is wrong, naming the field, and what to do."}},
    }
    schemas.update(openapi_sessions.schemas())
    return {"schemas": schemas, "responses": RESPONSES}


def error(description, **extra):
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    response.update(extra)
    return response


RESPONSES = {
    "Unauthorized": error(
        "No API key, or a malformed, unknown, revoked or expired one.",
        headers={"WWW-Authenticate": {"schema": {"type": "string"},
                                      "description": "Bearer realm=\"chaukas\""}}),
    "Forbidden": error("The key lacks the route's scope, or the request names another tenant or "
                       "project than the key's."),
    "BadRequest": error("Malformed protobuf or JSON, unknown enum name, wrong type, invalid "
                        "event (the message names the field)."),
    "TooLarge": error("Body (or its gzip-decompressed form, or its chunk framing) over "
                      "`gateway.max_request_bytes` (default 16 MiB; reads: "
                      "`gateway.max_read_request_bytes`, 1 MiB), or a read that needs more "
                      "memory or rows than a read may use."),
    "RequestTimeout": error("The body did not arrive within `gateway.body_timeout_ms` (30 s)."),
    "TooManyRequests": error(
        "The key's tenant already runs `query.max_reads_per_tenant` reads.",
        headers={"Retry-After": {"schema": {"type": "integer"},
                                 "description": "Seconds to wait before retrying."}}),
    "Internal": error("A fault of the server; the message quotes a request id for the "
                      "operator's log. Never SQL or server messages."),
    "Timeout": error("The read ran past its time limit (`query.max_execution_secs`); narrow it."),
    "UnsupportedMediaType": error("Content-Type other than JSON or protobuf, or a "
                                  "Content-Encoding other than gzip."),
    "Unavailable": error(
        "The bus (or the query service) is unavailable, or the gateway sheds load: the body "
        "then says \"high memory usage\", which makes chaukas-sdk split its batch and retry.",
        headers={"Retry-After": {"schema": {"type": "integer"},
                                 "description": "Seconds to wait before retrying."}}),
}

BODY_TYPES = "JSON (either spelling) or binary protobuf; gzip `Content-Encoding` accepted."


def body(schema_ref, proto_name, description=BODY_TYPES):
    return {
        "required": True,
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}},
            "application/x-protobuf": {"schema": {
                "type": "string", "format": "binary",
                "description": f"Encoded `{proto_name}`."}},
        },
    }


def ingest(summary, schema_ref, proto_name, description):
    return {"post": {
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "requestBody": body(schema_ref, proto_name),
        "responses": {
            "202": {"description": "Published to JetStream (durable) before this answer. Invalid "
                                   "events of a batch, and events of another tenant or project "
                                   "than the key's, are listed with the reason; the rest are "
                                   "accepted. Events without a tenant (project, for a "
                                   "project-bound key) get the key's.",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/IngestResult"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "408": {"$ref": "#/components/responses/RequestTimeout"},
            "413": {"$ref": "#/components/responses/TooLarge"},
            "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
            "500": {"$ref": "#/components/responses/Internal"},
            "503": {"$ref": "#/components/responses/Unavailable"},
        },
    }}


def read(summary, request_ref, response_ref, proto_in, proto_out):
    return {"post": {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": body(request_ref, proto_in),
        "responses": {
            "200": {"description": "JSON in the document's spelling for a JSON request; "
                                   f"encoded `{proto_out}` for a protobuf request. Confined to the "
                                   "key's tenant (and project): an empty tenant means the key's.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{response_ref}"}},
                        "application/x-protobuf": {"schema": {"type": "string",
                                                              "format": "binary"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "408": {"$ref": "#/components/responses/RequestTimeout"},
            "413": {"$ref": "#/components/responses/TooLarge"},
            "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
            "429": {"$ref": "#/components/responses/TooManyRequests"},
            "500": {"$ref": "#/components/responses/Internal"},
            "503": {"$ref": "#/components/responses/Unavailable"},
            "504": {"$ref": "#/components/responses/Timeout"},
        },
    }}


def log_resource(summary, description, media_type, parameters):
    """A GET of the tamper-evident audit log (docs/audit.md)."""
    return {"get": {
        "summary": summary,
        "description": description,
        "security": [{"bearer": []}],
        "parameters": [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string"}, "description": text}
            for name, text in parameters],
        "responses": {
            "200": {"description": summary,
                    "content": {media_type: {"schema": {"type": "string"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "404": {"description": "Not in the latest signed checkpoint (yet), or no such "
                                   "resource; the body says which."},
            "429": {"$ref": "#/components/responses/TooManyRequests"},
            "500": {"$ref": "#/components/responses/Internal"},
            "503": {"$ref": "#/components/responses/Unavailable"},
        },
    }}


TENANT = ("tenant", "The tenant, percent-encoded; must be the API key's.")
TEXT = "text/plain; charset=utf-8"


def log_paths():
    return {
        "/v1/log/key": log_resource(
            "The audit log's verifier key(s)",
            "Signed-note verifier keys, `<name>+<hex key id>+<base64>`, one per line.",
            TEXT, []),
        "/v1/log/{tenant}/checkpoint": log_resource(
            "The tenant's latest signed checkpoint",
            "A C2SP tlog-checkpoint in a C2SP signed note (Ed25519); origin "
            "`<log name>/<tenant>`.", TEXT, [TENANT]),
        "/v1/log/{tenant}/tile/{tile}": log_resource(
            "A C2SP tlog-tiles hash tile or entry bundle",
            "`{tile}` is `<L>/<N>[.p/<W>]` (hashes) or `entries/<N>[.p/<W>]` (per leaf, a "
            "big-endian u16 length and the 32-byte content hash), N in `x001/x234/067` form, "
            "exactly as c2sp.org/tlog-tiles lays them out; only tiles within the latest "
            "checkpoint.", "application/octet-stream",
            [TENANT, ("tile", "The tile path (may contain slashes).")]),
        "/v1/log/{tenant}/proof/{index}": log_resource(
            "Inclusion proof of one leaf",
            "A c2sp.org/tlog-proof@v1 of leaf `index` (the event's worm_proof_id) in the "
            "latest checkpoint, which it embeds.", TEXT,
            [TENANT, ("index", "Leaf index, decimal.")]),
        "/v1/log/{tenant}/consistency/{old}/{new}": log_resource(
            "Consistency proof between two tree sizes",
            "RFC 9162 consistency proof, one base64 hash per line; 0 < old <= new <= the "
            "latest checkpoint's size.", TEXT,
            [TENANT, ("old", "Older tree size."), ("new", "Newer tree size.")]),
    }


def probe(summary, description):
    return {"get": {"summary": summary, "responses": {
        "200": {"description": description},
        "503": {"description": "Not ready; the body says why."}}}}


def document():
    single = ("chaukas.spec.client.v1.IngestEventRequest: the SDK's route. A JSON body may be "
              "the wrapper ({\"event\": {...}}) or the bare Event.")
    batch = ("chaukas.spec.client.v1.IngestEventBatchRequest: the SDK's route. A JSON body may "
             "be the wrapper ({\"event_batch\": {...}}) or the bare EventBatch.")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Chaukas Server HTTP API",
            "version": "1.0.5-chaukas-server.1",
            "description": (
                "The spec's public HTTP API (public.yaml v1.0.5) as Chaukas Server serves it on "
                "the gateway's HTTP port (default 8080), plus the routes chaukas-sdk posts "
                "binary protobuf to and our additions (`/v1/stats`, the audit log under `/v1/log`, "
                "sessions under `/v1/sessions`, the live tail `/v1/tail`, `/readyz`, "
                "`/metrics`; the console at `/ui/`). "
                "JSON bodies may use this document's spelling (short enum names, `content` with "
                "`kind`) or protobuf's canonical JSON (full enum names, lowerCamel or proto "
                "field names, the content variant under its field name). Generated by "
                "tests/contract/openapi.py; edit that, then run `make openapi`."),
        },
        "servers": [{"url": "http://localhost:8080"}],
        "paths": {
            "/healthz": probe("Liveness", "The process serves."),
            "/readyz": probe("Readiness (our addition)",
                             "Connected to NATS and the streams exist."),
            "/metrics": {"get": {"summary": "Prometheus metrics (our addition)",
                                 "responses": {"200": {"description": "OpenMetrics text."}}}},
            "/v1/capabilities": {"get": {
                "summary": "What this server really does",
                "responses": {"200": {"description": "Capabilities", "content": {
                    "application/json": {"schema": {
                        "$ref": "#/components/schemas/Capabilities"}}}}}}},
            "/v1/events": ingest("Ingest one event", "Event", "IngestEventRequest",
                                 "JSON: an Event. Protobuf: IngestEventRequest."),
            "/v1/events/batch": ingest("Ingest a batch", "EventBatch", "IngestEventBatchRequest",
                                       "JSON: an EventBatch (at most 1000 events by default). "
                                       "Protobuf: IngestEventBatchRequest."),
            "/events": ingest("Ingest one event (chaukas-sdk)", "Event",
                              "IngestEventRequest", single),
            "/events/batch": ingest("Ingest a batch (chaukas-sdk)", "EventBatch",
                                    "IngestEventBatchRequest", batch),
            "/v1/query": read("Query events", "QueryRequest", "QueryResponse",
                              "chaukas.spec.common.v1.QueryRequest",
                              "chaukas.spec.common.v1.QueryResponse"),
            "/v1/stats": read("Event statistics (our addition)", "GetEventStatsRequest",
                              "GetEventStatsResponse",
                              "chaukas.spec.server.v1.GetEventStatsRequest",
                              "chaukas.spec.server.v1.GetEventStatsResponse"),
            **log_paths(),
            **openapi_sessions.paths(error),
        },
        "components": {
            **components(),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API key (`chk_<id>_<secret>`, made with `chaukas keys "
                               "create`) bound to a tenant and optionally a project, with scopes "
                               "ingest, query and stats; chaukas-sdk sends it from "
                               "CHAUKAS_API_KEY. A gateway run with allow_unauthenticated (local "
                               "development only) also lets requests without one through."}},
        },
    }


def scalar(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    needs_quotes = (not text or text[0] in "!&*{}[]|>'\"%@`#,?:-$ " or ": " in text
                    or " #" in text or text in ("true", "false", "null", "yes", "no")
                    or text.replace(".", "", 1).isdigit() or text != text.strip())
    if needs_quotes:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def leaf(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


def emit(value, indent=0):
    """A small block-style YAML writer: dicts, lists and scalars, stable order."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{scalar(key)}:")
                lines.extend(emit(item, indent + 1))
            else:
                lines.append(f"{pad}{scalar(key)}: {leaf(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = emit(item, indent + 1)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {leaf(item)}")
    return lines


def render():
    return "# Generated by tests/contract/openapi.py from the wire contract; do not edit.\n" + \
        "\n".join(emit(document())) + "\n"


def main(mode, path=OUTPUT):
    text = render()
    if mode == "write":
        with open(path, "w") as out:
            out.write(text)
        print(f"wrote {path}")
        return
    with open(path) as committed:
        if committed.read() != text:
            sys.exit(f"{path} is out of date with the wire contract or tests/contract/openapi.py: "
                     "run `make openapi` and commit the result")
    import yaml
    from openapi_spec_validator import validate

    parsed = yaml.safe_load(text)
    if parsed != document():
        sys.exit("the YAML writer garbled the document (parsed back, it differs)")
    validate(parsed)
    print(f"{path} matches the wire contract and is a valid OpenAPI 3.0 document")


if __name__ == "__main__":
    main(*sys.argv[1:])
