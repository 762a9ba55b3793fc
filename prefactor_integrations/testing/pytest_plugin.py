"""pytest plugin: the ``prefactor_trace`` fixture.

Enable it with ``pytest_plugins = ["prefactor_integrations.testing.pytest_plugin"]`` in a
``conftest.py`` (or through the ``prefactor`` entry point, when installed with one).

    def test_agent(prefactor_trace):
        agent.invoke(inputs, config={"callbacks": [prefactor_trace.langchain_handler()]})
        assert_outline(prefactor_trace.trace(), '''
            langchain:agent
              langchain:node model
                langchain:llm
        ''')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .recorder import TraceRecorder

__all__ = ["prefactor_trace"]


@pytest.fixture
def prefactor_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TraceRecorder]:
    """A :class:`~prefactor_integrations.testing.TraceRecorder` on a fresh local server.

    ``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN`` and ``PREFACTOR_AGENT_ID`` point at the
    server for the test (so handlers built from the environment report there too), and
    ``PREFACTOR_TRACING`` is cleared. Use ``.langchain_handler()``,
    ``.instrument_langchain()`` or ``.instrument_llama_index()`` to trace, then
    ``.traces()`` / ``.trace()`` / ``.instances()`` / ``.spans(instance_id)`` to read what was
    stored (after flushing). Everything is undone after the test.
    """
    recorder = TraceRecorder(tmp_path / "prefactor-local.db")
    with recorder:
        for name, value in recorder.environ().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("PREFACTOR_TRACING", raising=False)
        yield recorder
