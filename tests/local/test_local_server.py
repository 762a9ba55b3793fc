"""`LocalServer` lifecycle, persistence, concurrency and request limits."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from local_helpers import Api, assert_error, client_for

from prefactor_local.pfid import is_pfid, new_pfid, pfid_partition, pfid_timestamp_ms
from prefactor_local.server import LocalServer


def test_url_token_and_loopback_binding(local_server: LocalServer) -> None:
    assert local_server.url == f"http://127.0.0.1:{local_server.port}"
    assert local_server.port > 0
    assert local_server.token
    assert local_server.db_path.exists()
    assert local_server.env == {
        "PREFACTOR_API_URL": local_server.url,
        "PREFACTOR_API_TOKEN": local_server.token,
    }


def test_data_survives_a_restart_on_the_same_port(tmp_path: Path) -> None:
    with LocalServer(db_path=tmp_path / "local.db") as server:
        port, token = server.port, server.token
        with client_for(server) as client:
            api = Api(client)
            instance = api.started()
            span = api.new_span(instance["id"])
        server.restart()
        assert (server.port, server.token) == (port, token)
        with client_for(server) as client:
            api = Api(client)
            assert api.get(f"/api/v1/agent_instance/{instance['id']}").status_code == 200
            assert api.finish_span(span["id"]).status_code == 200
        assert [s["status"] for s in server.store.list_spans(instance["id"])] == ["complete"]
    with LocalServer(db_path=tmp_path / "local.db") as again:
        assert again.token == token
        assert again.store.get_instance(instance["id"]) is not None


def test_requests_fail_while_stopped_and_work_after_start(tmp_path: Path) -> None:
    server = LocalServer(db_path=tmp_path / "local.db").start()
    try:
        with client_for(server) as client:
            api = Api(client)
            instance = api.started()
            server.stop()
            with pytest.raises(httpx.ConnectError):
                api.get("/api/v1/ping")
            assert server.store.get_instance(instance["id"]) is not None
            server.start()
            assert api.get("/api/v1/ping").status_code == 200
    finally:
        server.stop()


def test_stop_is_quick_even_with_a_hanging_request(local_server: LocalServer) -> None:
    local_server.faults.hang_rate = 1.0
    local_server.faults.hang_seconds = 60
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            with client_for(local_server) as client:
                client.get("/api/v1/ping", timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    local_server.stop()
    assert time.monotonic() - started < 3
    thread.join(timeout=5)
    assert errors and isinstance(errors[0], httpx.HTTPError)


def test_temporary_database_is_removed_on_stop() -> None:
    with LocalServer() as server:
        path = server.db_path
        with client_for(server) as client:
            Api(client).register()
        assert path.exists()
        assert server.store.counts()["agent_instances"] == 1
    assert not path.exists()


def test_token_can_be_chosen(tmp_path: Path) -> None:
    with LocalServer(db_path=tmp_path / "x.db", token="my-token") as server:
        assert server.token == "my-token"
        with httpx.Client(base_url=server.url) as client:
            response = client.get("/api/v1/ping", headers={"Authorization": "Bearer my-token"})
            assert response.status_code == 200


async def test_fifty_concurrent_creates_lose_nothing(local_server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {local_server.token}"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=local_server.url, headers=headers, limits=limits, timeout=30
    ) as client:
        register = await client.post(
            "/api/v1/agent_instance/register",
            json={"agent_version": {"name": "a"}, "agent_schema_version": {}, "agent_id": "c"},
        )
        instance_id = register.json()["details"]["id"]

        async def create(index: int) -> httpx.Response:
            return await client.post(
                "/api/v1/agent_spans",
                json={
                    "details": {
                        "agent_instance_id": instance_id,
                        "schema_name": "test:parallel",
                        "status": "active",
                        "payload": {"index": index},
                        "idempotency_key": str(uuid.uuid4()),
                    }
                },
            )

        async def register_one(index: int) -> httpx.Response:
            return await client.post(
                "/api/v1/agent_instance/register",
                json={
                    "agent_version": {"name": "a"},
                    "agent_schema_version": {},
                    "agent_id": "c",
                    "id": f"parallel-{index}",
                },
            )

        responses = await asyncio.gather(
            *(create(i) for i in range(50)), *(register_one(i) for i in range(50))
        )
    assert all(response.status_code == 200 for response in responses)
    spans = local_server.store.list_spans(instance_id)
    assert sorted(span["payload"]["index"] for span in spans) == list(range(50))
    assert len({span["id"] for span in spans}) == 50
    assert local_server.store.counts()["agent_instances"] == 51


async def test_concurrent_retries_with_one_key_make_one_row(local_server: LocalServer) -> None:
    headers = {"Authorization": f"Bearer {local_server.token}"}
    body = {
        "agent_version": {"name": "a"},
        "agent_schema_version": {},
        "idempotency_key": "the-one-key",
    }
    async with httpx.AsyncClient(base_url=local_server.url, headers=headers) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/agent_instance/register", json=body) for _ in range(20))
        )
    assert len({response.json()["details"]["id"] for response in responses}) == 1
    instances = local_server.store.list_instances()
    assert len(instances) == 1 and instances[0]["replays"] == 19


def test_malformed_json_is_400(api: Api) -> None:
    response = api.http.post(
        "/api/v1/agent_spans",
        content=b'{"details": {',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_json")
    nan = api.http.post(
        "/api/v1/agent_instance/register",
        content=b'{"agent_version": {"x": NaN}, "agent_schema_version": {}}',
    )
    assert_error(nan, 400, "invalid_json")


def _raw_span(api: Api, instance_id: str, payload: str) -> httpx.Response:
    body = (
        f'{{"details": {{"agent_instance_id": "{instance_id}", "schema_name": "test:x", '
        f'"status": "active", "idempotency_key": "{uuid.uuid4()}", "payload": {payload}}}}}'
    )
    return api.http.post(
        "/api/v1/agent_spans",
        content=body.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # Far past the parser's own recursion limit: a bracket bomb of a million levels.
        ('{"a": ' + "[" * 1_000_000 + "]" * 1_000_000 + "}", "nesting deeper than 128 levels"),
        ('{"a": ' + '{"b": ' * 3000 + "1" + "}" * 3000 + "}", "nesting deeper than 128 levels"),
        ('{"a": ' + "[" * 500 + "]" * 500 + "}", "nesting deeper than 128 levels"),
        ('{"text": "\\ud800"}', "lone surrogate \\ud800 in a string"),
        ('{"\\udfff": 1}', "lone surrogate \\udfff in a string"),
        ('{"text": "\ud83d"}', "lone surrogate \\ud83d in a string"),  # as raw bytes
        ('{"n": 1e999}', "number 1e999 is out of range"),
        ('{"n": ' + "9" * 5000 + "}", "integer string conversion"),
    ],
    ids=[
        "bracket-bomb",
        "deep-objects",
        "deep-arrays",
        "escaped-surrogate",
        "surrogate-key",
        "raw-surrogate",
        "infinite-number",
        "huge-integer",
    ],
)
def test_bodies_the_server_cannot_store_are_400(api: Api, payload: str, message: str) -> None:
    instance = api.started()
    error = assert_error(_raw_span(api, instance["id"], payload), 400, "invalid_json")
    assert error["message"].startswith("Request body is not valid JSON: ")
    assert message in error["message"]
    assert api.get(f"/api/v1/agent_instance/{instance['id']}").status_code == 200
    nested = "[" * 120 + "]" * 120  # within the limit: stored and read back
    assert _raw_span(api, instance["id"], f'{{"a": {nested}}}').status_code == 200
    listed = api.get("/api/v1/agent_spans", params={"agent_instance_id": instance["id"]})
    assert listed.status_code == 200


def test_bodies_over_the_limit_are_413(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"x" * 1000

    server = LocalServer(db_path=tmp_path / "local.db", max_body_bytes=10_000)
    with server, client_for(server) as client:
        api = Api(client)
        instance = api.started()
        big = api.span(instance["id"], payload={"blob": "x" * 20_000})
        assert_error(big, 413, "payload_too_large")
        streamed = client.post("/api/v1/agent_spans", content=chunks())
        assert_error(streamed, 413, "payload_too_large")
        assert api.span(instance["id"], payload={"blob": "x" * 5_000}).status_code == 200
        assert len(server.store.list_spans(instance["id"])) == 1


def test_default_body_limit_is_five_megabytes(api: Api) -> None:
    instance = api.started()
    assert api.span(instance["id"], payload={"blob": "x" * 4_000_000}).status_code == 200
    assert_error(api.span(instance["id"], payload={"blob": "x" * 5_300_000}), 413)


def test_ensure_running_reuses_or_starts(tmp_path: Path) -> None:
    db = tmp_path / "ensure.db"
    with LocalServer(db_path=db) as running:
        reused = LocalServer.ensure_running(running.url, db_path=db)
        assert reused.attached and reused.token == running.token and reused.url == running.url
        reused.stop()
        assert running.running
        with pytest.raises(PermissionError):
            LocalServer.ensure_running(running.url, db_path=db, token="wrong")
    port = running.port
    started = LocalServer.ensure_running(f"http://127.0.0.1:{port}", db_path=db)
    try:
        assert not started.attached and started.port == port and started.token == running.token
        with client_for(started) as client:
            assert client.get("/api/v1/ping").status_code == 200
    finally:
        started.stop()


def test_pfids_have_the_documented_layout() -> None:
    before = int(time.time() * 1000)
    pfid = new_pfid(partition=12345)
    assert len(pfid) == 32 and pfid[0] in "01234567"
    assert set(pfid) <= set("0123456789abcdefghjkmnpqrstvwxyz")
    assert is_pfid(pfid) and pfid_partition(pfid) == 12345
    stamp = pfid_timestamp_ms(pfid)
    assert stamp is not None and before <= stamp <= int(time.time() * 1000)
    assert not is_pfid("not-a-pfid") and not is_pfid("u" * 32)
    assert len({new_pfid() for _ in range(1000)}) == 1000
