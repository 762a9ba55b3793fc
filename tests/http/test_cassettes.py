"""Cassettes pin the exact bytes the client sends for representative flows.

Playback is the default: each test replays its cassette from tests/cassettes/ and fails when a
request's method, path or body bytes differ from the recording, or when a recorded request is
no longer sent. Ids, idempotency keys and timestamps are fixed so bodies are byte-stable.

To re-record after an intended wire change, run against the local server:

    PREFACTOR_RECORD=1 pytest tests/http/test_cassettes.py

Recording scrubs the Authorization header, writes every host as prefactor.local, and replaces
server-made ids and insert/update times in responses with stable placeholders.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import vcr
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException

from prefactor_http import BulkItem, PrefactorHttpClient
from prefactor_local.server import LocalServer

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
RECORDING = os.environ.get("PREFACTOR_RECORD") == "1"
HOST = "http://prefactor.local"
PLACEHOLDER_TIME = "2026-01-01T00:00:00.000000Z"
PFID = re.compile(r"^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$")

# Client-made values: fixed PFIDs, keys and times.
AGENT_ID = "06eajh8a00003rj0c1tnttc7nn6sa587"
ENVIRONMENT_ID = "06eajh8a04003rj0xm2fq7e0r5pbxted"
INSTANCE_ID = "06eajh8a08003rj0f2k874gx2p88ffq8"
ROOT_SPAN_ID = "06eajh8a0c003rj02t8bkdkfxtefmv4w"
CHILD_SPAN_ID = "06eajh8a0g003rj0t56zmwx33rjrck70"
CLIENT_IDS = {AGENT_ID, ENVIRONMENT_ID, INSTANCE_ID, ROOT_SPAN_ID, CHILD_SPAN_ID}
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds: int) -> datetime:
    return T0.replace(second=seconds)


def _normalise_request(request: Any) -> Any:
    request.uri = re.sub(r"^https?://[^/]+", HOST, request.uri)
    return request


def _response_normaliser() -> Any:
    server_ids: dict[str, str] = {}

    def scrub(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            if key in ("inserted_at", "updated_at"):
                return PLACEHOLDER_TIME
            if PFID.match(value) and value not in CLIENT_IDS:
                return server_ids.setdefault(value, f"server-id-{len(server_ids) + 1}")
        return value

    def normalise(response: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(response["body"]["string"])
        raw = json.dumps(scrub(body), separators=(",", ":")).encode()
        response["body"]["string"] = raw
        headers = {k: v for k, v in response["headers"].items() if k.lower() not in ("date",)}
        headers["content-length"] = [str(len(raw))]
        response["headers"] = headers
        return response

    return normalise


@contextmanager
def cassette(name: str, *, record: bool = RECORDING) -> Iterator[Cassette]:
    """Record (PREFACTOR_RECORD=1) or replay `tests/cassettes/<name>.yaml`."""
    path = CASSETTES / f"{name}.yaml"
    if record and path.exists():
        path.unlink()
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if record else "none",
        match_on=["method", "path", "raw_body"],
        filter_headers=[
            ("authorization", "Bearer <scrubbed>"),
            ("host", "prefactor.local"),
            "user-agent",
            "accept-encoding",
        ],
        before_record_request=_normalise_request,
        before_record_response=_response_normaliser(),
        decode_compressed_response=True,
    )
    with recorder.use_cassette(f"{name}.yaml") as tape:
        yield tape
    if not record:
        assert tape.all_played, "a recorded request was not sent"


async def test_lifecycle_requests_are_pinned(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    with cassette("http_lifecycle") as tape:
        async with PrefactorHttpClient(make_config()) as client:
            instance = await client.agent_instances.register(
                AGENT_VERSION,
                SCHEMA_VERSION,
                agent_id=AGENT_ID,
                environment_id=ENVIRONMENT_ID,
                id=INSTANCE_ID,
                idempotency_key="4b0b0c7e-0000-4000-8000-000000000001",
            )
            await client.agent_instances.start(
                INSTANCE_ID, timestamp=at(0), idempotency_key="4b0b0c7e-0000-4000-8000-000000000002"
            )
            await client.agent_spans.create(
                INSTANCE_ID,
                "demo:llm",
                payload={"messages": [{"role": "user", "content": "Hi"}], "model": "fake"},
                id=ROOT_SPAN_ID,
                started_at=at(1),
                idempotency_key="4b0b0c7e-0000-4000-8000-000000000003",
            )
            await client.agent_spans.create(
                INSTANCE_ID,
                "demo:tool",
                status="complete",
                payload={"query": "weather"},
                result_payload={"output": "sunny"},
                id=CHILD_SPAN_ID,
                parent_span_id=ROOT_SPAN_ID,
                started_at=at(2),
                finished_at=at(3),
                idempotency_key="4b0b0c7e-0000-4000-8000-000000000004",
            )
            span = await client.agent_spans.finish(
                ROOT_SPAN_ID,
                status="complete",
                result_payload={"text": "Hello!", "usage": {"total_tokens": 7}},
                timestamp=at(4),
                idempotency_key="4b0b0c7e-0000-4000-8000-000000000005",
            )
            finished = await client.agent_instances.finish(
                INSTANCE_ID,
                status="complete",
                timestamp=at(5),
                idempotency_key="4b0b0c7e-0000-4000-8000-000000000006",
            )
    assert (instance.id, instance.status) == (INSTANCE_ID, "pending")
    assert span.status == "complete"
    assert finished.status == "complete"
    assert tape.play_count == 6 or RECORDING
    assert len(tape) == 6


async def test_record_quality_requests_are_pinned(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    with cassette("http_record_quality") as tape:
        async with PrefactorHttpClient(make_config()) as client:
            await client.agent_instances.register(
                AGENT_VERSION,
                SCHEMA_VERSION,
                agent_id=AGENT_ID,
                environment_id=ENVIRONMENT_ID,
                id=INSTANCE_ID,
                idempotency_key="5c1c1d8f-0000-4000-8000-000000000001",
                purpose="eval",
            )
            scored = await client.agent_instances.record_quality(
                INSTANCE_ID,
                "helpfulness",
                {"score": 4, "scale": 5, "comment": "Clear answer"},
                idempotency_key="5c1c1d8f-0000-4000-8000-000000000002",
            )
            cleared = await client.agent_instances.record_quality(
                INSTANCE_ID,
                "helpfulness",
                None,
                idempotency_key="5c1c1d8f-0000-4000-8000-000000000003",
            )
    assert scored.quality_payloads == {
        "helpfulness": {"score": 4, "scale": 5, "comment": "Clear answer"}
    }
    assert not cleared.quality_payloads
    assert len(tape) == 3


async def test_bulk_requests_are_pinned(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    with cassette("http_bulk") as tape:
        async with PrefactorHttpClient(make_config()) as client:
            response = await client.bulk.execute(
                [
                    BulkItem(
                        _type="agent_instances/register",
                        idempotency_key="6d2d2e90-0000-4000-8000-000000000001",
                        agent_version=AGENT_VERSION,
                        agent_schema_version=SCHEMA_VERSION,
                        agent_id=AGENT_ID,
                        environment_id=ENVIRONMENT_ID,
                        id=INSTANCE_ID,
                    ),
                    BulkItem(
                        _type="agent_instances/start",
                        idempotency_key="6d2d2e90-0000-4000-8000-000000000002",
                        agent_instance_id=INSTANCE_ID,
                        timestamp=at(0),
                    ),
                    BulkItem(
                        _type="agent_spans/create",
                        idempotency_key="6d2d2e90-0000-4000-8000-000000000003",
                        agent_instance_id=INSTANCE_ID,
                        schema_name="demo:llm",
                        status="complete",
                        id=ROOT_SPAN_ID,
                        payload={"prompt": "Hi"},
                        result_payload={"text": "Hello!"},
                        started_at=at(1),
                        finished_at=at(2),
                    ),
                    BulkItem(
                        _type="agent_instances/finish",
                        idempotency_key="6d2d2e90-0000-4000-8000-000000000004",
                        agent_instance_id=INSTANCE_ID,
                        status="complete",
                        timestamp=at(3),
                    ),
                ]
            )
    assert all(output.ok for output in response.outputs.values())
    assert len(response.outputs) == 4
    assert len(tape) == 1


async def test_a_changed_body_does_not_match_the_cassette(make_config: ConfigFactory) -> None:
    # Always plays back: this is what a wire change looks like in review.
    with pytest.raises(CannotOverwriteExistingCassetteException):  # noqa: SIM117
        with cassette("http_record_quality", record=False):
            async with PrefactorHttpClient(make_config(max_retries=0)) as client:
                await client.agent_instances.register(
                    AGENT_VERSION,
                    SCHEMA_VERSION,
                    agent_id=AGENT_ID,
                    environment_id=ENVIRONMENT_ID,
                    id=INSTANCE_ID,
                    idempotency_key="5c1c1d8f-0000-4000-8000-000000000001",
                    purpose="live",
                )
