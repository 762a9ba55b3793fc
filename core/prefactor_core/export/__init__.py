"""The exporter: one background thread that sends every client's operations in order."""

from prefactor_core.export.exporter import Exporter, flush_all, get_exporter
from prefactor_core.export.stats import ExportStats

__all__ = ["ExportStats", "Exporter", "flush_all", "get_exporter"]
