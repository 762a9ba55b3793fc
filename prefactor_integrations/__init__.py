"""Trace LangChain, LangGraph and LlamaIndex agents into Prefactor.

With ``PREFACTOR_TRACING=true`` in the environment, importing this package is enough to trace
every LangChain / LangGraph run of the process (when LangChain is installed).
"""

from __future__ import annotations

import os

from prefactor_http._version import __version__

__all__ = ["__version__", "current_instance_id", "flush"]


def flush(timeout: float = 10.0) -> bool:
    """Send everything traced so far in this process, waiting at most ``timeout`` seconds.

    Returns True when nothing is left to send. Call it before a short-lived process (a script, a
    serverless function, a worker task) exits.
    """
    from prefactor_core import flush_all

    return bool(flush_all(timeout))


def current_instance_id() -> str | None:
    """The Prefactor agent instance of the run being traced in this context, or None.

    Call it inside a tool, graph node or query component, for example to record a quality
    score on the run (``client.record_quality(current_instance_id(), ...)``) or to show the id.
    """
    from prefactor_core import current_instance_id as core_current_instance_id

    return core_current_instance_id()


if os.environ.get("PREFACTOR_TRACING", "").strip().lower() in {"1", "true", "yes", "on"}:
    try:  # registers langchain-core's configure hook, which reads PREFACTOR_TRACING
        from . import langchain as _langchain  # noqa: F401
    except ImportError:  # LangChain is an optional extra
        pass
