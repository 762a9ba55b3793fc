"""The distribution's version (single source: `prefactor_http._version`)."""

from prefactor_http._version import __version__

__all__ = ["__version__"]
