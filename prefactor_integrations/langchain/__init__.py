"""LangChain and LangGraph tracing for Prefactor.

>>> from prefactor_integrations.langchain import PrefactorCallbackHandler
>>> handler = PrefactorCallbackHandler()          # PREFACTOR_API_URL / _TOKEN / _AGENT_ID
>>> agent.invoke(inputs, config={"callbacks": [handler]})

or ``instrument()`` once to trace every run in the process (``PREFACTOR_TRACING=true`` does the
same once this module is imported), ``uninstrument()`` to stop.
"""

from __future__ import annotations

from .._shared.config import PrefactorConfigurationError
from . import _quiet
from .handler import PrefactorCallbackHandler
from .instrument import ENV_TRACING, instrument, instrumented_handler, uninstrument
from .middleware import PrefactorMiddleware
from .schemas import LANGCHAIN_SPAN_TYPES
from .tool_schemas import LangChainToolSchemaConfig

_quiet.install()  # a termination reaches the caller without an "Error in ..." line first

__all__ = [
    "ENV_TRACING",
    "LANGCHAIN_SPAN_TYPES",
    "LangChainToolSchemaConfig",
    "PrefactorCallbackHandler",
    "PrefactorConfigurationError",
    "PrefactorMiddleware",
    "instrument",
    "instrumented_handler",
    "uninstrument",
]
