"""LangGraph: nodes, parallel branches, subgraphs, custom events, interrupts, commands."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from _lc_models import GRAPH_OUTLINE, make_graph
from _lc_support import check_instance, instances, outline, spans_of, traced
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer


def test_nodes_carry_langgraph_fields_and_routers_are_folded(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    result = make_graph().invoke({"topic": "tracing", "notes": []}, {"callbacks": [handler]})

    assert result["summary"].endswith(".")
    assert traced(local_server, handler) == [GRAPH_OUTLINE]
    nodes = {s["payload"]["node"]: s for s in spans_of(local_server, "langchain:node")}
    plan = nodes["plan"]["payload"]
    assert plan["step"] == 1
    assert plan["triggers"] == ["branch:to:plan"]
    assert plan["path"] == ["__pregel_pull", "plan"]
    assert plan["checkpoint_ns"].startswith("plan:")
    assert nodes["left"]["payload"]["step"] == nodes["right"]["payload"]["step"] == 2
    # A node of the subgraph: its namespace says where it sits.
    assert nodes["draft"]["payload"]["checkpoint_ns"].startswith("summarize:")
    assert nodes["plan"]["result_payload"]["updated_keys"] == ["notes"]
    assert nodes["plan"]["result_payload"]["outputs"] == {"notes": ["plan:tracing"]}


def test_custom_events_land_on_the_span_that_dispatched_them(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    make_graph().invoke({"topic": "tracing", "notes": []}, {"callbacks": [handler]})

    traced(local_server, handler)
    nodes = {s["payload"]["node"]: s for s in spans_of(local_server, "langchain:node")}
    (event,) = nodes["plan"]["result_payload"]["events"]
    assert event["kind"] == "custom"
    assert event["name"] == "plan_ready"
    assert event["data"] == {"topic": "tracing", "branches": 2}
    assert "events" not in nodes["left"]["result_payload"]


def test_legacy_agent_actions_are_events_of_their_chain(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    def legacy_agent(question: str, run_manager: CallbackManagerForChainRun) -> str:
        run_manager.on_agent_action(AgentAction(tool="search", tool_input=question, log="go"))
        run_manager.on_agent_finish(AgentFinish(return_values={"output": "42"}, log="done"))
        return "42"

    chain = RunnableLambda(legacy_agent) | RunnableLambda(str.upper)
    assert chain.invoke("meaning?", {"callbacks": [handler]}) == "42"

    (tree,) = traced(local_server, handler)
    assert tree == (
        "langchain:agent RunnableSequence\n  langchain:chain legacy_agent\n  langchain:chain upper"
    )
    (span,) = [
        s
        for s in spans_of(local_server, "langchain:chain")
        if s["payload"]["name"] == "legacy_agent"
    ]
    events = span["result_payload"]["events"]
    assert [(e["kind"], e["name"]) for e in events] == [
        ("agent_action", "search"),
        ("agent_finish", "agent_finish"),
    ]
    assert events[0]["data"] == {"tool": "search", "tool_input": "meaning?", "log": "go"}
    assert span["status"] == "complete"


class Ticket(TypedDict):
    request: str
    log: Annotated[list[str], operator.add]


def _approval_graph() -> Any:
    def triage(state: Ticket) -> dict[str, Any]:
        return {"log": ["triaged"]}

    def approve(state: Ticket) -> dict[str, Any]:
        decision = interrupt({"question": f"approve {state['request']}?"})
        return {"log": [f"decision:{decision}"]}

    graph = StateGraph(Ticket)
    graph.add_node("triage", triage)
    graph.add_node("approve", approve)
    graph.add_edge(START, "triage")
    graph.add_edge("triage", "approve")
    graph.add_edge("approve", END)
    return graph.compile(checkpointer=InMemorySaver())


def test_interrupt_completes_the_instance_and_resume_links_to_it(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    graph = _approval_graph()
    config = {"callbacks": [handler], "configurable": {"thread_id": "ticket-7"}}

    first = graph.invoke({"request": "refund", "log": []}, config)
    assert "__interrupt__" in first
    second = graph.invoke(Command(resume="yes"), config)
    assert second["log"] == ["triaged", "decision:yes"]
    graph.invoke({"request": "refund again", "log": []}, config)

    assert traced(local_server, handler) == [
        "langchain:agent LangGraph\n  langchain:node triage\n  langchain:node approve",
        "langchain:agent LangGraph\n  langchain:node approve",
        "langchain:agent LangGraph\n  langchain:node triage\n  langchain:node approve",
    ]
    interrupted, resumed, _ = instances(local_server)
    roots = [
        next(s for s in local_server.store.list_spans(i["id"]) if s["parent_span_id"] is None)
        for i in instances(local_server)
    ]
    # The interrupted run: finished `complete`, its root result says it is waiting.
    assert interrupted["status"] == "complete"
    result = roots[0]["result_payload"]
    assert result["interrupted"] is True
    assert result["interrupts"][0]["value"] == {"question": "approve refund?"}
    assert result["interrupts"][0]["id"]
    approve = next(
        s
        for s in local_server.store.list_spans(interrupted["id"])
        if s["payload"].get("node") == "approve"
    )
    assert approve["status"] == "complete"
    assert approve["result_payload"]["interrupted"] is True
    # The resumed run points back at the interrupted instance through the thread id.
    assert roots[1]["payload"]["thread_id"] == "ticket-7"
    assert roots[1]["payload"]["resumed"] is True
    assert roots[1]["payload"]["resumed_from_instance_id"] == interrupted["id"]
    assert "interrupted" not in roots[1]["result_payload"]
    # LangGraph's own interrupt/resume callbacks name the checkpoint both runs share.
    checkpoint = result["interrupt_checkpoint_id"]
    assert checkpoint and roots[1]["result_payload"]["resumed_from_checkpoint_id"] == checkpoint
    assert [e["kind"] for e in result["events"]] == ["interrupt"]
    assert [e["kind"] for e in roots[1]["result_payload"]["events"]] == ["resume"]
    assert result["events"][0]["data"]["checkpoint_id"] == checkpoint
    # The third run on that thread is a new request (it waits for approval again).
    assert roots[2]["payload"]["previous_instance_id"] == resumed["id"]
    assert "resumed_from_instance_id" not in roots[2]["payload"]


class Flow(TypedDict):
    steps: Annotated[list[str], operator.add]


def test_commands_and_parent_commands_are_not_failures(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    def jump(state: Flow) -> Command[Any]:
        return Command(graph=Command.PARENT, goto="finish", update={"steps": ["jump"]})

    inner = StateGraph(Flow)
    inner.add_node("jump", jump)
    inner.add_edge(START, "jump")
    child = inner.compile()

    def start(state: Flow) -> Command[Any]:
        return Command(goto="child", update={"steps": ["start"]})

    outer = StateGraph(Flow)
    outer.add_node("start", start, destinations=("child",))
    outer.add_node("child", child, destinations=("finish",))
    outer.add_node("finish", lambda s: {"steps": ["finish"]})
    outer.add_edge(START, "start")
    outer.add_edge("finish", END)

    result = outer.compile().invoke({"steps": []}, {"callbacks": [handler]})
    assert result["steps"] == ["start", "jump", "finish"]

    assert traced(local_server, handler) == [
        "langchain:agent LangGraph\n"
        "  langchain:node start\n"
        "  langchain:node child\n"
        "    langchain:chain LangGraph\n"
        "      langchain:node jump\n"
        "  langchain:node finish"
    ]
    (inst,) = instances(local_server)
    spans = {outline([s]): s for s in check_instance(local_server, inst)}
    assert spans["langchain:node start"]["result_payload"]["command"]["goto"] == "child"
    assert spans["langchain:node jump"]["status"] == "complete"
    assert spans["langchain:node jump"]["result_payload"]["command"]["goto"] == "finish"
