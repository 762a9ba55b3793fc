"""Prefactor tracing for LlamaIndex: queries, chat engines, agents and workflows.

>>> from prefactor_integrations.llama_index import instrument
>>> instrument()  # configured from PREFACTOR_API_URL / PREFACTOR_API_TOKEN / PREFACTOR_AGENT_ID

Every dispatcher span without a parent becomes one Prefactor agent instance whose span tree
mirrors the run (query -> retrieve -> embedding, synthesize -> llm, agent -> workflow step -> tool).
"""

from __future__ import annotations

from .handlers import PrefactorEventHandler, PrefactorSpanHandler
from .instrument import instrument, instrumented_handler, uninstrument
from .schemas import LLAMA_INDEX_SPAN_TYPES

__all__ = [
    "LLAMA_INDEX_SPAN_TYPES",
    "PrefactorEventHandler",
    "PrefactorSpanHandler",
    "instrument",
    "instrumented_handler",
    "uninstrument",
]
