"""Framework-agnostic tracing core for Prefactor."""

from prefactor_http._version import __version__

__all__ = ["__version__"]
