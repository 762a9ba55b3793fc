"""What to tell the user when the API answers with a redirect (requests are never followed)."""

from __future__ import annotations

__all__ = ["redirect_message"]

_API_PREFIX = "/api/v1"


def redirect_message(location: str | None, status: int) -> str:
    """``redirected to <location> (HTTP <status>): set PREFACTOR_API_URL to <its base>``.

    The base is the location up to its ``/api/v1`` path, which is what the URL setting holds.
    """
    if not location:
        return f"redirected to an unknown location (HTTP {status}): check PREFACTOR_API_URL"
    cut = location.find(_API_PREFIX)
    base = location[:cut] if cut > 0 else location
    return f"redirected to {location} (HTTP {status}): set PREFACTOR_API_URL to {base.rstrip('/')}"
