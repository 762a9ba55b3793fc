"""FunctionAgent and custom Workflow runs: one instance per run, ended when the run ends."""

from __future__ import annotations

import asyncio

import pytest
from _li_support import check_tree, of_type, only_instance, outline, parent_of, stored
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step

from prefactor_integrations.llama_index import PrefactorSpanHandler
from prefactor_local.server import LocalServer

# workflows inspects pydantic models with inspect.getmembers, which pydantic warns about
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")


def multiply(a: int = 6, b: int = 7) -> int:
    """Multiply two integers."""
    return a * b


def explode(reason: str = "disk on fire") -> str:
    """A tool that always fails."""
    raise RuntimeError(f"tool failed: {reason}")


class Doubled(Event):
    value: int


class Arithmetic(Workflow):
    @step
    async def double(self, ev: StartEvent) -> Doubled:
        return Doubled(value=int(ev.get("n")) * 2)

    @step
    def add_one(self, ev: Doubled) -> StopEvent:  # a sync step runs in a worker thread
        return StopEvent(result=ev.value + 1)


class Sleepy(Workflow):
    @step
    async def nap(self, ev: StartEvent) -> StopEvent:
        await asyncio.sleep(30)
        return StopEvent(result="rested")


async def test_function_agent_run_with_a_failing_tool(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(multiply), FunctionTool.from_defaults(explode)],
        llm=MockFunctionCallingLLM(),
        system_prompt="You are a calculator.",
    )
    handler = agent.run("What is 6 times 7?")
    result = await handler
    assert "Tool calls complete." in str(result)

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:agent")
    assert root["payload"]["user_msg"] == "What is 6 times 7?"
    assert root["result_payload"]["output"] == "Tool calls complete."

    tools = {s["payload"]["tool_name"]: s for s in of_type(spans, "llama_index:tool")}
    assert set(tools) == {"multiply", "explode"}, outline(spans)
    ok, failed = tools["multiply"], tools["explode"]
    assert ok["status"] == "complete"
    assert ok["payload"]["arguments"] == {"a": 6, "b": 7}
    assert ok["result_payload"]["output"] == "42"
    assert failed["status"] == "failed"
    error = failed["result_payload"]["error"]
    assert error["error_type"] == "RuntimeError"
    assert "tool failed: disk on fire" in error["message"]

    steps = of_type(spans, "llama_index:workflow")
    assert {s["payload"]["step"] for s in steps} >= {"run_agent_step", "call_tool"}
    assert all(parent_of(spans, s)["id"] == root["id"] for s in steps)
    for tool in tools.values():
        assert parent_of(spans, tool)["payload"]["step"] == "call_tool"
    llms = of_type(spans, "llama_index:llm")
    assert len(llms) == 2
    assert all(parent_of(spans, s)["payload"]["step"] == "run_agent_step" for s in llms)
    assert all(s["result_payload"]["stream_chunks"] >= 1 for s in llms)
    assert all(s["payload"]["tools"] == ["multiply", "explode"] for s in llms), outline(spans)


async def test_custom_workflow_ends_when_the_run_ends(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    handler = Arithmetic().run(n=20)
    # run() has handed back its handler, but the run itself has not finished
    assert all(i["finished_at"] is None for i, _ in stored(local_server, traced))
    assert await handler == 41

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    root = check_tree(spans, root_type="llama_index:workflow")
    assert root["payload"]["kind"] == "run"
    assert root["result_payload"]["output"] == 41
    steps = [s for s in spans if s is not root]
    assert [s["payload"]["step"] for s in steps] == ["double", "add_one"]
    assert steps[0]["payload"]["input_event"] == "StartEvent"
    assert steps[1]["result_payload"]["output_event"] == "StopEvent"
    assert all(s["status"] == "complete" for s in spans)


async def test_cancelled_workflow_is_cancelled(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    handler = Sleepy().run()
    await asyncio.sleep(0.2)
    await handler.cancel_run()
    try:
        await handler
    except Exception as exc:  # the workflow reports the cancellation to its caller
        assert type(exc).__name__ == "WorkflowCancelledByUser"

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "cancelled"
    root = check_tree(spans, root_type="llama_index:workflow")
    assert root["status"] == "cancelled"
    assert root["result_payload"]["cancelled"] is True
    assert traced.stats()["open_runs"] == 0


async def test_cancelled_task_is_cancelled_and_workflow_done_is_not_an_error(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    from llama_index_instrumentation import get_dispatcher
    from workflows.errors import WorkflowDone

    dispatcher = get_dispatcher("my_app.tasks")

    @dispatcher.span
    async def wait_forever() -> None:
        await asyncio.sleep(30)

    @dispatcher.span
    def finish_early() -> None:
        raise WorkflowDone()

    task = asyncio.create_task(wait_forever())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(WorkflowDone):
        finish_early()

    runs = stored(local_server, traced)
    statuses = {s[0]["payload"]["name"].rsplit(".", 1)[-1]: i["status"] for i, s in runs}
    assert statuses == {"wait_forever": "cancelled", "finish_early": "complete"}
    for _, spans in runs:
        check_tree(spans, root_type="llama_index:span")
