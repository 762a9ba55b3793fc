"""``tool_schemas=``: chosen tools get span types of their own, registered in the schema
version; the other tools stay ``langchain:tool``."""

from __future__ import annotations

from typing import Any

import pytest
from _lc_models import ChatScripted, add, make_agent
from _lc_support import instances, make_client, traced
from langchain_core.tools import tool

from prefactor_integrations.langchain import (
    LangChainToolSchemaConfig,
    PrefactorCallbackHandler,
    PrefactorMiddleware,
)
from prefactor_integrations.langchain.tool_schemas import normalize_tool_span_type
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}
ADD_INPUTS = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}


@tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


def _stored_schema(server: LocalServer, name: str) -> dict[str, Any]:
    [version] = server.store.list_agent_schema_versions()
    by_name = {s["name"]: s for s in version["body"]["span_type_schemas"]}
    return by_name[name]


def _tool_spans(server: LocalServer) -> list[dict[str, Any]]:
    return [
        s
        for inst in instances(server)
        for s in server.store.list_spans(inst["id"])
        if s["schema_name"].startswith("langchain:tool")
    ]


@pytest.mark.parametrize(
    "schemas",
    [
        {"add": LangChainToolSchemaConfig(span_type="calculator", input_schema=ADD_INPUTS)},
        {"add": {"spanType": "tool:calculator", "inputSchema": ADD_INPUTS}},
        {"add": {"span_type": " langchain:tool:calculator ", "input_schema": ADD_INPUTS}},
    ],
)
def test_a_mapped_tool_is_stored_under_its_own_span_type(
    local_server: LocalServer, schemas: dict[str, Any]
) -> None:
    handler = PrefactorCallbackHandler(make_client(local_server), tool_schemas=schemas)
    make_agent().invoke(QUESTION, {"callbacks": [handler]})
    traced(local_server, handler)
    handler.close(timeout=5.0)

    [span] = _tool_spans(local_server)
    assert span["schema_name"] == "langchain:tool:calculator"
    assert span["payload"]["tool_name"] == "add"
    assert span["payload"]["inputs"] == {"a": 2, "b": 3}
    assert span["result_payload"]["outputs"]["output"] == "5"
    stored = _stored_schema(local_server, "langchain:tool:calculator")
    assert stored["params_schema"]["properties"]["inputs"] == ADD_INPUTS
    assert stored["result_schema"] == {"type": "object", "additionalProperties": True}
    assert stored["title"] == "Tool Call: add"


async def test_the_middleware_maps_tools_and_leaves_the_others_generic(
    local_server: LocalServer,
) -> None:
    middleware = PrefactorMiddleware(
        client=make_client(local_server),
        tool_schemas={"add": {"span_type": "calculator", "input_schema": ADD_INPUTS}},
    )
    model = ChatScripted(tool_name="add")
    await make_agent(tools=[add, shout], model=model, middleware=[middleware]).ainvoke(QUESTION)
    await make_agent(
        tools=[shout], model=ChatScripted(tool_name="shout", tool_args={"text": "hi"}),
        middleware=[middleware],
    ).ainvoke(QUESTION)  # fmt: skip
    await middleware.close()

    assert [(s["schema_name"], s["payload"]["tool_name"]) for s in _tool_spans(local_server)] == [
        ("langchain:tool:calculator", "add"),
        ("langchain:tool", "shout"),
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("x", "langchain:tool:x"),
        ("tool:x", "langchain:tool:x"),
        ("langchain:x", "langchain:tool:x"),
        ("langchain:tool:x", "langchain:tool:x"),
        ("  ::x ", "langchain:tool:x"),
    ],
)
def test_span_types_are_normalised(given: str, expected: str) -> None:
    assert normalize_tool_span_type(given) == expected


def test_bad_tool_schemas_are_refused_with_the_field_named(local_server: LocalServer) -> None:
    client = make_client(local_server)
    with pytest.raises(ValueError, match=r"^span_type must name the tool after 'langchain:tool:'"):
        PrefactorCallbackHandler(
            client, tool_schemas={"add": {"span_type": "tool:", "input_schema": {}}}
        )
    with pytest.raises(ValueError) as shared:
        PrefactorMiddleware(
            client=client,
            tool_schemas={
                "add": {"span_type": "math", "input_schema": {}},
                "plus": {"span_type": "langchain:tool:math", "input_schema": {}},
            },
        )
    assert str(shared.value) == (
        "tool_schemas: 'add' and 'plus' both map to 'langchain:tool:math'; "
        "each tool needs a span type of its own"
    )
    with pytest.raises(
        TypeError, match=r"^tool_schemas\['add'\] must be a LangChainToolSchemaConfig"
    ):
        PrefactorCallbackHandler(client, tool_schemas={"add": "math"})
    with pytest.raises(TypeError, match=r"^tool_schemas\['add'\]\.input_schema must be"):
        PrefactorCallbackHandler(client, tool_schemas={"add": {"span_type": "math"}})


def test_a_registry_with_another_schema_for_the_span_type_is_refused(
    local_server: LocalServer,
) -> None:
    from prefactor_core import SchemaRegistry

    registry = SchemaRegistry()
    registry.register_type("langchain:tool:calculator", params_schema={"type": "object"})
    with pytest.raises(ValueError) as caught:
        PrefactorCallbackHandler(
            make_client(local_server),
            schema_registry=registry,
            tool_schemas={"add": {"span_type": "calculator", "input_schema": ADD_INPUTS}},
        )
    assert str(caught.value) == (
        "Span type 'langchain:tool:calculator' is already registered with a different "
        "params_schema or result_schema."
    )
