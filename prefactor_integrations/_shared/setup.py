"""What both adapters' handlers set up the same way: client, versions, policy, stats and flush."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefactor_core.fields import check_bool
from prefactor_core.validation import PURPOSES

from .config import resolve_agent_id, resolve_client, resolve_environment_id
from .errors import InternalErrors
from .runs import RunTracker
from .schema import SpanTypeSpec, agent_version, build_agent_schema_version

if TYPE_CHECKING:
    from prefactor_core import PrefactorCoreClient, SchemaRegistry, Tracer
    from prefactor_core.payloads import PayloadPolicy

__all__ = [
    "AdapterSetup",
    "InstanceSettings",
    "default_schema_version",
    "flush_tracer",
    "run_stats",
]


@dataclass(frozen=True)
class InstanceSettings:
    """What every new agent instance is registered with."""

    agent_version: Mapping[str, Any]
    agent_schema_version: Mapping[str, Any]
    agent_id: str | None = None
    environment_id: str | None = None
    purpose: str | None = None

    def start_instance(self, tracer: Tracer, external_identifier: str) -> str:
        """Queue the register and start of a new instance with these settings; its id."""
        return tracer.start_instance(
            agent_version=self.agent_version,
            agent_schema_version=self.agent_schema_version,
            agent_id=self.agent_id,
            environment_id=self.environment_id,
            purpose=self.purpose,
            external_identifier=external_identifier,
        )


_defaults: dict[tuple[int, str], tuple[Sequence[SpanTypeSpec], dict[str, Any]]] = {}
_defaults_lock = threading.Lock()


def default_schema_version(specs: Sequence[SpanTypeSpec], prefix: str) -> dict[str, Any]:
    """:func:`build_agent_schema_version` of ``specs`` alone, computed once per process.

    Callers must not mutate the result.
    """
    key = (id(specs), prefix)
    with _defaults_lock:
        cached = _defaults.get(key)
        if cached is None or cached[0] is not specs:
            cached = (specs, build_agent_schema_version(specs, prefix=prefix))
            _defaults[key] = cached
        return cached[1]


@dataclass(frozen=True)
class AdapterSetup:
    """A handler's client, instance settings and payload policy, resolved once."""

    client: PrefactorCoreClient
    tracer: Tracer
    settings: InstanceSettings
    policy: PayloadPolicy | None

    @classmethod
    def resolve(
        cls,
        client: PrefactorCoreClient | None,
        *,
        sdk_entry: str,
        span_types: Sequence[SpanTypeSpec],
        schema_prefix: str,
        keep_keys: frozenset[str] = frozenset(),
        agent_name: str,
        agent_version_label: str | None,
        description: str = "",
        agent_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        capture_content: bool = True,
        mask: Callable[[Any], Any] | None = None,
        schema_registry: SchemaRegistry | None = None,
        use_client_registry: bool = False,
    ) -> AdapterSetup:
        """Resolve the client (argument or environment), ids, schema and agent versions.

        ``schema_registry`` entries win over ``span_types`` of the same name; with
        ``use_client_registry`` the client configuration's registry is used when none is given.
        ``capture_content=False`` and ``mask`` are applied on top of the client's own payload
        policy (texts then become sizes; names, ids and numbers stay, and the adapter's own
        ``keep_keys`` are added to the policy's whenever content is not captured). Raises
        ``ValueError`` for an unknown ``purpose`` and ``TypeError`` for a ``capture_content``
        that is not a bool, here rather than inside every run.
        """
        check_bool("capture_content", capture_content)
        if purpose is not None and purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}")
        core_client = resolve_client(client, sdk_entry=sdk_entry)
        if schema_registry is None and use_client_registry:
            config = getattr(core_client, "config", None)
            schema_registry = getattr(config, "schema_registry", None)
        if schema_registry is None:
            schema_version = default_schema_version(span_types, schema_prefix)
        else:
            from prefactor_core import SchemaRegistry

            registry = SchemaRegistry()
            registry.merge(schema_registry)
            schema_version = build_agent_schema_version(
                span_types, registry=registry, prefix=schema_prefix
            )
        changes: dict[str, Any] = {}
        if not capture_content:
            changes["capture_content"] = False
        if mask is not None:
            changes["mask"] = mask
        base = core_client.config.payload_policy
        if (not capture_content or not base.capture_content) and not keep_keys <= base.keep_keys:
            changes["keep_keys"] = base.keep_keys | keep_keys
        policy: PayloadPolicy | None = None
        if changes:
            policy = dataclasses.replace(base, **changes)
        settings = InstanceSettings(
            agent_version=agent_version(
                name=agent_name,
                version=agent_version_label,
                schema_version=schema_version,
                description=description,
            ),
            agent_schema_version=schema_version,
            agent_id=resolve_agent_id(agent_id),
            environment_id=resolve_environment_id(environment_id),
            purpose=purpose,
        )
        return cls(client=core_client, tracer=core_client.tracer, settings=settings, policy=policy)


def run_stats(tracker: RunTracker, errors: InternalErrors) -> dict[str, Any]:
    """A handler's ``stats()``: open trees and runs, abandoned trees, swallowed errors."""
    return {
        "open_roots": len(tracker),
        "open_runs": tracker.open_runs,
        "abandoned": tracker.abandoned,
        "untracked_runs": tracker.rejected,
        "internal_errors": errors.total,
        "internal_errors_by_place": errors.by_place(),
    }


def flush_tracer(tracer: Tracer, errors: InternalErrors, timeout: float) -> bool:
    """Block until everything traced so far was sent (or ``timeout`` passed); True if all.

    An error is counted in ``errors`` and reported as False.
    """
    try:
        return bool(tracer.flush(timeout))
    except Exception as exc:
        errors.record("flush", exc)
        return False
