"""Export counters and the `ExportStats` snapshot that ``stats()`` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Counters", "ExportHealth", "ExportStats"]

ExportHealth = Literal["healthy", "degraded", "stopped", "closed"]
"""``healthy``: the last request succeeded (or none was made). ``degraded``: the last request
failed and is being retried or was given up. ``stopped``: the API refused the token and export
stopped. ``closed``: the client was closed."""


class Counters:
    """Running totals of one client.

    ``queued``, ``dropped`` and ``dropped_runs`` are written only by producers (under the
    tracer's lock), ``source_coalesced`` likewise; every other field only by the export thread.
    """

    __slots__ = (
        "coalesced",
        "done",
        "dropped",
        "dropped_runs",
        "failed",
        "queued",
        "requests",
        "retried",
        "sent",
        "skipped",
        "source_coalesced",
        "truncated",
    )

    def __init__(self) -> None:
        self.queued = 0
        self.dropped = 0
        self.dropped_runs = 0
        self.source_coalesced = 0
        self.requests = 0
        self.sent = 0
        self.retried = 0
        self.coalesced = 0
        self.truncated = 0
        self.failed = 0
        self.skipped = 0
        self.done = 0

    @property
    def lost(self) -> int:
        """Operations given up after they were queued, whatever the cause."""
        return self.failed + self.skipped

    @property
    def pending(self) -> int:
        """Operations queued and not yet sent or given up."""
        return max(0, self.queued - self.done)

    def snapshot(
        self,
        health: ExportHealth = "healthy",
        export_stopped: bool = False,
        last_error: str | None = None,
    ) -> ExportStats:
        """The totals as an `ExportStats`, with the given health."""
        return ExportStats(
            queued=self.queued,
            sent=self.sent,
            retried=self.retried,
            coalesced=self.coalesced + self.source_coalesced,
            dropped=self.dropped,
            dropped_runs=self.dropped_runs,
            requests=self.requests,
            truncated=self.truncated,
            failed=self.failed,
            skipped=self.skipped,
            pending=self.pending,
            health=health,
            export_stopped=export_stopped,
            last_error=last_error,
        )


@dataclass(frozen=True)
class ExportStats:
    """A snapshot of one client's export.

    - ``queued``: operations accepted into the buffer.
    - ``sent``: API calls that succeeded (a create carrying its finish counts once).
    - ``retried``: attempts repeated after a transient failure.
    - ``coalesced``: span finishes sent inside their create instead of as a call of their own.
    - ``dropped``: operations refused because the buffer was full (or export had stopped),
      the operations of refused runs included.
    - ``dropped_runs``: runs refused whole because the buffer was near its bounds.
    - ``requests``: HTTP requests answered (one bulk request carries many operations).
    - ``truncated``: payload strings or containers cut to the size limits, and payloads
      withheld because the byte budget was full.
    - ``failed``: operations given up themselves: refused by the API (permanent errors),
      retries exhausted, or undeliverable at shutdown.
    - ``skipped``: operations not sent because one they depend on was lost (the rest of a run
      whose register failed, the finish of a span whose create failed). Operations lost with
      a dropped one are counted in ``dropped``; ``dropped``, ``failed`` and ``skipped`` never
      count the same operation.
    - ``pending``: operations accepted and not yet sent or given up.
    - ``health`` / ``export_stopped`` / ``last_error``: see `ExportHealth`; ``last_error``
      describes the most recent failure (never containing the token).
    """

    queued: int
    sent: int
    retried: int
    coalesced: int
    dropped: int
    dropped_runs: int
    requests: int
    truncated: int
    failed: int
    skipped: int
    pending: int
    health: ExportHealth
    export_stopped: bool
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict."""
        return asdict(self)

    def __getitem__(self, name: str) -> Any:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)
