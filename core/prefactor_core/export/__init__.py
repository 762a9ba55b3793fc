"""The exporter: buffer → pipe (prepare, order, batch) → sender → wire.

`thread` runs the one export thread; `pipe` holds a destination's buffer, intake and
dispatch and each client's handle on it; `ordering` keeps each run's operations in order;
`wire` encodes them; `sender` carries the bytes (`ApiSender` is the seam for another
destination); `stats` counts.
"""

from prefactor_core.export.sender import ApiSender, HttpSender, Reply
from prefactor_core.export.stats import ExportStats
from prefactor_core.export.thread import Exporter, flush_all, get_exporter

__all__ = [
    "ApiSender",
    "ExportStats",
    "Exporter",
    "HttpSender",
    "Reply",
    "flush_all",
    "get_exporter",
]
