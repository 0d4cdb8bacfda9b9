"""OTLP ingestion with the real OpenTelemetry Python SDK (docs/otlp.md): its gRPC and
HTTP/protobuf exporters, OTLP/JSON, GenAI spans written by hand in every convention the
mapping reads, and pydantic-ai's own instrumentation running offline with its TestModel.
The gateway enforces API keys, sent the way OTEL_EXPORTER_OTLP_HEADERS sends them."""

import base64
import json
import os
import time
import uuid

import grpc
import pytest
import requests
from chaukas.spec.common.v1 import events_pb2, query_pb2
from chaukas.spec.server.v1 import server_pb2, server_pb2_grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from grpc import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, Status, StatusCode
from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from test_published_clients import GRPC, api_key, bearer, wait_until_known

OTLP_GRPC = os.environ["CHAUKAS_INTEROP_OTLP_GRPC"]  # host:port (OTLP's 4317 in a deployment)
OTLP_HTTP = os.environ["CHAUKAS_INTEROP_OTLP_HTTP"]  # http://host:port (4318)
T = events_pb2.EventType


def otlp_json(request) -> str:
    """An ExportTraceServiceRequest in OTLP/JSON: protobuf's JSON mapping (lowerCamelCase keys,
    int64 as strings, integer enums) with the ids in hex, as the OTLP spec requires."""
    def hex_ids(node):
        if isinstance(node, dict):
            return {
                key: base64.b64decode(value).hex()
                if key in ("traceId", "spanId", "parentSpanId") else hex_ids(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [hex_ids(item) for item in node]
        return node
    return json.dumps(hex_ids(MessageToDict(request, use_integers_for_enums=True)))


class JsonExporter(SpanExporter):
    """OTLP/HTTP with JSON bodies. The Python SDK ships only the protobuf encoding of
    OTLP/HTTP, so this exporter is its encoder plus the JSON spelling above."""

    def __init__(self, headers: dict):
        self.headers = {"Content-Type": "application/json", **headers}
        self.last = None

    def export(self, spans):
        body = otlp_json(encode_spans(spans))
        self.last = requests.post(f"{OTLP_HTTP}/v1/traces", data=body, headers=self.headers, timeout=10)
        return SpanExportResult.SUCCESS if self.last.status_code == 200 else SpanExportResult.FAILURE

    def shutdown(self):
        pass


def from_otlp_json(node):
    """Stored `metadata.otlp` back into protobuf JSON for protobuf's reader: hex ids into
    base64, attribute objects (keyed by name) into OTLP's key/value lists."""
    if isinstance(node, dict):
        def convert(key, value):
            if key in ("traceId", "spanId", "parentSpanId"):
                return base64.b64encode(bytes.fromhex(value)).decode()
            if key == "attributes" and isinstance(value, dict):
                return [{"key": name, "value": from_otlp_json(v)} for name, v in sorted(value.items())]
            return from_otlp_json(value)
        return {key: convert(key, value) for key, value in node.items()}
    if isinstance(node, list):
        return [from_otlp_json(item) for item in node]
    return node


def exporter(kind: str, key: str) -> SpanExporter:
    headers = {"authorization": f"Bearer {key}"}
    if kind.startswith("grpc"):
        compression = GrpcCompression.Gzip if kind.endswith("gzip") else None
        return GrpcExporter(endpoint=f"http://{OTLP_GRPC}", headers=headers, insecure=True,
                            compression=compression)
    if kind.startswith("http/protobuf"):
        compression = {"gzip": HttpCompression.Gzip, "deflate": HttpCompression.Deflate}.get(
            kind.rpartition("+")[2], HttpCompression.NoCompression)
        return HttpExporter(endpoint=f"{OTLP_HTTP}/v1/traces", headers=headers, compression=compression)
    return JsonExporter(headers)


def new_tenant(prefix: str) -> tuple:
    tenant = f"{prefix}-{uuid.uuid4().hex[:8]}"
    key = api_key(tenant)
    wait_until_known(server_pb2_grpc.ChaukasServerServiceStub(grpc.insecure_channel(GRPC)), key)
    return tenant, key


def provider_for(span_exporter: SpanExporter, session: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource({"service.name": "otlp-interop", "session.id": session}))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


def agent_run(provider: TracerProvider, session: str) -> None:
    """One agent run whose spans speak every convention of the mapping table."""
    tracer = provider.get_tracer("chaukas.interop")
    with tracer.start_as_current_span("invoke_agent Planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner", "gen_ai.agent.id": "agent-1",
    }):
        with tracer.start_as_current_span("chat gpt-4o", attributes={  # semconv 1.37+
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.conversation.id": session,
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 5,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "weather?"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "sunny"}]}]),
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "be brief"}]),
        }):
            pass
        with tracer.start_as_current_span("chat claude", attributes={  # the older attributes
            "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3",
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hello",
            "gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 1,
        }):
            pass
        with tracer.start_as_current_span("llm", attributes={  # OpenInference
            "openinference.span.kind": "LLM", "llm.model_name": "mistral-large", "llm.provider": "mistralai",
            "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "bonjour",
            "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "salut",
            "llm.token_count.prompt": 4, "llm.token_count.completion": 2,
        }):
            pass
        with tracer.start_as_current_span("execute_tool search", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "gen_ai.tool.call.id": "call-1",
            "gen_ai.tool.call.arguments": '{"q": "weather"}', "gen_ai.tool.call.result": '{"temp": 21}',
        }):
            pass
        with tracer.start_as_current_span("tools/call read", attributes={
            "mcp.method.name": "tools/call", "gen_ai.tool.name": "read", "server.address": "files",
        }):
            pass
        with tracer.start_as_current_span("pii guard", attributes={
            "openinference.span.kind": "GUARDRAIL", "guardrail.name": "pii", "guardrail.outcome": "deny",
        }):
            pass
        with tracer.start_as_current_span("execute_tool flaky", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "flaky",
        }, record_exception=False, set_status_on_exception=False) as failing:
            failing.record_exception(RuntimeError("backend down"))
            failing.set_status(Status(StatusCode.ERROR, "backend down"))


def query(key: str, **filters) -> list:
    stub = server_pb2_grpc.ChaukasServerServiceStub(grpc.insecure_channel(GRPC))
    events, token = [], ""
    while True:
        page = stub.QueryEvents(server_pb2.QueryEventsRequest(query=query_pb2.QueryRequest(
            filter=query_pb2.QueryFilter(**filters), page_size=100, page_token=token,
        )), metadata=bearer(key)).response
        events.extend(page.events)
        if not page.next_page_token:
            return events
        token = page.next_page_token


def wait_for(key: str, count: int, **filters) -> list:
    deadline = time.time() + 60
    while True:
        events = query(key, **filters)
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.2)


def by_span(events: list) -> dict:
    """Events grouped by span, keyed by the span's name (kept in the start's metadata)."""
    spans = {}
    for event in events:
        spans.setdefault(event.span_id, []).append(event)
    named = {}
    for group in spans.values():
        start = next(e for e in group if e.event_id.endswith("-start"))
        named[start.metadata["otlp"]["name"]] = {e.event_id.rsplit("-", 1)[1]: e for e in group}
    return named


# 8 spans: start and end each, plus the failed tool call's error event.
AGENT_RUN_EVENTS = 17


@pytest.mark.parametrize("kind", ["grpc", "grpc+gzip", "http/protobuf", "http/protobuf+gzip",
                                  "http/protobuf+deflate", "http/json"])
def test_every_exporter_stores_the_mapping_table(kind):
    tenant, key = new_tenant("otlp")
    session = f"session-{uuid.uuid4().hex[:8]}"
    provider = provider_for(exporter(kind, key), session)
    agent_run(provider, session)
    provider.shutdown()
    spans = by_span(wait_for(key, AGENT_RUN_EVENTS, tenant_id=tenant))
    assert sum(len(group) for group in spans.values()) == AGENT_RUN_EVENTS, sorted(spans)

    types = {name: (group["start"].type, group["end"].type) for name, group in spans.items()}
    assert types == {
        "invoke_agent Planner": (T.EVENT_TYPE_AGENT_START, T.EVENT_TYPE_AGENT_END),
        "chat gpt-4o": (T.EVENT_TYPE_MODEL_INVOCATION_START, T.EVENT_TYPE_MODEL_INVOCATION_END),
        "chat claude": (T.EVENT_TYPE_MODEL_INVOCATION_START, T.EVENT_TYPE_MODEL_INVOCATION_END),
        "llm": (T.EVENT_TYPE_MODEL_INVOCATION_START, T.EVENT_TYPE_MODEL_INVOCATION_END),
        "execute_tool search": (T.EVENT_TYPE_TOOL_CALL_START, T.EVENT_TYPE_TOOL_CALL_END),
        "tools/call read": (T.EVENT_TYPE_MCP_CALL_START, T.EVENT_TYPE_MCP_CALL_END),
        "pii guard": (T.EVENT_TYPE_POLICY_DECISION, T.EVENT_TYPE_POLICY_DECISION),
        "execute_tool flaky": (T.EVENT_TYPE_TOOL_CALL_START, T.EVENT_TYPE_TOOL_CALL_END),
    }
    assert spans["invoke_agent Planner"]["start"].agent_name == "Planner"
    chat = spans["chat gpt-4o"]["end"].llm_invocation
    assert (chat.provider, chat.model, chat.prompt_tokens, chat.completion_tokens) == (
        "openai", "gpt-4o-2024-08-06", 12, 5)
    assert "weather?" in str(spans["chat gpt-4o"]["start"].llm_invocation.request)
    assert "be brief" in str(spans["chat gpt-4o"]["start"].llm_invocation.request)
    older = spans["chat claude"]["end"].llm_invocation
    assert (older.provider, older.prompt_tokens, older.completion_tokens) == ("anthropic", 3, 1)
    assert "hello" in str(older.response)
    openinference = spans["llm"]["end"].llm_invocation
    assert (openinference.model, openinference.prompt_tokens) == ("mistral-large", 4)
    assert "bonjour" in str(spans["llm"]["start"].llm_invocation.request)
    assert spans["execute_tool search"]["start"].tool_call.name == "search"
    assert "21" in spans["execute_tool search"]["end"].tool_response.output.__str__()
    assert spans["tools/call read"]["start"].mcp_call.method == "tools/call"
    assert (spans["pii guard"]["end"].policy.policy_id, spans["pii guard"]["end"].policy.outcome) == ("pii", "deny")
    flaky = spans["execute_tool flaky"]
    assert flaky["end"].status == events_pb2.EventStatus.EVENT_STATUS_FAILED
    assert (flaky["error"].error.error_message, flaky["error"].error.error_code) == ("backend down", "RuntimeError")
    assert "RuntimeError: backend down" in flaky["error"].error.stack_trace
    # Sessions: from gen_ai.conversation.id on the span, else session.id of the resource.
    assert {e.session_id for group in spans.values() for e in group.values()} == {session}


def test_the_session_reads_back_as_a_trace_tree():
    tenant, key = new_tenant("otlp-tree")
    session = f"session-{uuid.uuid4().hex[:8]}"
    provider = provider_for(exporter("grpc", key), session)
    agent_run(provider, session)
    provider.shutdown()
    events = wait_for(key, AGENT_RUN_EVENTS, tenant_id=tenant, session_id=session)
    starts = {e.span_id: e for e in events if e.event_id.endswith("-start")}
    roots = [e for e in starts.values() if not e.parent_span_id]
    assert [root.metadata["otlp"]["name"] for root in roots] == ["invoke_agent Planner"]
    children = [e for e in starts.values() if e.parent_span_id == roots[0].span_id]
    assert len(children) == len(starts) - 1, "every other span hangs under the agent's"
    assert len({e.trace_id for e in events}) == 1


def recorded_spans(session: str) -> list:
    memory = InMemorySpanExporter()
    provider = provider_for(memory, session)
    agent_run(provider, session)
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("kind", ["grpc", "http/protobuf", "http/json"])
def test_an_exporter_retry_stores_nothing_twice(kind):
    tenant, key = new_tenant("otlp-retry")
    spans = recorded_spans("retried")
    sender = exporter(kind, key)
    assert sender.export(spans) == SpanExportResult.SUCCESS
    assert sender.export(spans) == SpanExportResult.SUCCESS  # the answer was lost: sent again
    events = wait_for(key, AGENT_RUN_EVENTS, tenant_id=tenant)
    time.sleep(1.5)
    events = query(key, tenant_id=tenant)
    assert len(events) == AGENT_RUN_EVENTS
    assert len({e.event_id for e in events}) == AGENT_RUN_EVENTS


def test_a_stored_span_rebuilds_the_exported_one_exactly():
    """Nothing lost: each end event's metadata.otlp, read back through QueryEvents, is the span
    the SDK exported (and its resource), field for field, in OTLP/JSON (attributes keyed by
    name, so compared in key order)."""
    tenant, key = new_tenant("otlp-rebuild")
    spans = recorded_spans("rebuild")
    assert exporter("grpc", key).export(spans) == SpanExportResult.SUCCESS
    sent = {
        span.span_id.hex(): (span, resource_spans.resource)
        for resource_spans in encode_spans(spans).resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    ends = [e for e in wait_for(key, AGENT_RUN_EVENTS, tenant_id=tenant) if e.event_id.endswith("-end")]
    assert sorted(e.span_id for e in ends) == sorted(sent)
    for end in ends:
        otlp = from_otlp_json(MessageToDict(end.metadata)["otlp"])
        original, resource = sent[end.span_id]
        assert ParseDict(otlp, trace_pb2.Span(), ignore_unknown_fields=True) == by_key(original)
        assert ParseDict(otlp["resource"], resource_pb2.Resource(), ignore_unknown_fields=True) == by_key(resource)


def by_key(message):
    """A copy of `message` with its attribute lists (and its events' and links') in key
    order: attributes are a map in OTLP's data model, and are stored keyed by name."""
    copy = type(message)()
    copy.CopyFrom(message)
    for owner in [copy, *getattr(copy, "events", []), *getattr(copy, "links", [])]:
        ordered = sorted(owner.attributes, key=lambda pair: pair.key)
        kept = [type(pair)() for pair in ordered]
        for new, old in zip(kept, ordered):
            new.CopyFrom(old)
        del owner.attributes[:]
        owner.attributes.extend(kept)
    return copy


def with_one_bad_span(session: str) -> list:
    spans = recorded_spans(session)
    good = spans[0]
    bad = ReadableSpan(
        name="ends before it starts",
        context=SpanContext(trace_id=good.context.trace_id, span_id=0xBAD, is_remote=False),
        start_time=good.start_time, end_time=good.start_time - 1_000, resource=good.resource,
    )
    return spans + [bad]


def test_a_batch_with_one_bad_span_stores_the_rest_and_names_the_one():
    tenant, key = new_tenant("otlp-partial")
    request = encode_spans(with_one_bad_span("partial"))
    headers = {"authorization": f"Bearer {key}"}
    # gRPC, with the OTLP package's own stub.
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(OTLP_GRPC))
    answer = stub.Export(request, metadata=tuple(headers.items()))
    assert answer.partial_success.rejected_spans == 1
    assert "0000000000000bad" in answer.partial_success.error_message
    # HTTP/protobuf and HTTP/JSON: the same answer in each encoding.
    response = requests.post(f"{OTLP_HTTP}/v1/traces", data=request.SerializeToString(), timeout=10,
                             headers={"Content-Type": "application/x-protobuf", **headers})
    assert response.status_code == 200
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    response = requests.post(f"{OTLP_HTTP}/v1/traces", data=otlp_json(request), timeout=10,
                             headers={"Content-Type": "application/json", **headers})
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1", response.text
    assert "before" in response.json()["partialSuccess"]["errorMessage"]
    events = wait_for(key, AGENT_RUN_EVENTS, tenant_id=tenant)
    assert len(events) == AGENT_RUN_EVENTS
    assert not [e for e in events if e.span_id == "0000000000000bad"]


def test_bad_data_is_400_and_a_missing_key_401_without_retry_hints():
    response = requests.post(f"{OTLP_HTTP}/v1/traces", data=b"\xff\xff", timeout=10,
                             headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 401
    _, key = new_tenant("otlp-bad")
    response = requests.post(f"{OTLP_HTTP}/v1/traces", data=b"\xff\xff", timeout=10, headers={
        "Content-Type": "application/x-protobuf", "authorization": f"Bearer {key}"})
    assert response.status_code == 400 and "Retry-After" not in response.headers


def test_pydantic_ai_agent_run_becomes_a_session():
    """A real agent framework's own OpenTelemetry instrumentation, offline: pydantic-ai with
    its TestModel, which calls the agent's tool once and then answers."""
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.test import TestModel

    tenant, key = new_tenant("pydantic-ai")
    provider = TracerProvider(resource=Resource({"service.name": "weather-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter("http/protobuf", key)))
    agent = Agent(TestModel(), name="weather_agent")
    agent.instrument = InstrumentationSettings(tracer_provider=provider)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    agent.run_sync("What's the weather in Paris?")
    provider.shutdown()
    # invoke_agent, chat, execute_tool, chat: a start and an end each.
    events = wait_for(key, 8, tenant_id=tenant)
    assert len(events) == 8
    kinds = sorted(events_pb2.EventType.Name(e.type) for e in events)
    assert kinds == sorted([
        "EVENT_TYPE_AGENT_START", "EVENT_TYPE_AGENT_END",
        "EVENT_TYPE_MODEL_INVOCATION_START", "EVENT_TYPE_MODEL_INVOCATION_END",
        "EVENT_TYPE_MODEL_INVOCATION_START", "EVENT_TYPE_MODEL_INVOCATION_END",
        "EVENT_TYPE_TOOL_CALL_START", "EVENT_TYPE_TOOL_CALL_END",
    ])
    sessions = {e.session_id for e in events}
    assert len(sessions) == 1 and sessions != {""}, "gen_ai.conversation.id names the session"
    session = query(key, tenant_id=tenant, session_id=sessions.pop())
    agent_start = next(e for e in session if e.type == T.EVENT_TYPE_AGENT_START)
    assert agent_start.agent_name == "weather_agent"
    assert all(e.parent_span_id == agent_start.span_id for e in session if e.span_id != agent_start.span_id)
    tool = next(e for e in session if e.type == T.EVENT_TYPE_TOOL_CALL_START)
    assert tool.tool_call.name == "get_weather"
    model = next(e for e in session if e.type == T.EVENT_TYPE_MODEL_INVOCATION_END)
    assert model.llm_invocation.prompt_tokens > 0
