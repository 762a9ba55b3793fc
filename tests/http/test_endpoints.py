"""Every endpoint round trip against the local server, checked in its store and on the wire."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory, WireRecorder

from prefactor_http import (
    DEFAULT_SDK_HEADER,
    AgentForCreate,
    AgentForUpdate,
    BulkItem,
    HttpClientConfig,
    PrefactorHttpClient,
    PrefactorNotFoundError,
    __version__,
)
from prefactor_local.server import LocalServer


def body_of(wire: WireRecorder, path: str, index: int = -1) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wire.bodies(path)[index])
    return data


async def register(client: PrefactorHttpClient, instance_id: str, **kwargs: Any) -> None:
    await client.agent_instances.register(
        AGENT_VERSION,
        SCHEMA_VERSION,
        id=instance_id,
        idempotency_key=f"reg-{instance_id}",
        **kwargs,
    )


async def test_ping_validates_the_token(client: PrefactorHttpClient) -> None:
    envelope = await client.validate_token()
    assert envelope["status"] == "success"


async def test_instance_and_span_lifecycle(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    instance = await client.agent_instances.register(
        AGENT_VERSION,
        SCHEMA_VERSION,
        agent_id="agent-lifecycle",
        id="inst-lifecycle",
        idempotency_key="key-register-1",
        purpose="eval",
        external_identifier="ticket-42",
    )
    assert (instance.id, instance.status) == ("inst-lifecycle", "pending")
    assert instance.agent_id == "agent-lifecycle"
    assert body_of(wire, "/api/v1/agent_instance/register") == {
        "agent_version": AGENT_VERSION,
        "agent_schema_version": SCHEMA_VERSION,
        "update_current_version": True,
        "agent_id": "agent-lifecycle",
        "id": "inst-lifecycle",
        "idempotency_key": "key-register-1",
        "purpose": "eval",
        "external_identifier": "ticket-42",
    }

    started_at = datetime(2026, 3, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    started = await client.agent_instances.start(
        "inst-lifecycle", timestamp=started_at, idempotency_key="key-start-1"
    )
    assert started.status == "active"
    assert started.started_at == started_at
    assert body_of(wire, "/api/v1/agent_instance/inst-lifecycle/start") == {
        "timestamp": "2026-03-01T12:00:00.250000+00:00",
        "idempotency_key": "key-start-1",
    }

    parent = await client.agent_spans.create(
        "inst-lifecycle",
        "demo:llm",
        payload={"prompt": "hello"},
        id="span-parent",
        idempotency_key="key-span-1",
    )
    assert (parent.id, parent.status, parent.schema_name) == ("span-parent", "active", "demo:llm")
    assert body_of(wire, "/api/v1/agent_spans") == {
        "details": {
            "agent_instance_id": "inst-lifecycle",
            "schema_name": "demo:llm",
            "status": "active",
            "payload": {"prompt": "hello"},
            "id": "span-parent",
            "idempotency_key": "key-span-1",
        },
        "idempotency_key": "key-span-1",
    }

    child = await client.agent_spans.create(
        "inst-lifecycle",
        "demo:tool",
        status="complete",
        result_payload={"answer": 42},
        id="span-child",
        parent_span_id="span-parent",
        started_at=datetime(2026, 3, 1, 12, 0, 1),
        finished_at=datetime(2026, 3, 1, 12, 0, 2),
        idempotency_key="key-span-2",
    )
    assert child.status == "complete"
    assert body_of(wire, "/api/v1/agent_spans")["details"]["started_at"] == (
        "2026-03-01T12:00:01+00:00"
    ), "a naive datetime is sent as UTC"

    finished = await client.agent_spans.finish(
        "span-parent",
        status="failed",
        result_payload={"error": {"message": "boom"}},
        timestamp=datetime(2026, 3, 1, 12, 0, 3, tzinfo=timezone.utc),
        idempotency_key="key-span-fin-1",
    )
    assert finished.status == "failed"

    done = await client.agent_instances.finish(
        "inst-lifecycle",
        status="complete",
        timestamp=datetime(2026, 3, 1, 12, 0, 4, tzinfo=timezone.utc),
        idempotency_key="key-finish-1",
    )
    assert done.status == "complete"

    fetched = await client.agent_instances.get("inst-lifecycle")
    assert fetched.status == "complete"
    assert fetched.external_identifier == "ticket-42"
    assert fetched.purpose == "eval"

    stored = local_server.store.get_instance("inst-lifecycle")
    assert stored is not None
    assert stored["status"] == "complete"
    assert stored["started_at"].startswith("2026-03-01T12:00:00.25")
    assert stored["finished_at"].startswith("2026-03-01T12:00:04")
    spans = {span["id"]: span for span in local_server.store.list_spans("inst-lifecycle")}
    assert set(spans) == {"span-parent", "span-child"}
    assert spans["span-parent"]["status"] == "failed"
    assert spans["span-parent"]["payload"] == {"prompt": "hello"}
    assert spans["span-parent"]["result_payload"] == {"error": {"message": "boom"}}
    assert spans["span-child"]["parent_span_id"] == "span-parent"
    assert spans["span-child"]["started_at"].startswith("2026-03-01T12:00:01")
    assert spans["span-child"]["finished_at"].startswith("2026-03-01T12:00:02")
    assert spans["span-child"]["result_payload"] == {"answer": 42}


async def test_none_values_are_left_out_of_bodies(
    client: PrefactorHttpClient, wire: WireRecorder
) -> None:
    made_keys: list[str] = []

    def sent(path: str) -> dict[str, Any]:
        body = body_of(wire, path)
        key = body.pop("idempotency_key")
        assert uuid.UUID(key).version == 4  # made for the call, since the caller gave none
        if "details" in body:
            assert body["details"].pop("idempotency_key") == key
        made_keys.append(key)
        return body

    await client.agent_instances.register(
        AGENT_VERSION, SCHEMA_VERSION, id="inst-minimal", update_current_version=False
    )
    assert sent("/api/v1/agent_instance/register") == {
        "agent_version": AGENT_VERSION,
        "agent_schema_version": SCHEMA_VERSION,
        "update_current_version": False,
        "id": "inst-minimal",
    }
    await client.agent_instances.start("inst-minimal")
    assert sent("/api/v1/agent_instance/inst-minimal/start") == {}
    span = await client.agent_spans.create("inst-minimal", "demo:llm")
    assert sent("/api/v1/agent_spans") == {
        "details": {
            "agent_instance_id": "inst-minimal",
            "schema_name": "demo:llm",
            "status": "active",
            "payload": {},
        }
    }
    await client.agent_spans.finish(span.id)
    assert sent(f"/api/v1/agent_spans/{span.id}/finish") == {}
    await client.agent_instances.finish("inst-minimal")
    assert sent("/api/v1/agent_instance/inst-minimal/finish") == {}
    assert len(set(made_keys)) == 5  # one per call


async def test_record_quality_always_sends_payload(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await register(client, "inst-quality")
    path = "/api/v1/agent_instance/inst-quality/record_quality"

    instance = await client.agent_instances.record_quality(
        "inst-quality", "accuracy", {"score": 0.9}, idempotency_key="key-quality-1"
    )
    assert body_of(wire, path) == {
        "name": "accuracy",
        "payload": {"score": 0.9},
        "idempotency_key": "key-quality-1",
    }
    assert instance.quality_payloads == {"accuracy": {"score": 0.9}}
    stored = local_server.store.get_instance("inst-quality")
    assert stored is not None and stored["quality_payloads"] == {"accuracy": {"score": 0.9}}

    instance = await client.agent_instances.record_quality("inst-quality", "accuracy")
    body = body_of(wire, path)
    assert uuid.UUID(body.pop("idempotency_key")).version == 4
    assert body == {"name": "accuracy", "payload": None}
    assert not instance.quality_payloads
    stored = local_server.store.get_instance("inst-quality")
    assert stored is not None and not stored["quality_payloads"]


async def test_control_signal_reaches_the_callback(
    client: PrefactorHttpClient, local_server: LocalServer
) -> None:
    await register(client, "inst-terminated")
    await client.agent_instances.start("inst-terminated")
    calm: list[str | None] = []
    span = await client.agent_spans.create(
        "inst-terminated", "demo:llm", control_signal_callback=calm.append
    )
    assert calm == [], "no control signal while the instance runs"

    local_server.terminate("inst-terminated", reason="budget exceeded")
    reasons: list[str | None] = []

    async def on_control(reason: str | None) -> None:
        reasons.append(reason)

    await client.agent_spans.finish(span.id, control_signal_callback=on_control)
    await client.agent_spans.create(
        "inst-terminated", "demo:tool", control_signal_callback=reasons.append
    )
    assert reasons == ["budget exceeded", "budget exceeded"]
    fetched = await client.agent_instances.get("inst-terminated")
    assert fetched.status == "terminated"
    assert fetched.termination_reason == "budget exceeded"


async def test_a_failing_control_callback_does_not_fail_the_request(
    client: PrefactorHttpClient, local_server: LocalServer
) -> None:
    await register(client, "inst-bad-callback")
    local_server.terminate("inst-bad-callback")

    def explode(reason: str | None) -> None:
        raise RuntimeError("callback bug")

    span = await client.agent_spans.create(
        "inst-bad-callback", "demo:llm", control_signal_callback=explode
    )
    assert local_server.store.list_spans("inst-bad-callback")[0]["id"] == span.id


async def test_agents_crud(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    created = await client.agents.create(
        AgentForCreate(
            name="Triage",
            id="agent-crud",
            description="Sorts tickets",
            external_identifier="triage",
            team_id="team-1",
        ),
        idempotency_key="key-agent-create",
    )
    assert (created.id, created.name, created.status) == ("agent-crud", "Triage", "pending")
    assert body_of(wire, "/api/v1/agent") == {
        "details": {
            "name": "Triage",
            "description": "Sorts tickets",
            "external_identifier": "triage",
            "id": "agent-crud",
            "team_id": "team-1",
        },
        "idempotency_key": "key-agent-create",
    }
    await client.agents.create({"name": "Billing", "id": "agent-billing"})

    fetched = await client.agents.get("agent-crud")
    assert fetched.description == "Sorts tickets"

    updated = await client.agents.update(
        "agent-crud", AgentForUpdate(name="Triage 2", description=None)
    )
    assert body_of(wire, "/api/v1/agent/agent-crud") == {
        "details": {"name": "Triage 2", "description": None}
    }, "a field set to None is sent as null; fields not set are left out"
    assert updated.name == "Triage 2"
    assert updated.description is None
    assert updated.team_id == "team-1"
    stored = local_server.store.get_agent("agent-crud")
    assert stored is not None
    assert (stored["name"], stored["description"], stored["team_id"]) == (
        "Triage 2",
        None,
        "team-1",
    )

    listing = await client.agents.list_agents(sorting="name", page_size=10)
    assert [agent.id for agent in listing.summaries] == ["agent-billing", "agent-crud"]
    assert listing.pagination is not None and listing.pagination.item_count == 2
    assert listing.sorting is not None and listing.sorting.field == "name"
    in_team = await client.agents.list_agents(team_id="team-1")
    assert [agent.id for agent in in_team.summaries] == ["agent-crud"]

    shown = await client.agents.show(external_identifier="triage", include_counts=True)
    assert shown.id == "agent-crud"
    assert shown.instance_counts is not None and shown.instance_counts.total == 0
    with pytest.raises(ValueError, match="exactly one"):
        await client.agents.show()

    retired = await client.agents.retire("agent-crud", idempotency_key="key-agent-retire")
    assert retired.status == "retired"
    assert body_of(wire, "/api/v1/agent/agent-crud/retire") == {
        "idempotency_key": "key-agent-retire"
    }
    reinstated = await client.agents.reinstate("agent-crud")
    assert reinstated.status == "pending"
    (reinstate_body,) = wire.bodies("/api/v1/agent/agent-crud/reinstate")
    assert uuid.UUID(json.loads(reinstate_body)["idempotency_key"]).version == 4, "a key made"

    await client.agents.delete("agent-crud")
    with pytest.raises(PrefactorNotFoundError):
        await client.agents.get("agent-crud")
    assert local_server.store.get_agent("agent-crud") is None


async def test_bulk_runs_items_in_order_and_stops_at_the_first_error(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    response = await client.bulk.execute(
        [
            BulkItem(
                _type="agent_instances/register",
                idempotency_key="bulk-key-0001",
                agent_version=AGENT_VERSION,
                agent_schema_version=SCHEMA_VERSION,
                id="inst-bulk",
            ),
            {
                "_type": "agent_spans/create",
                "idempotency_key": "bulk-key-0002",
                "agent_instance_id": "inst-bulk",
                "schema_name": "demo:llm",
                "status": "active",
                "id": "span-bulk",
            },
            {
                "_type": "agent_spans/finish",
                "idempotency_key": "bulk-key-0003",
                "agent_span_id": "span-missing",
            },
            {
                "_type": "agent_instances/start",
                "idempotency_key": "bulk-key-0004",
                "agent_instance_id": "inst-bulk",
            },
        ]
    )
    sent = body_of(wire, "/api/v1/bulk")
    assert [item["_type"] for item in sent["items"]] == [
        "agent_instances/register",
        "agent_spans/create",
        "agent_spans/finish",
        "agent_instances/start",
    ]
    assert list(response.outputs) == ["bulk-key-0001", "bulk-key-0002", "bulk-key-0003"]
    assert response.outputs["bulk-key-0001"].ok
    assert response.outputs["bulk-key-0002"].ok
    failed = response.outputs["bulk-key-0003"]
    assert (failed.ok, failed.code) == (False, "not_found")
    stored = local_server.store.get_instance("inst-bulk")
    assert stored is not None and stored["status"] == "pending", (
        "the item after the error did not run"
    )
    assert [span["id"] for span in local_server.store.list_spans("inst-bulk")] == ["span-bulk"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one item"),
        ([{"_type": "agent_spans/create", "idempotency_key": "short"}], "item 0 is invalid"),
        (
            [
                {"_type": "agent_instances/start", "idempotency_key": "same-key-01"},
                {"_type": "agent_instances/finish", "idempotency_key": "same-key-01"},
            ],
            "unique",
        ),
    ],
)
async def test_bulk_rejects_bad_items_before_sending(
    client: PrefactorHttpClient, wire: WireRecorder, items: list[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await client.bulk.execute(items)
    assert wire.requests == []


async def test_headers_on_every_request(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await client.validate_token()
    await register(client, "inst-headers")
    assert len(wire.requests) == 2
    for request in wire.requests:
        assert request.headers["authorization"] == f"Bearer {local_server.token}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["accept"] == "application/json"
        assert request.headers["x-prefactor-sdk"] == f"prefactor-http@{__version__}"
    assert client.sdk_header == DEFAULT_SDK_HEADER


async def test_sdk_header_argument_replaces_the_whole_value(make_config: ConfigFactory) -> None:
    wire = WireRecorder()
    header = "prefactor-langchain@1.2.3 prefactor-core@0.1.0"
    async with PrefactorHttpClient(make_config(), sdk_header=header, transport=wire) as client:
        await client.validate_token()
        client.sdk_header = "prefactor-core@0.1.0"
        await client.validate_token()
    assert [r.headers["x-prefactor-sdk"] for r in wire.requests] == [
        header,
        "prefactor-core@0.1.0",
    ]


async def test_raw_request_sends_the_idempotency_key_header(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await register(client, "inst-raw")
    for _ in range(2):
        envelope = await client.request(
            "POST",
            "/api/v1/agent_instance/inst-raw/start",
            json={},
            idempotency_key="header-key-1",
        )
        assert envelope["details"]["status"] == "active"
    assert [r.headers["idempotency-key"] for r in wire.requests[1:]] == ["header-key-1"] * 2
    stored = local_server.store.get_instance("inst-raw")
    assert stored is not None and stored["replays"] == 1


async def test_replaying_a_key_returns_the_first_response(
    client: PrefactorHttpClient, local_server: LocalServer
) -> None:
    first = await client.agent_instances.register(
        AGENT_VERSION, SCHEMA_VERSION, idempotency_key="key-replayed"
    )
    second = await client.agent_instances.register(
        AGENT_VERSION, SCHEMA_VERSION, idempotency_key="key-replayed"
    )
    assert first.id == second.id
    assert local_server.store.counts()["agent_instances"] == 1
    stored = local_server.store.get_instance(first.id)
    assert stored is not None and stored["replays"] == 1


async def test_client_can_be_closed_and_opened_again(make_config: ConfigFactory) -> None:
    client = PrefactorHttpClient(make_config())
    assert not client.is_open
    await client.open()
    await client.validate_token()
    await client.close()
    await client.close()
    await client.open()
    assert (await client.validate_token())["status"] == "success"
    await client.close()


async def test_a_loopback_api_is_reached_directly_when_a_proxy_is_set(
    make_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that accepts nothing: a loopback API routed through it would never answer.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with PrefactorHttpClient(make_config(max_retries=0)) as client:
        assert await client.validate_token() is not None


class _RecordingProxy:
    """A plain-HTTP forward proxy stand-in on loopback: notes each request line, answers 200."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _RecordingProxy:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.request_lines.append(head.split(b"\r\n", 1)[0].decode())
        body = b'{"status":"success"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_a_remote_api_is_reached_through_the_proxy_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with _RecordingProxy() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        config = HttpClientConfig(api_url="http://api.example.test", api_token="t" * 24)
        async with PrefactorHttpClient(config) as client:
            assert await client.validate_token() == {"status": "success"}
    assert proxy.request_lines == ["GET http://api.example.test/api/v1/ping HTTP/1.1"]


async def test_no_proxy_exempts_the_api_host(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "api.example.test")
        config = HttpClientConfig(
            api_url="http://api.example.test", api_token="t" * 24, max_retries=0
        )
        async with PrefactorHttpClient(config) as client:
            with pytest.raises(httpx.ConnectError):
                await client.validate_token()
    assert proxy.request_lines == []
