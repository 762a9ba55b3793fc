"""``os.fork()`` while the parent has work in flight and a run open: the child's spans are
delivered, and the child never sends (nor cuts short) anything of the parent's."""

from __future__ import annotations

import textwrap

from _rel_support import (
    AGENT_OUTLINE,
    STATS_AT_EXIT,
    Tally,
    exit_stats,
    outline,
    report,
    run_script,
)

from prefactor_local.server import LocalServer

SCRIPT = STATS_AT_EXIT + textwrap.dedent(
    """
    import os, sys, threading
    from langchain_core.runnables import RunnableLambda
    from _rel_support import make_agent
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    handler = PrefactorCallbackHandler(agent_name="fork-agent")
    CLIENTS.append(handler.client)
    agent = make_agent()

    def ask(who):
        agent.invoke({"messages": [("user", who)]}, {"callbacks": [handler]})

    # The first run starts the exporter; the fork comes while it is still sending that run.
    ask("parent-before")
    entered, release = threading.Event(), threading.Event()

    def hold(value):
        entered.set()
        release.wait(30)
        return value

    holder = threading.Thread(
        target=RunnableLambda(hold).invoke, args=("open-at-fork", {"callbacks": [handler]})
    )
    holder.start()
    entered.wait(10)
    pid = os.fork()
    if pid == 0:
        ask("child")
        sys.exit(0)  # an ordinary exit, without flush: the child's exit-time drain sends
    _, status = os.waitpid(pid, 0)
    release.set()
    holder.join()
    ask("parent-after")
    print("child exit code", os.waitstatus_to_exitcode(status))
    """
)


def test_fork_child_delivers_its_own_spans_and_nothing_of_the_parent(
    local_server: LocalServer,
) -> None:
    local_server.faults.latency_ms = 50  # the parent still has work in flight at the fork
    # By host name: connections are opened (names looked up) in the parent around the fork.
    host_url = local_server.url.replace("127.0.0.1", "localhost")
    done = run_script(SCRIPT, local_server, PREFACTOR_API_URL=host_url)

    assert done.returncode == 0, done.stderr
    assert "child exit code 0" in done.stdout, done.stdout
    assert "could not be delivered" not in done.stderr, done.stderr
    per_process = exit_stats(done.stdout)
    assert len(per_process) == 2  # the child's, then the parent's
    assert all(s["failed"] == 0 and s["pending"] == 0 for s in per_process), per_process
    instances = {}
    for instance in local_server.store.list_instances():
        spans = local_server.store.list_spans(instance["id"])
        root = next(s for s in spans if s["parent_span_id"] is None)
        inputs = root["payload"]["inputs"]
        who = inputs["messages"][0][1] if "messages" in inputs else inputs["input"]
        assert who not in instances, f"{who} was stored twice"
        instances[who] = (instance, spans)
    assert sorted(instances) == ["child", "open-at-fork", "parent-after", "parent-before"]
    for who in ("parent-before", "child", "parent-after"):
        instance, spans = instances[who]
        assert instance["status"] == "complete"
        assert outline(spans) == AGENT_OUTLINE, who
    # The run open at the fork is the parent's: finished by it, once, as complete (the child's
    # exit did not cancel it).
    held, held_spans = instances["open-at-fork"]
    assert held["status"] == "complete"
    assert [s["status"] for s in held_spans] == ["complete"]
    finishes = [
        item
        for request in local_server.requests
        if request.path == "/api/v1/bulk"
        for item in request.json()["items"]
        if item["_type"] == "agent_instances/finish" and item["agent_instance_id"] == held["id"]
    ]
    assert len(finishes) == 1
    assert all(request.status == 200 for request in local_server.requests), [
        (r.path, r.status) for r in local_server.requests if r.status != 200
    ]
    # Nothing was sent twice: no retry was needed, so a replay would be a duplicate.
    assert all(instance["replays"] == 0 for instance, _ in instances.values())
    assert all(span["replays"] == 0 for _, spans in instances.values() for span in spans)
    expected = 3 * len(AGENT_OUTLINE) + 1
    stored = sum(len(spans) for _, spans in instances.values())
    assert stored == expected
    report(
        "fork: parent busy + run open at fork",
        sum(s["queued"] for s in per_process),
        Tally(expected, stored, 0, expected - stored),
    )
