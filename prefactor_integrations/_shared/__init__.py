"""Bookkeeping shared by the framework adapters (API kept stable: extend, don't break).

* :mod:`.runs` - :class:`RunTracker`: open runs grouped by root run (instance id, span id, last
  activity), bounded, with an idle sweep, folding of plumbing runs (``fold``/``owner``) and a
  memory of abandoned trees (``is_abandoned``/``mark_abandoned``); :func:`cancel_abandoned`
  finishes an abandoned tree ``cancelled``.
* :mod:`.ambient` - the ambient span (``SpanContextStack``) for nesting across frameworks:
  ``ambient_parent``, ``prefer_deeper``, ``push_span``/``remove_span``, ``prune_closed``.
* :mod:`.config` - the client from arguments or environment; agent/environment ids.
* :mod:`.schema` - span-type specs (``span_type``, ``object_of``, ``array_of``) -> agent schema
  version with a content-hash identifier.
* :mod:`.setup` - :class:`AdapterSetup` (client, instance settings, payload policy resolved once
  per handler), ``run_stats`` and ``flush_tracer``.
* :mod:`.status` - :func:`status_for`: the finish status for a run that raised.
* :mod:`.errors` - :func:`error_info` and :class:`InternalErrors` (swallowed-error counter).
* :mod:`.bounded` - :class:`BoundedMap`, a thread-safe LRU map.
"""

from __future__ import annotations

from .ambient import (
    ambient_parent,
    ambient_span,
    current_span_id,
    prefer_deeper,
    prune_closed,
    push_span,
    remove_span,
    remove_spans,
)
from .bounded import BoundedMap
from .config import (
    ENV_AGENT_ID,
    ENV_API_TOKEN,
    ENV_API_URL,
    ENV_ENVIRONMENT_ID,
    PrefactorConfigurationError,
    client_from_env,
    env_flag,
    resolve_agent_id,
    resolve_client,
    resolve_environment_id,
)
from .errors import InternalErrors, error_info
from .runs import RootState, RunState, RunTracker, cancel_abandoned
from .schema import (
    ERROR_SCHEMA,
    FieldType,
    SpanFamily,
    SpanTypeSpec,
    agent_version,
    array_of,
    build_agent_schema_version,
    content_hash,
    object_of,
    object_schema,
    properties,
    register_span_types,
    span_type,
)
from .setup import AdapterSetup, InstanceSettings, default_schema_version, flush_tracer, run_stats
from .status import CANCELLATION, FinishStatus, is_cancellation, status_for

__all__ = [
    "CANCELLATION",
    "ENV_AGENT_ID",
    "ENV_API_TOKEN",
    "ENV_API_URL",
    "ENV_ENVIRONMENT_ID",
    "ERROR_SCHEMA",
    "AdapterSetup",
    "BoundedMap",
    "FieldType",
    "FinishStatus",
    "InstanceSettings",
    "InternalErrors",
    "PrefactorConfigurationError",
    "RootState",
    "RunState",
    "RunTracker",
    "SpanFamily",
    "SpanTypeSpec",
    "agent_version",
    "ambient_parent",
    "ambient_span",
    "array_of",
    "build_agent_schema_version",
    "cancel_abandoned",
    "client_from_env",
    "content_hash",
    "current_span_id",
    "default_schema_version",
    "env_flag",
    "error_info",
    "flush_tracer",
    "is_cancellation",
    "object_of",
    "object_schema",
    "prefer_deeper",
    "properties",
    "prune_closed",
    "push_span",
    "register_span_types",
    "remove_span",
    "remove_spans",
    "resolve_agent_id",
    "resolve_client",
    "resolve_environment_id",
    "run_stats",
    "span_type",
    "status_for",
]
