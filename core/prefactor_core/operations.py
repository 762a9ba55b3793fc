"""Operations: the unit of work the exporter sends, one API call each (or fewer, coalesced)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum, auto
from typing import Any, NamedTuple

__all__ = ["LIFECYCLE_OPERATIONS", "Operation", "OperationType"]


class OperationType(Enum):
    """What an operation does."""

    REGISTER_AGENT_INSTANCE = auto()
    START_AGENT_INSTANCE = auto()
    FINISH_AGENT_INSTANCE = auto()
    RECORD_QUALITY = auto()
    CREATE_SPAN = auto()
    FINISH_SPAN = auto()

    # Members are singletons compared by identity: hash them so too (Enum's own hash is a
    # Python-level call, and an operation type is looked up for every operation).
    __hash__ = object.__hash__


LIFECYCLE_OPERATIONS = frozenset(
    {
        OperationType.REGISTER_AGENT_INSTANCE,
        OperationType.START_AGENT_INSTANCE,
        OperationType.FINISH_AGENT_INSTANCE,
        OperationType.RECORD_QUALITY,
    }
)
"""Instance-level operations; the default drop policy keeps room for them when spans are shed."""


class _Fields(NamedTuple):
    type: OperationType
    payload: dict[str, Any]
    timestamp: datetime | int
    idempotency_key: str | None
    metadata: dict[str, Any]


class Operation(_Fields):
    """One queued call: an immutable record (a tuple underneath, so it is cheap to make).

    ``payload`` holds the call's arguments (ids, names, raw payload objects: the exporter
    serialises them). ``timestamp`` is when the event happened (span start or finish, instance
    start or finish): an aware datetime, or an integer of nanoseconds since the Unix epoch (as
    `time.time_ns` gives; the tracer keeps its times so, and the export thread turns them into
    datetimes). ``idempotency_key`` is sent with every attempt of the call; when None the
    exporter makes one when it first sees the operation. ``metadata`` carries options for the
    exporter, such as the span's ``policy`` (`prefactor_core.payloads.PayloadPolicy`).

    Payload keys by type:

    - REGISTER_AGENT_INSTANCE: ``instance_id, agent_version, agent_schema_version`` and the
      optional ``agent_id, environment_id, purpose, external_identifier``.
    - START_AGENT_INSTANCE: ``instance_id``.
    - FINISH_AGENT_INSTANCE: ``instance_id, status``.
    - RECORD_QUALITY: ``instance_id, name, payload``.
    - CREATE_SPAN: ``span_id, instance_id, schema_name, parent_span_id, payload`` and, for a span
      already finished, ``status, result_payload, finished_at``.
    - FINISH_SPAN: ``span_id, instance_id, status, result_payload``.
    """

    __slots__ = ()

    def __new__(
        cls,
        type: OperationType,
        payload: dict[str, Any],
        timestamp: datetime | int,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Operation:
        fields = (type, payload, timestamp, idempotency_key, {} if metadata is None else metadata)
        return tuple.__new__(cls, fields)

    @property
    def instance_id(self) -> str | None:
        """The agent instance the operation belongs to."""
        value = self.payload.get("instance_id")
        return value if isinstance(value, str) else None
