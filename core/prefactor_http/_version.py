"""The distribution's version; every package re-exports it from here."""

__version__ = "0.1.0"

# The published prefactor-http 0.4 names of the package and its version.
PACKAGE_NAME = "prefactor-http"
PACKAGE_VERSION = __version__
