"""Typed async client for the Prefactor REST API."""

from prefactor_http._version import __version__

__all__ = ["__version__"]
