"""4. Export throughput: spans per second stored end to end by a local server.

Many instances are open at once (``instances`` x ``spans`` through the core `Tracer`, made
round-robin from one thread); the clock runs from the first operation until ``flush()``
returns, and the server's rows are counted afterwards. Three transports, each against a
fresh server process, interleaved over the repetitions:

- ``one call per operation``: every create and every finish its own request (the creates are
  flushed before the finishes are made, so none can be merged);
- ``coalesced``: create and finish made back to back, merged into one request per span;
- ``bulk``: as coalesced, batched into ``POST /api/v1/bulk`` requests.

A second part loads the server alone (raw HTTP, 8 connections) to show its write path:
single span creates per second, and bulk items per second.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

from benchmarks._common import Row, Settings, median, verdict
from benchmarks._server import ServerProcess, make_client
from prefactor_core.ids import new_pfid

NAME = "throughput"
TITLE = "4 Export throughput"
TARGET_SPANS_PER_SECOND = 5_000
BULK_ITEMS = 200
AGENT_VERSION = {"name": "benchmark-agent", "external_identifier": "throughput-v1"}
PAYLOAD = {"input": "What is the weather in Paris today?", "step": 0}
RESULT = {"output": "Sunny, 24 degrees", "tokens": 42}

__all__ = ["NAME", "TITLE", "run"]


def _produce(mode: str, instances: int, spans: int) -> dict[str, Any]:
    """One repetition of ``mode``; spans/s and what the server stored."""
    queue: dict[str, Any] = {"bulk_max_items": BULK_ITEMS} if mode == "bulk" else {}
    with ServerProcess() as server:
        client = make_client(server.url, server.token, max_buffered_operations=100_000, **queue)
        tracer = client.tracer
        tracer.connect()
        start = time.perf_counter()
        ids = [tracer.start_instance(agent_version=AGENT_VERSION) for _ in range(instances)]
        roots = [tracer.create_span(iid, "bench:run", payload=PAYLOAD) for iid in ids]
        opened: list[str] = []
        for _ in range(spans - 1):
            for iid, root in zip(ids, roots, strict=True):
                span = tracer.create_span(iid, "bench:step", parent_span_id=root, payload=PAYLOAD)
                if mode == "single":
                    opened.append(span)
                else:
                    tracer.finish_span(span, result_payload=RESULT)
        if mode == "single":
            tracer.flush(600)
            for span in opened:
                tracer.finish_span(span, result_payload=RESULT)
        for iid, root in zip(ids, roots, strict=True):
            tracer.finish_span(root, result_payload=RESULT)
            tracer.finish_instance(iid)
        drained = tracer.flush(600)
        elapsed = time.perf_counter() - start
        counts = server.counts()
        stats = client.stats()
        tracer.close(timeout=5)
    stored = counts["agent_spans"]
    return {
        "rate": stored / elapsed,
        "stored": stored,
        "expected": instances * spans,
        "instances": counts["agent_instances"],
        "drained": drained,
        "failed": stats.failed,
        "dropped": stats.dropped,
        "sent": stats.sent,
        "coalesced": stats.coalesced,
        "seconds": elapsed,
    }


async def _server_load(server: ServerProcess, total: int, bulk: int) -> float:
    """Span creates per second the server stores (``bulk`` items per request, 0 = single)."""
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as http:
        instance = new_pfid()
        register = {"id": instance, "agent_version": AGENT_VERSION, "agent_schema_version": {}}
        (await http.post("/api/v1/agent_instance/register", json=register)).raise_for_status()
        (await http.post(f"/api/v1/agent_instance/{instance}/start", json={})).raise_for_status()

        def item() -> dict[str, Any]:
            return {
                "agent_instance_id": instance,
                "schema_name": "bench:step",
                "status": "complete",
                "id": new_pfid(),
                "payload": PAYLOAD,
                "result_payload": RESULT,
            }

        if bulk:
            bodies = [
                json.dumps(
                    {
                        "items": [
                            {"_type": "agent_spans/create", "idempotency_key": str(uuid.uuid4())}
                            | item()
                            for _ in range(bulk)
                        ]
                    }
                )
                for _ in range(max(1, total // bulk))
            ]
            path = "/api/v1/bulk"
        else:
            bodies = []
            for _ in range(total):
                key = str(uuid.uuid4())
                bodies.append(json.dumps({"details": item() | {"idempotency_key": key}}))
            path = "/api/v1/agent_spans"
        pending = list(reversed(bodies))

        async def worker() -> None:
            while pending:
                response = await http.post(path, content=pending.pop())
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(8)))
        elapsed = time.perf_counter() - start
    return len(bodies) * (bulk or 1) / elapsed


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per transport, then the server's own write path."""
    instances, spans = (5, 20) if settings.quick else (50, 200)
    repeats = 1 if settings.quick else max(1, min(settings.runs, 3))
    modes = ("single", "coalesced", "bulk")
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            results[mode].append(_produce(mode, instances, spans))
    labels = {
        "single": "one call per operation",
        "coalesced": "coalesced (default)",
        "bulk": f"coalesced + bulk ({BULK_ITEMS} items)",
    }
    rows = []
    for mode in modes:
        runs = results[mode]
        rate = median(r["rate"] for r in runs)
        last = runs[-1]
        complete = all(r["stored"] == r["expected"] and r["drained"] for r in runs)
        detail = (
            f"{instances} instances x {spans} spans in {median(r['seconds'] for r in runs):.1f} s; "
            f"{'all stored once' if complete else 'NOT all stored'}; "
            f"{last['sent']} calls/items, {last['coalesced']} coalesced, "
            f"{last['failed']} failed, {last['dropped']} dropped"
        )
        target = f"≥ {TARGET_SPANS_PER_SECOND:,} spans/s" if mode == "bulk" else ""
        ok = verdict(rate >= TARGET_SPANS_PER_SECOND and complete, quick=settings.quick)
        rows.append(
            Row(TITLE, labels[mode], f"{rate:,.0f} spans/s", detail, target, ok if target else "")
        )
    total = 200 if settings.quick else 3000
    single, bulk = [], []
    with ServerProcess() as server:
        for _ in range(repeats):
            single.append(asyncio.run(_server_load(server, total, 0)))
            bulk.append(asyncio.run(_server_load(server, total, 100)))
    rows.append(
        Row(
            TITLE,
            "server alone: POST /agent_spans",
            f"{median(single):,.0f} requests/s",
            "8 connections, one span create per request",
        )
    )
    rows.append(
        Row(
            TITLE,
            "server alone: POST /bulk",
            f"{median(bulk):,.0f} items/s",
            "8 connections, 100 span creates per request",
        )
    )
    return rows
