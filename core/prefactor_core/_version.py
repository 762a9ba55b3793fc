"""The distribution's version (single source: `prefactor_http._version`)."""

from prefactor_http._version import __version__

__all__ = ["PACKAGE_NAME", "PACKAGE_VERSION", "__version__"]

# The published prefactor-core 0.5 names of the package and its version.
PACKAGE_NAME = "prefactor-core"
PACKAGE_VERSION = __version__
