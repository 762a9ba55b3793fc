"""A local, Prefactor-compatible API server backed by SQLite."""

from prefactor_http._version import __version__

__all__ = ["__version__"]
