"""Hostile values in tool inputs and outputs, chain inputs and run metadata: the agent's result
is unchanged and every span arrives as capped, valid JSON."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _rel_support import (
    ANSWER,
    QUESTION,
    answer_of,
    fast_http,
    json_bytes,
    make_client,
    raw_rows,
    report,
    strict_json,
    tally,
)
from langchain.agents import create_agent
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from pydantic import BaseModel

from prefactor_core.payloads import PayloadPolicy
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

from _rel_support import scripted_model  # isort: skip

TEN_MB = 10 * 1024 * 1024


class Unprintable:
    """Its ``repr`` and ``str`` both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class Reading(BaseModel):
    sensor: str
    value: float


def _nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def _numbers() -> Iterator[int]:
    yield 1


def hostile(*, printable: bool) -> dict[str, Any]:
    """Values that break naive serialisers. LangChain itself calls ``str()`` on tool inputs,
    so those get only values whose ``str()`` works (``printable``)."""
    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    looped: list[Any] = [1]
    looped.append(looped)
    values: dict[str, Any] = {} if printable else {"unprintable": Unprintable()}
    values |= {
        "huge": "x" * TEN_MB,
        "deep": _nested(200 if printable else 5_000),
        "cyclic": cyclic,
        "looped": looped,
        "raw": b"\x00\xff\xfe raw bytes",
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "generator": _numbers(),
        "model": Reading(sensor="t1", value=21.5),
        "matrix": np.arange(6).reshape(2, 3),
        "odd_floats": np.array([np.nan, np.inf]),
        "surrogate": "lone \ud800 surrogate",
        "latin1": b"caf\xe9".decode("utf-8", "surrogateescape"),  # undecodable byte kept
        "\udcffkey": "a key that is not UTF-8",
        "many": ["z" * 5_000] * 100,  # together over any payload cap
    }
    return values


@tool(response_format="content_and_artifact")
def inspect_data(data: Any) -> tuple[str, Any]:
    """Look at some data."""
    return "inspected \ud800 " + "y" * TEN_MB, hostile(printable=False)


def _agent() -> Any:
    model = scripted_model("inspect_data", {"data": hostile(printable=True)})
    return create_agent(model, [inspect_data])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


POLICIES = {
    "default caps": PayloadPolicy(),
    "tight caps": PayloadPolicy(max_field_chars=200, max_payload_bytes=8_192, max_depth=8),
}


@pytest.mark.parametrize("caps", list(POLICIES))
def test_hostile_values_leave_the_agent_alone_and_arrive_as_capped_json(
    local_server: LocalServer, caps: str
) -> None:
    policy = POLICIES[caps]
    client = make_client(fast_http(local_server), policy=policy)
    handler = PrefactorCallbackHandler(client, agent_name="hostile-agent")
    metadata = {"hostile": hostile(printable=False), "note": "meta \udcff data"}
    chain = RunnableLambda(lambda _: "ok") | RunnableLambda(lambda text: text + "!")

    plain = _agent().invoke({**QUESTION, "extra": hostile(printable=False)}, {"metadata": metadata})
    traced = _agent().invoke(
        {**QUESTION, "extra": hostile(printable=False)},
        {"callbacks": [handler], "metadata": metadata},
    )
    chained = chain.invoke(hostile(printable=False), {"callbacks": [handler], "metadata": metadata})

    assert answer_of(traced) == answer_of(plain) == ANSWER
    assert [m.content for m in traced["messages"]] == [m.content for m in plain["messages"]]
    assert chained == "ok!"
    assert handler.flush(timeout=30), client.stats()
    stats = client.stats()
    assert stats.failed == 0 and stats.truncated > 0, stats
    assert handler.stats()["internal_errors"] == 0, handler.stats()

    rows = list(raw_rows(local_server))
    assert len(rows) == 7 + 3  # the agent's tree, and the chain's (agent, two steps)
    seen: list[str] = []
    for _, payload, _ in rows:
        # However much was cut, what says which run a span is stays.
        assert {"name", "run_id"} <= set(strict_json(payload or "{}")), (payload or "")[:300]
    for _, *texts in rows:
        for text in filter(None, texts):
            value = strict_json(text)  # valid, standard JSON
            assert json_bytes(value) <= policy.max_payload_bytes
            for string in _strings(value):
                if "…[truncated" not in string:
                    assert len(string) <= policy.max_field_chars
                assert "\ud800" not in string and "\udcff" not in string
                seen.append(string)
    everything = "\n".join(seen)
    # Cut strings say how long they were.
    assert f"…[truncated {TEN_MB} chars]" in everything
    assert "of 100 items]" in everything  # the payload cap cut a list, and says by how much
    if caps == "default caps":
        for marker in ("<cycle>", "nested deeper than", "<generator", "base64:", "NaN",
                       "Infinity", "\ufffd", "<Unprintable object>"):  # fmt: skip
            assert marker in everything, marker
        tool_span = next(
            strict_json(payload)
            for _, payload, _ in rows
            if payload and '"tool_name":"inspect_data"' in payload.replace(" ", "")
        )
        data = tool_span["inputs"]["arguments"]["data"]
        assert data["model"] == {"sensor": "t1", "value": 21.5}
        assert data["matrix"] == [[0, 1, 2], [3, 4, 5]]
        assert data["odd_floats"] == ["NaN", "Infinity"]
        assert data["nan"] == "NaN" and data["ninf"] == "-Infinity"
        assert data["surrogate"] == "lone \ufffd surrogate"
        assert data["\ufffdkey"] == "a key that is not UTF-8"
    counted = tally(local_server, 1, spans_per_run=len(rows))
    assert counted.duplicated == 0
    report(f"hostile payloads ({caps})", stats.queued, counted)
