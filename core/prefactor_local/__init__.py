"""A local, Prefactor-compatible API server backed by SQLite.

`LocalServer` runs it in a background thread (tests, demos); `prefactor-local serve` runs it in
the foreground; `TraceStore` reads what it recorded and `Trace` turns that into span trees.
"""

from prefactor_http._version import __version__

__all__ = ["FaultConfig", "LocalServer", "Trace", "TraceStore", "__version__"]


def __getattr__(name: str) -> object:
    # Imported lazily so `import prefactor_local` stays cheap and free of server dependencies.
    if name == "LocalServer":
        from prefactor_local.server import LocalServer

        return LocalServer
    if name == "FaultConfig":
        from prefactor_local.faults import FaultConfig

        return FaultConfig
    if name == "TraceStore":
        from prefactor_local.store import TraceStore

        return TraceStore
    if name == "Trace":
        from prefactor_local.trace import Trace

        return Trace
    raise AttributeError(name)
