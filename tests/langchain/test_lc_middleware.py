"""``PrefactorMiddleware``: a middleware agent stores the tree a handler agent stores, one
instance per run, failures and termination passed on unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from _lc_models import AGENT_OUTLINE, ANSWER, ChatScripted, make_agent
from _lc_support import instances, make_client, outline, traced
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from prefactor_core.exceptions import PrefactorTerminatedError
from prefactor_integrations._shared import current_span_id
from prefactor_integrations.langchain import PrefactorCallbackHandler, PrefactorMiddleware
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


@pytest.fixture
async def middleware(local_server: LocalServer) -> AsyncIterator[PrefactorMiddleware]:
    mw = PrefactorMiddleware(client=make_client(local_server), agent_name="test-agent")
    yield mw
    await mw.close(timeout=5.0)


def test_a_middleware_agent_stores_the_tree_of_a_handler_agent(
    local_server: LocalServer, middleware: PrefactorMiddleware, handler: PrefactorCallbackHandler
) -> None:
    result = make_agent(middleware=[middleware]).invoke(QUESTION)
    assert result["messages"][-1].content == ANSWER
    [with_middleware] = traced(local_server, middleware.handler)

    make_agent().invoke(QUESTION, {"callbacks": [handler]})
    trees = traced(local_server, handler)

    assert trees == [with_middleware, with_middleware]
    assert with_middleware == AGENT_OUTLINE


async def test_an_async_middleware_agent_stores_the_tree_of_a_handler_agent(
    local_server: LocalServer, middleware: PrefactorMiddleware, handler: PrefactorCallbackHandler
) -> None:
    result = await make_agent(middleware=[middleware]).ainvoke(QUESTION)
    assert result["messages"][-1].content == ANSWER
    await make_agent().ainvoke(QUESTION, {"callbacks": [handler]})

    assert traced(local_server, handler) == [AGENT_OUTLINE, AGENT_OUTLINE]


def test_each_run_is_an_instance_of_its_own(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    agent = make_agent(middleware=[middleware])
    agent.invoke(QUESTION)
    agent.invoke(QUESTION)

    assert traced(local_server, middleware.handler) == [AGENT_OUTLINE, AGENT_OUTLINE]
    assert len({i["id"] for i in instances(local_server)}) == 2
    assert middleware.handler.stats()["open_runs"] == 0


def test_a_failing_tool_fails_the_run_and_reaches_the_caller_unchanged(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    raised: list[Exception] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers (fails)."""
        raised.append(ValueError(f"no entry for {a}"))
        raise raised[-1]

    with pytest.raises(ValueError) as caught:
        make_agent(tools=[add], middleware=[middleware]).invoke(QUESTION)

    assert caught.value is raised[0]
    [tree] = traced(local_server, middleware.handler, status="failed")
    assert tree == (
        "langchain:agent LangGraph\n"
        "  langchain:node model\n"
        "    langchain:llm scripted-1\n"
        "  langchain:node tools\n"
        "    langchain:tool add"
    )
    spans = local_server.store.list_spans(instances(local_server)[0]["id"])
    tool_span = next(s for s in spans if s["schema_name"] == "langchain:tool")
    assert tool_span["status"] == "failed"
    assert tool_span["result_payload"]["error"]["message"] == "no entry for 2"
    assert middleware.handler.stats()["open_runs"] == 0


def test_middleware_and_handler_on_one_agent_store_one_tree(
    local_server: LocalServer, middleware: PrefactorMiddleware, handler: PrefactorCallbackHandler
) -> None:
    make_agent(middleware=[middleware]).invoke(QUESTION, {"callbacks": [handler]})

    assert traced(local_server, handler) == [AGENT_OUTLINE]
    assert middleware.handler.stats()["open_runs"] == 0


def test_constructor_errors_name_the_alternative(local_server: LocalServer) -> None:
    client = make_client(local_server)
    with pytest.raises(ValueError, match=r"^Provide either 'client' or 'instance', not both\.$"):
        PrefactorMiddleware(client=client, instance=object())
    with pytest.raises(ValueError) as neither:
        PrefactorMiddleware()
    assert str(neither.value) == (
        "Provide either 'client' or 'instance', or build the middleware with "
        "PrefactorMiddleware.from_config(api_url=..., api_token=...)."
    )
    with pytest.raises(
        TypeError, match=r"^client must be a prefactor_core.PrefactorCoreClient; got str$"
    ):
        PrefactorMiddleware(client="http://localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError) as instance:
        PrefactorMiddleware(instance=object())
    assert str(instance.value) == (
        "PrefactorMiddleware(instance=...) is not supported: every run gets an agent "
        "instance of its own. Pass client=... or use PrefactorMiddleware.from_config(); "
        "to nest runs under spans of an instance you manage, open a span around the run."
    )


async def test_from_config_owns_its_client_and_close_delivers(local_server: LocalServer) -> None:
    middleware = PrefactorMiddleware.from_config(
        api_url=local_server.url, api_token=local_server.token, agent_name="test-agent"
    )
    client = await middleware.ensure_initialized()
    assert client.initialized

    await make_agent(middleware=[middleware]).ainvoke(QUESTION)
    await middleware.close()

    assert not client.initialized
    [inst] = instances(local_server)
    assert inst["status"] == "complete"
    assert outline(local_server.store.list_spans(inst["id"])) == AGENT_OUTLINE
    with pytest.raises(ValueError, match=r"^Client is not available - middleware has been closed$"):
        await middleware.ensure_initialized()


def test_termination_stops_the_run_with_prefactor_terminated_error(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    calls: list[str] = []
    tracer = middleware.handler.client.tracer

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers (the platform terminates the run meanwhile)."""
        instance_id = tracer.instance_of(current_span_id() or "")
        assert middleware.handler.flush(timeout=10.0)
        local_server.terminate(instance_id, reason="policy violation")
        RunnableLambda(lambda x: x, name="audit").invoke(a)
        assert middleware.handler.flush(timeout=10.0)
        calls.append("add")
        return a + b

    with pytest.raises(PrefactorTerminatedError) as caught:
        make_agent(tools=[add], middleware=[middleware]).invoke(QUESTION)

    assert caught.value.reason == "policy violation"
    assert calls == ["add"]
    assert middleware.handler.flush(timeout=10.0)
    [inst] = instances(local_server)
    assert inst["status"] == "terminated"
    spans = local_server.store.list_spans(inst["id"])
    assert all(s["finished_at"] for s in spans)
    assert outline(spans) == (
        "langchain:agent LangGraph\n"
        "  langchain:node model\n"
        "    langchain:llm scripted-1\n"
        "  langchain:node tools\n"
        "    langchain:tool add\n"
        "      langchain:chain audit"
    )
    assert middleware.handler.stats()["open_runs"] == 0


async def test_termination_also_stops_async_runs(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    tracer = middleware.handler.client.tracer

    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers (the platform terminates the run meanwhile)."""
        instance_id = tracer.instance_of(current_span_id() or "")
        assert middleware.handler.flush(timeout=10.0)
        local_server.terminate(instance_id, reason="budget")
        await RunnableLambda(lambda x: x, name="audit").ainvoke(a)
        await asyncio.to_thread(middleware.handler.flush, 10.0)
        return a + b

    with pytest.raises(PrefactorTerminatedError, match="budget"):
        await make_agent(tools=[add], middleware=[middleware]).ainvoke(QUESTION)

    assert middleware.handler.flush(timeout=10.0)
    [inst] = instances(local_server)
    assert inst["status"] == "terminated"
    assert all(s["finished_at"] for s in local_server.store.list_spans(inst["id"]))


def test_the_published_import_name_gives_the_same_middleware() -> None:
    from prefactor_langchain import PrefactorMiddleware as Published

    assert Published is PrefactorMiddleware


@pytest.mark.parametrize("owner", [PrefactorMiddleware, PrefactorCallbackHandler])
async def test_create_client_names_the_adapter_in_the_sdk_header(
    local_server: LocalServer, owner: type[PrefactorMiddleware] | type[PrefactorCallbackHandler]
) -> None:
    from prefactor_core import PrefactorCoreConfig
    from prefactor_http._version import __version__
    from prefactor_http.config import HttpClientConfig

    http = HttpClientConfig(api_url=local_server.url, api_token=local_server.token)
    client = owner.create_client(PrefactorCoreConfig(http_config=http))

    assert client.tracer.sdk_header.startswith(f"prefactor-langchain@{__version__} ")
    handler = PrefactorCallbackHandler(client, agent_name="test-agent")
    make_agent().invoke(QUESTION, {"callbacks": [handler]})
    assert traced(local_server, handler) == [AGENT_OUTLINE]
    handler.close(timeout=5.0)


async def test_runs_nest_under_the_span_given_to_set_parent_span(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    client = middleware.handler.client
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_version={"name": "host", "external_identifier": "host-v1"}
    )
    await instance.start()
    span_id = await instance.create_span("host:request", payload={"step": 1})
    middleware.set_parent_span(span_id)

    await make_agent(middleware=[middleware]).ainvoke(QUESTION)
    middleware.set_parent_span(None)
    await instance.finish_span(span_id)
    await instance.finish()
    await asyncio.to_thread(middleware.handler.flush, 10.0)
    await client.close()

    [stored] = instances(local_server)
    assert stored["id"] == instance.id
    spans = local_server.store.list_spans(instance.id)
    root = next(s for s in spans if s["schema_name"] == "langchain:agent")
    assert root["parent_span_id"] == span_id
    assert outline([s for s in spans if s["schema_name"] != "host:request"]) == AGENT_OUTLINE


async def test_concurrent_runs_are_kept_apart(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    agent = make_agent(middleware=[middleware])
    await asyncio.gather(*(agent.ainvoke(QUESTION) for _ in range(3)))
    agent.batch([QUESTION, QUESTION])

    assert traced(local_server, middleware.handler) == [AGENT_OUTLINE] * 5
    assert middleware.handler.stats()["open_runs"] == 0


async def test_a_failing_model_fails_the_run_and_reaches_the_caller_unchanged(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    error = RuntimeError("provider down")
    model = ChatScripted(tool_name="add", fail_with=error)

    with pytest.raises(RuntimeError) as caught:
        await make_agent(model=model, middleware=[middleware]).ainvoke(QUESTION)

    assert caught.value is error
    [tree] = traced(local_server, middleware.handler, status="failed")
    assert tree == "langchain:agent LangGraph\n  langchain:node model\n    langchain:llm scripted-1"
    assert middleware.handler.stats()["open_runs"] == 0


def test_a_streamed_middleware_run_stores_the_same_tree(
    local_server: LocalServer, middleware: PrefactorMiddleware
) -> None:
    chunks = list(make_agent(middleware=[middleware]).stream(QUESTION, stream_mode="messages"))

    assert chunks
    assert traced(local_server, middleware.handler) == [AGENT_OUTLINE]
    spans = local_server.store.list_spans(instances(local_server)[0]["id"])
    llms = [s for s in spans if s["schema_name"] == "langchain:llm"]
    assert len(llms) == 2
    assert all(s["result_payload"]["streaming"]["chunks"] > 1 for s in llms)


def test_an_instrumented_process_traces_a_middleware_agent_once(
    local_server: LocalServer, middleware: PrefactorMiddleware, handler: PrefactorCallbackHandler
) -> None:
    from prefactor_integrations.langchain import instrument, uninstrument

    instrument(handler)
    try:
        make_agent(middleware=[middleware]).invoke(QUESTION)
    finally:
        uninstrument()

    assert traced(local_server, handler) == [AGENT_OUTLINE]
    assert middleware.handler.stats()["open_runs"] == 0
