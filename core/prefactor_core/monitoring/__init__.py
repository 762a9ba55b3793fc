"""Termination monitoring: one `TerminationMonitor` per agent instance."""

from prefactor_core.monitoring.registry import TerminationRegistry, termination_registry
from prefactor_core.monitoring.termination_monitor import TerminationMonitor

__all__ = ["TerminationMonitor", "TerminationRegistry", "termination_registry"]
