"""The published ``prefactor-core`` 0.5 module path of `build_runtime_environment` (kept for
compatibility; it lives in `prefactor_core.utils`)."""

from __future__ import annotations

from prefactor_core.utils import build_runtime_environment

__all__ = ["build_runtime_environment"]
