"""What a user reads when something is off: a pasted ``Bearer`` token, a rejected token, an API
that cannot be reached, and the output of a run the platform terminated."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import pytest
from _rel_support import ANSWER, HERE, QUESTION, answer_of, fast_http, make_agent, make_client

from prefactor_http.config import HttpClientConfig
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

SECRET = "pfl_this-token-is-secret"


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER\t"])
def test_a_token_pasted_with_its_bearer_prefix_works(
    local_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    prefix: str,
) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", local_server.url)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", prefix + local_server.token)
    monkeypatch.setenv("PREFACTOR_AGENT_ID", "bearer-agent")
    caplog.set_level(logging.DEBUG, logger="prefactor_http")

    handler = PrefactorCallbackHandler()
    result = make_agent().invoke(QUESTION, {"callbacks": [handler]})

    assert answer_of(result) == ANSWER
    assert handler.flush(timeout=10.0)
    (instance,) = local_server.store.list_instances()
    assert instance["status"] == "complete"
    assert "started with 'Bearer '" in caplog.text
    assert local_server.token not in caplog.text


@pytest.mark.parametrize(
    "token", ["", "   ", f"{SECRET} extra", f"{SECRET}\nX-Injected: 1", f"Bearer {SECRET}é"]
)
def test_a_refused_token_names_the_variable_and_the_fix_never_the_token(token: str) -> None:
    with pytest.raises(ValueError) as raised:
        HttpClientConfig(api_url="https://api.example.com", api_token=token)
    message = str(raised.value)
    assert "PREFACTOR_API_TOKEN" in message
    assert "set " in message  # what to do about it
    assert SECRET not in message


def test_a_missing_token_variable_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFACTOR_API_TOKEN", raising=False)
    monkeypatch.setenv("PREFACTOR_API_URL", "https://api.example.com")
    with pytest.raises(ValueError) as raised:
        HttpClientConfig.from_env()
    assert "PREFACTOR_API_TOKEN is not set: set it to your Prefactor API token" in str(raised.value)


def test_a_local_server_refusing_the_token_says_how_to_get_the_right_one() -> None:
    with LocalServer() as server, pytest.raises(PermissionError) as raised:
        LocalServer.ensure_running(server.url, token=SECRET)
    message = str(raised.value)
    assert server.url in message
    assert "PREFACTOR_API_TOKEN" in message and "prefactor-local token" in message
    assert SECRET not in message and server.token not in message


# -- an API that cannot be reached ------------------------------------------------------------

UNREACHABLE_SCRIPT = """
from _rel_support import make_agent
from prefactor_integrations.langchain import PrefactorCallbackHandler

handler = PrefactorCallbackHandler()
print("answer:", make_agent().invoke({"messages": [("user", "2 + 3?")]},
      {"callbacks": [handler]})["messages"][-1].content, flush=True)
"""


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_api_is_named_at_once_and_does_not_hold_up_the_exit() -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
        "PREFACTOR_API_URL": f"http://127.0.0.1:{port}",
        "PREFACTOR_API_TOKEN": SECRET,
        "PREFACTOR_AGENT_ID": "offline-agent",
        # A shutdown timeout the exit must not wait for: the API was never reachable.
        "PREFACTOR_SHUTDOWN_TIMEOUT": "120",
    }
    result = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,  # well under the shutdown timeout: the bound at exit is a short one
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "answer: The answer is 5" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "cannot reach" in line]
    assert len(warnings) == 1, result.stderr
    assert f"127.0.0.1:{port}" in warnings[0]
    assert "ConnectionRefusedError" in warnings[0]
    (exit_line,) = [line for line in result.stderr.splitlines() if "not be delivered" in line]
    assert "ConnectionRefusedError" in exit_line  # the cause, not just a count
    assert f"127.0.0.1:{port}" in exit_line and "never" in exit_line
    assert SECRET not in result.stderr + result.stdout


# -- a terminated run -------------------------------------------------------------------------


def test_a_terminated_run_reaches_the_caller_without_a_callback_error_line(
    local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import tool

    from prefactor_core import PrefactorTerminatedError

    handler = PrefactorCallbackHandler(make_client(fast_http(local_server)), agent_id="a")

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers (the platform terminates the run meanwhile)."""
        assert handler.flush(timeout=10.0)
        (instance,) = local_server.store.list_instances()
        local_server.terminate(instance["id"], reason="policy violation")
        RunnableLambda(lambda x: x, name="audit").invoke(a)  # its answer carries the signal
        assert handler.flush(timeout=10.0)
        return a + b

    caplog.set_level(logging.WARNING)
    with pytest.raises(PrefactorTerminatedError, match="policy violation"):
        make_agent([add]).invoke(QUESTION, {"callbacks": [handler]})
    handler.close(timeout=10.0)

    assert "PrefactorCallbackHandler" not in caplog.text
    assert "PrefactorTerminatedError" not in caplog.text


def test_other_callback_errors_are_still_logged_by_langchain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.runnables import RunnableLambda

    import prefactor_integrations.langchain  # noqa: F401 - installs the filter

    class Broken(BaseCallbackHandler):
        def on_chain_start(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("broken handler")

    caplog.set_level(logging.WARNING)
    assert RunnableLambda(lambda x: x + 1).invoke(1, {"callbacks": [Broken()]}) == 2
    assert "Error in Broken.on_chain_start callback: RuntimeError('broken handler')" in caplog.text
