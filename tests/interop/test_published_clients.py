"""The published Chaukas clients against a running stack: events built and sent by the real
chaukas-sdk over HTTP, and by the gRPC stubs of chaukas-spec-client / chaukas-spec-server,
come back identical through QueryEvents. Run by tests/interop/run.sh."""

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import grpc
from chaukas.sdk.core.client import ChaukasClient
from chaukas.sdk.core.event_builder import EventBuilder
from chaukas.spec.client.v1 import client_pb2, client_pb2_grpc
from chaukas.spec.common.v1 import events_pb2, query_pb2
from chaukas.spec.server.v1 import server_pb2, server_pb2_grpc

GRPC = os.environ["CHAUKAS_INTEROP_GRPC"]
HTTP = os.environ["CHAUKAS_INTEROP_HTTP"]
BIN = os.environ["CHAUKAS_INTEROP_BIN"]


def api_key(tenant: str) -> str:
    """A real API key for `tenant` (all scopes), made with `chaukas keys create`: the gateway
    here enforces keys, as a production one does."""
    result = subprocess.run(
        [BIN, "keys", "create", "--tenant", tenant, "--scopes", "ingest,query,stats",
         "--name", "interop", "--quiet"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


def bearer(key: str) -> tuple:
    return (("authorization", f"Bearer {key}"),)


def wait_until_known(stub, key: str) -> None:
    """Gateways learn new keys through a watch of the key bucket: moments, not a restart."""
    deadline = time.time() + 10
    while True:
        try:
            stub.GetEventStats(server_pb2.GetEventStatsRequest(), metadata=bearer(key))
            return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED or time.time() > deadline:
                raise
            time.sleep(0.05)


def every_type(builder: EventBuilder) -> list:
    """One event of each of the 19 types, built by the SDK's own EventBuilder."""
    return [
        builder.create_session_start(metadata={"user": "ünïcode ✓"}),
        builder.create_session_end(),
        builder.create_agent_start("a1", "Planner", role="plan", tools=["search"]),
        builder.create_agent_end("a1", "Planner"),
        builder.create_agent_handoff("a1", "Planner", "a2", "Researcher", reason="needs facts"),
        builder.create_model_invocation_start("openai", "gpt-4o", [{"role": "user", "content": "hi"}]),
        builder.create_model_invocation_end("openai", "gpt-4o", response_content="hello", prompt_tokens=3, completion_tokens=1, total_tokens=4),
        builder.create_tool_call_start("search", {"q": "weather", "nested": {"k": [1, 2, 3]}}),
        builder.create_tool_call_end("search", output={"temp": 21.5}, execution_time_ms=12.5),
        builder.create_mcp_call_start("files", "stdio://files", "tools/call", "read", {"path": "/tmp/x"}),
        builder.create_mcp_call_end("files", "stdio://files", "tools/call", "read", {"ok": True}),
        builder.create_input_received("What's the weather?"),
        builder.create_output_emitted("Sunny, 21°C"),
        builder.create_error("rate limited", error_code="429", recoverable=True),
        builder.create_retry(2, "exponential", 250, reason="429"),
        builder.create_policy_decision("pii", "deny", ["r1", "r2"], rationale="email address"),
        builder.create_data_access("crm", document_ids=["d1"], pii_categories=["email"]),
        builder.create_state_update({"step": 3, "done": False}),
        builder.create_system_event("shutting down"),
    ]


def as_sent(event):
    """The event as its client sent it: the server's audit-log fields (docs/audit.md)
    checked present, then cleared."""
    assert len(event.content_hash) == 64 and event.worm_proof_id, f"{event.event_id} has no log fields"
    event.ClearField("content_hash")
    event.ClearField("hash_prev")
    event.ClearField("worm_proof_id")
    return event


def query_all(stub, tenant: str, key: str) -> dict:
    """Every event of `tenant`, by event id, as sent, following next_page_token."""
    found, token = {}, ""
    while True:
        response = stub.QueryEvents(
            server_pb2.QueryEventsRequest(
                query=query_pb2.QueryRequest(
                    filter=query_pb2.QueryFilter(tenant_id=tenant), page_size=7, page_token=token
                )
            ),
            metadata=bearer(key),
        ).response
        for event in response.events:
            assert event.event_id not in found, f"{event.event_id} returned twice"
            found[event.event_id] = as_sent(event)
        if not response.next_page_token:
            return found
        token = response.next_page_token


def wait_for(stub, tenant: str, count: int, key: str) -> dict:
    deadline = time.time() + 60
    while True:
        found = query_all(stub, tenant, key)
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.2)


def test_sdk_over_http_round_trips_every_event_type():
    tenant = f"sdk-{uuid.uuid4()}"
    key = api_key(tenant)
    stub = server_pb2_grpc.ChaukasServerServiceStub(grpc.insecure_channel(GRPC))
    wait_until_known(stub, key)
    os.environ.update(
        CHAUKAS_ENDPOINT=HTTP,
        CHAUKAS_API_KEY=key,
        CHAUKAS_TENANT_ID=tenant,
        CHAUKAS_PROJECT_ID="interop",
    )
    builder = EventBuilder()
    events = every_type(builder)
    assert len({e.type for e in events}) == 19

    async def send():
        client = ChaukasClient()
        await client.send_event(events[0])  # one event: POST /events
        await client.flush()
        await client.send_events(events[1:])  # a batch: POST /events/batch
        await client.flush()
        await client.close()

    asyncio.run(send())
    stored = wait_for(stub, tenant, len(events), key)
    assert set(stored) == {e.event_id for e in events}
    for event in events:
        assert stored[event.event_id] == event, f"{event.event_id} changed in transit"

    # The minute aggregates are ClickHouse materialized views: an insert's rows become
    # visible in `events` a moment before the views have them (seen once in `make test`:
    # sessions counted, types not yet). Stats converge within moments; wait for them.
    deadline = time.time() + 10
    while True:
        stats = stub.GetEventStats(server_pb2.GetEventStatsRequest(tenant_id=tenant), metadata=bearer(key))
        if stats.total_events == 19 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert stats.total_events == 19
    assert len(stats.events_by_type) == 19


def test_grpc_stubs_of_both_packages_ingest_and_query():
    channel = grpc.insecure_channel(GRPC)
    server_stub = server_pb2_grpc.ChaukasServerServiceStub(channel)
    client_stub = client_pb2_grpc.ChaukasClientServiceStub(channel)
    # The SDK caches its configuration per process, so give these events a tenant of their own.
    tenant = f"grpc-{uuid.uuid4()}"
    key = api_key(tenant)
    events = every_type(EventBuilder())
    for event in events:
        event.tenant_id = tenant

    client_stub.Healthz(client_pb2.HealthzRequest())
    server_stub.Healthz(server_pb2.HealthzRequest())
    wait_until_known(server_stub, key)
    try:
        server_stub.IngestEvent(server_pb2.IngestEventRequest(event=events[0]))
        raise AssertionError("ingested without an API key")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
    response = server_stub.IngestEvent(server_pb2.IngestEventRequest(event=events[0]), metadata=bearer(key))
    assert response.event_id == events[0].event_id and response.status == "accepted"
    client_stub.IngestEvent(client_pb2.IngestEventRequest(event=events[1]), metadata=bearer(key))
    batch = events_pb2.EventBatch(batch_id="b", events=events[2:])
    result = server_stub.IngestEventBatch(
        server_pb2.IngestEventBatchRequest(event_batch=batch), metadata=bearer(key)
    )
    assert (result.accepted_count, result.rejected_count) == (17, 0)

    stored = wait_for(server_stub, tenant, len(events), key)
    assert stored == {e.event_id: e for e in events}
    via_client = client_stub.QueryEvents(
        client_pb2.QueryEventsRequest(
            query=query_pb2.QueryRequest(filter=query_pb2.QueryFilter(tenant_id=tenant), page_size=100)
        ),
        metadata=bearer(key),
    ).response
    assert {e.event_id for e in via_client.events} == {e.event_id for e in events}
    caps = client_stub.GetCapabilities(client_pb2.GetCapabilitiesRequest()).capabilities
    assert caps.policy_decisions and caps.data_access_events and caps.rbac


def test_sdk_file_mode_output_imports_completely(tmp_path):
    """chaukas-sdk in file mode (its own process: the SDK caches its config) writes JSON
    Lines; `chaukas import` loads them; every event comes back, timestamp as the file says."""
    tenant = f"file-{uuid.uuid4()}"
    output = tmp_path / "events.jsonl"
    writer = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from chaukas.sdk.core.client import ChaukasClient
        from chaukas.sdk.core.event_builder import EventBuilder
        from test_published_clients import every_type

        async def main():
            client = ChaukasClient()
            for _ in range(16):
                await client.send_events(every_type(EventBuilder()))
            await client.flush()
            await client.close()

        asyncio.run(main())
        """
    )
    env = dict(
        os.environ,
        CHAUKAS_OUTPUT_MODE="file",
        CHAUKAS_OUTPUT_FILE=str(output),
        CHAUKAS_TENANT_ID=tenant,
        CHAUKAS_PROJECT_ID="interop-file",
    )
    subprocess.run([sys.executable, "-c", writer], env=env, check=True)
    lines = output.read_text().splitlines()
    assert len(lines) == 16 * 19
    written = {json.loads(line)["event_id"]: json.loads(line) for line in lines}

    key = api_key(tenant)
    stub = server_pb2_grpc.ChaukasServerServiceStub(grpc.insecure_channel(GRPC))
    wait_until_known(stub, key)
    result = subprocess.run(
        [BIN, "import", str(output), "--grpc", f"http://{GRPC}", "--quiet"],
        capture_output=True, text=True, env=dict(os.environ, CHAUKAS_API_KEY=key),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(lines)} accepted, 0 rejected" in result.stdout, result.stdout

    stored = wait_for(stub, tenant, len(lines), key)
    assert set(stored) == set(written)
    for event_id, line in written.items():
        event = stored[event_id]
        # The SDK wrote a naive UTC time: read back it is the same instant.
        assert event.timestamp.ToDatetime().isoformat() == line["timestamp"]
        assert events_pb2.EventType.Name(event.type) == line["type"]
