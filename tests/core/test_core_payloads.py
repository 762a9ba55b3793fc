"""Payload preparation: JSON-safe serialisation of anything, size caps, redaction, masking."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import uuid
from collections import OrderedDict, deque, namedtuple
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import orjson
import pytest
from _core_support import AGENT_VERSION, config_for, spans_by_id
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from prefactor_core import PrefactorCoreClient, payloads
from prefactor_core.payloads import (
    Deferred,
    PayloadPolicy,
    prepare_json,
    prepare_payload,
    to_jsonable,
)
from prefactor_local.server import LocalServer


def roundtrip(value: Any, policy: PayloadPolicy | None = None) -> Any:
    prepared = prepare_payload(value, policy)
    assert prepared.data is not None
    text = json.dumps(prepared.data, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # strictly encodable
    return json.loads(text)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Model(BaseModel):
    name: str
    when: dt.datetime


Pair = namedtuple("Pair", "left right")


class FakeArray:
    """Looks like a numpy array (dtype + tolist), without numpy."""

    dtype = "float64"
    size = 3
    shape = (3,)

    def tolist(self) -> list[float]:
        return [1.0, 2.5, float("nan")]


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def test_common_python_values_become_json() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    data = roundtrip(
        {
            "datetime": moment,
            "naive": dt.datetime(2024, 1, 1),
            "date": dt.date(2024, 1, 2),
            "delta": dt.timedelta(seconds=90),
            "uuid": uuid.UUID(int=1),
            "decimal": Decimal("1.10"),
            "path": PurePosixPath("/tmp/x"),
            "enum": Color.RED,
            "intenum": Level.HIGH,
            "set": {3, 1, 2},
            "frozenset": frozenset({"b", "a"}),
            "tuple": (1, "two"),
            "deque": deque([1, 2]),
            "ordered": OrderedDict(b=1, a=2),
            "namedtuple": Pair(1, 2),
            "bytes": b"hello",
            "binary": b"\xff\x00\x01",
            "dataclass": Point(1, "p"),
            "pydantic": Model(name="m", when=moment),
            "exception": ValueError("bad value"),
            "array": FakeArray(),
            "nan": float("nan"),
            "inf": float("inf"),
            "neg_inf": -math.inf,
            "big_int": 10**100,
            "non_str_keys": {1: "one", None: "none", (1, 2): "tuple"},
            "class": dict,
        }
    )
    assert data["datetime"] == "2024-05-06T07:08:09+00:00"
    assert data["naive"] == "2024-01-01T00:00:00+00:00"
    assert data["date"] == "2024-01-02" and data["delta"] == 90.0
    assert data["uuid"] == str(uuid.UUID(int=1)) and data["decimal"] == "1.10"
    assert data["path"] == "/tmp/x"
    assert (data["enum"], data["intenum"]) == ("red", 3)
    assert data["set"] == [1, 2, 3] and data["frozenset"] == ["a", "b"]
    assert data["tuple"] == [1, "two"] and data["deque"] == [1, 2]
    assert data["ordered"] == {"b": 1, "a": 2}
    assert data["namedtuple"] == {"left": 1, "right": 2}
    assert data["bytes"] == "hello" and data["binary"].startswith("base64:")
    assert data["dataclass"] == {"x": 1, "label": "p"}
    assert data["pydantic"] == {"name": "m", "when": "2024-05-06T07:08:09+00:00"}
    assert data["exception"] == {"error_type": "ValueError", "message": "bad value"}
    assert data["array"] == [1.0, 2.5, "NaN"]
    assert (data["nan"], data["inf"], data["neg_inf"]) == ("NaN", "Infinity", "-Infinity")
    assert data["big_int"] == "<int of 333 bits>"
    assert data["non_str_keys"] == {"1": "one", "None": "none", "(1, 2)": "tuple"}
    assert data["class"] == "<class builtins.dict>"


def test_framework_objects_are_read_by_their_shape() -> None:
    data = roundtrip(
        {
            "messages": [HumanMessage("hi"), AIMessage("hello", id="m1")],
            "document": Document(page_content="text", metadata={"source": "a.txt"}),
        }
    )
    human, ai = data["messages"]
    assert (human["type"], human["content"]) == ("human", "hi")
    assert (ai["type"], ai["content"], ai["id"]) == ("ai", "hello", "m1")
    assert data["document"]["page_content"] == "text"
    assert data["document"]["metadata"] == {"source": "a.txt"}


class FakeScalar:
    """Looks like a numpy scalar such as numpy.int64 (not an int subclass)."""

    dtype = "int64"
    shape = ()

    def tolist(self) -> int:
        return 7


def test_numpy_like_values_by_duck_typing() -> None:
    assert roundtrip({"array": FakeArray(), "scalar": FakeScalar()}) == {
        "array": [1.0, 2.5, "NaN"],
        "scalar": 7,
    }


def test_hostile_values_never_raise() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    deep: Any = "bottom"
    for _ in range(200):
        deep = {"down": deep}

    def numbers() -> Any:
        yield 1
        yield 2

    generator = numbers()
    data = roundtrip(
        {
            "cycle": cycle,
            "loop": loop,
            "deep": deep,
            "surrogate": "a\udc80b",
            "generator": generator,
            "bad_repr": BadRepr(),
        }
    )
    assert data["cycle"] == [1, ["<cycle>"]]
    assert data["loop"] == {"self": {"…": "<cycle>"}}
    assert "nested deeper than" in json.dumps(data["deep"], ensure_ascii=False)
    assert data["surrogate"] == "a\ufffdb"
    assert data["generator"].startswith("<generator")
    assert next(generator) == 1  # not consumed
    assert data["bad_repr"] == "<BadRepr object>"


def test_long_strings_are_cut_with_their_original_size() -> None:
    huge = "x" * 10_485_760
    prepared = prepare_payload({"text": huge})
    assert prepared.data is not None
    text = prepared.data["text"]
    assert text.endswith("…[truncated 10485760 chars]")
    assert len(text) < 10_100
    assert prepared.truncated == 1


def test_payloads_are_capped_per_span() -> None:
    policy = PayloadPolicy(max_field_chars=1_000, max_payload_bytes=5_000)
    prepared = prepare_payload({f"k{i}": "y" * 900 for i in range(100)}, policy)
    assert prepared.data is not None
    assert len(json.dumps(prepared.data).encode()) <= 5_000
    assert any("[truncated" in str(value) for value in prepared.data.values())
    assert prepared.truncated >= 1
    many = prepare_payload(list(range(5_000)), PayloadPolicy(max_items=10))
    assert many.data is not None
    assert many.data["value"][-1] == "…[truncated 4990 of 5000 items]"


def test_secrets_are_redacted() -> None:
    data = roundtrip(
        {
            "openai": "key is sk-proj-abcdefghijklmnopqrstuvwx123 ok",
            "header": "Authorization: Bearer abc.def.ghi-jkl",
            "dsn": "postgres://admin:hunter2@db.internal:5432/app",
            "contact": "write to jane.doe@example.com please",
            "password": "p4ss",
            "Api-Key": "12345",
            "nested": [{"token": "t-0k3n"}],
            "max_tokens": 256,
            "prose": "the password is shown nowhere",
        }
    )
    assert data["openai"] == "key is [REDACTED:api_key] ok"
    assert data["header"] == "Authorization: Bearer [REDACTED:bearer]"
    assert data["dsn"] == "postgres://admin:[REDACTED:url_password]@db.internal:5432/app"
    assert data["contact"] == "write to [REDACTED:email] please"
    assert data["password"] == data["Api-Key"] == "[REDACTED]"
    assert data["nested"] == [{"token": "[REDACTED]"}]
    assert data["max_tokens"] == 256
    assert data["prose"] == "the password is shown nowhere"


def test_secret_patterns_are_configurable() -> None:
    keep_emails = PayloadPolicy(secret_patterns={"ticket": r"TICKET-\d+"})
    data = roundtrip({"a": "mail bob@example.com about TICKET-42"}, keep_emails)
    assert data["a"] == "mail bob@example.com about [REDACTED:ticket]"
    off = roundtrip(
        {"password": "p", "k": "sk-abcdefghijklmnopqrstuvwx"}, PayloadPolicy(redact_secrets=False)
    )
    assert off == {"password": "p", "k": "sk-abcdefghijklmnopqrstuvwx"}


def test_built_in_patterns_match_in_any_case_and_in_non_ascii_text() -> None:
    data = roundtrip(
        {
            "a": "AUTHORIZATION: BEARER abcdefghijk",
            "b": "PASSWORD=hunter22 please",
            "c": "Grüße, mein Passwort ist password: hunter22",
            "d": "\u017fecret=hunter22",
            "e": "Ünïcode key sk-abcdefghijklmnopqrstu, mail jane@example.com",
        }
    )
    assert data == {
        "a": "AUTHORIZATION: BEARER [REDACTED:bearer]",
        "b": "PASSWORD=[REDACTED:assignment] please",
        "c": "Grüße, mein Passwort ist password: [REDACTED:assignment]",
        "d": "\u017fecret=[REDACTED:assignment]",
        "e": "Ünïcode key [REDACTED:api_key], mail [REDACTED:email]",
    }


def test_patterns_of_the_users_own_with_flags_and_group_references_redact() -> None:
    policy = PayloadPolicy(
        secret_patterns={
            "pin": r"(?i)pin:\s*(?P<secret>\d{4})",
            "block": r"(?s)BEGIN.+?END",
            "doubled": r"\b(\w{3,})-\1\b",
            "named_again": r"(?P<word>[a-z]{4})=(?P=word)",
        }
    )
    data = roundtrip(
        {
            "a": "PIN: 1234 given",
            "b": "x BEGIN\nsecret\nEND y",
            "c": "code abc-abc here",
            "d": "pair test=test end",
            "e": "nothing to hide here",
        },
        policy,
    )
    assert data == {
        "a": "PIN: [REDACTED:pin] given",
        "b": "x [REDACTED:block] y",
        "c": "code [REDACTED:doubled] here",
        "d": "pair [REDACTED:named_again] end",
        "e": "nothing to hide here",
    }


def test_capture_content_false_keeps_structure_and_sizes() -> None:
    data = roundtrip(
        {"prompt": "tell me a secret", "n": 3, "ok": True, "items": ["ab", b"xyz"]},
        PayloadPolicy(capture_content=False),
    )
    assert data == {"prompt": "[16 chars]", "n": 3, "ok": True, "items": ["[2 chars]", "[3 bytes]"]}


def test_capture_content_false_keeps_short_identifiers_of_keep_keys() -> None:
    payload = {
        "name": "search",
        "model": "m" * 201,  # too long to be a name: a size
        "tools": ["add", {"name": "lookup", "description": "finds things"}],
        "messages": [{"role": "human", "content": "my secret"}],
        "run_id": uuid.UUID(int=1),
        "metadata": {"name": {"first": "Ann"}},
        "error": {"error_type": "ValueError", "message": "bad input: my secret"},
    }
    data = roundtrip(payload, PayloadPolicy(capture_content=False))
    assert data == {
        "name": "search",
        "model": "[201 chars]",
        "tools": ["add", {"name": "lookup", "description": "[12 chars]"}],
        "messages": [{"role": "human", "content": "[9 chars]"}],
        "run_id": "00000000-0000-0000-0000-000000000001",
        "metadata": {"name": {"first": "[3 chars]"}},
        "error": {"error_type": "ValueError", "message": "[20 chars]"},
    }
    custom = PayloadPolicy(capture_content=False, keep_keys=["topic"])  # type: ignore[arg-type]
    assert custom.keep_keys == frozenset({"topic"})
    assert roundtrip({"topic": "ai", "name": "x"}, custom) == {"topic": "ai", "name": "[1 chars]"}
    with pytest.raises(TypeError):
        PayloadPolicy(keep_keys="name")  # type: ignore[arg-type]


def test_mask_hook_sees_and_replaces_the_payload() -> None:
    def mask(payload: Any) -> Any:
        return {key: ("***" if key == "ssn" else value) for key, value in payload.items()}

    assert roundtrip({"ssn": "123-45-6789", "name": "Ann"}, PayloadPolicy(mask=mask)) == {
        "ssn": "***",
        "name": "Ann",
    }

    def broken(payload: Any) -> Any:
        raise RuntimeError("mask bug")

    withheld = roundtrip({"ssn": "123-45-6789"}, PayloadPolicy(mask=broken))
    assert "123-45-6789" not in json.dumps(withheld)
    assert withheld == {"…": "[withheld: mask raised RuntimeError]"}


def test_non_mapping_payloads_are_wrapped() -> None:
    assert roundtrip("just text") == {"value": "just text"}
    assert prepare_payload(None).data is None
    assert to_jsonable([1, (2, 3)]) == [1, [2, 3]]


async def test_payloads_are_prepared_in_the_exporter_and_counted(local_server: LocalServer) -> None:
    async with PrefactorCoreClient(config_for(local_server)) as client:
        tracer = client.tracer
        instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
        plain = tracer.create_span(
            instance_id,
            "agent:llm",
            payload={
                "messages": [HumanMessage("hi sk-abcdefghijklmnopqrstuv")],
                "big": "z" * 20_000,
            },
        )
        tracer.finish_span(plain, result_payload=AIMessage("done"))
        hidden = tracer.create_span(
            instance_id,
            "agent:tool",
            payload={"query": "private words"},
            policy=PayloadPolicy(capture_content=False),
        )
        tracer.finish_span(hidden, result_payload={"answer": "private answer"})
        tracer.finish_instance(instance_id)
        assert await client.flush(10)
        stats = client.stats()
    stored = spans_by_id(local_server, instance_id)
    payload = stored[plain]["payload"]
    assert payload["messages"][0]["content"] == "hi [REDACTED:api_key]"
    assert payload["big"].endswith("…[truncated 20000 chars]")
    assert stored[plain]["result_payload"]["content"] == "done"
    assert stored[hidden]["payload"] == {"query": "[13 chars]"}
    assert stored[hidden]["result_payload"] == {"answer": "[14 chars]"}
    assert stats.truncated == 1


@dataclasses.dataclass
class Reading:
    value: float


QUICK = [
    {"name": "tool", "args": {"a": 2, "b": [1, 2.5, None, True]}, "id": "call_1"},
    {"messages": [HumanMessage("hi"), AIMessage("hello", id="m1")], "n": 1},
    {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "day": dt.date(2026, 1, 2)},
    {"model": Model(name="m", when=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))},
    {"point": Point(1, "p"), "pair": Pair(1, 2), "color": Color.RED, "level": Level.HIGH},
    {"deferred": Deferred(lambda items: [str(item) for item in items], (1, 2))},
    {"ordered": OrderedDict(a=1), "tuple": (1, (2, 3))},
    [1, 2, 3],
    {"nested": {"deeper": {"still": ["text with spaces", "ü and ✓"]}}},
    {"max_tokens": 256, "prose": "the password is shown nowhere"},
]
EXACT = [
    {"nan": math.nan},
    {"reading": Reading(math.inf)},
    {"array": FakeArray()},
    {"openai": "key is sk-proj-abcdefghijklmnopqrstuvwx123 ok"},
    {"token": "t-0k3n"},
    {"Api-Key": "12345"},
    {"contact": "jane.doe@example.com"},
    {"text": "x" * 20_000},
    {1: "int key"},
    {"set": {1, 2}, "bytes": b"\x00\x01"},
    {"decimal": Decimal("1.5"), "uuid": uuid.UUID(int=1), "path": PurePosixPath("/tmp")},
    {"surrogate": "a\udc80b"},
    {"k" * 300: 1},
    {"deep": functools.reduce(lambda inner, _: {"down": inner}, range(40), "bottom")},
    {"many": list(range(2_000))},
    {"big": 1 << 70},
    {"bad": BadRepr()},
]


@pytest.mark.parametrize(
    "value",
    QUICK + EXACT,
    ids=[f"quick{i}" for i in range(len(QUICK))] + [f"exact{i}" for i in range(len(EXACT))],
)
def test_the_quick_path_gives_the_same_json_as_the_exact_one(value: Any) -> None:
    quick = value in QUICK
    assert (payloads._fast(value, payloads.DEFAULT_POLICY) is not None) is quick
    prepared, truncated = prepare_json(value)
    exact = prepare_payload(value)
    assert prepared is not None and exact.data is not None
    assert orjson.loads(prepared) == json.loads(json.dumps(exact.data, allow_nan=False))
    assert truncated == exact.truncated
