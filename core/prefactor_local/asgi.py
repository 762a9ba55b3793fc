"""Small ASGI helpers shared by the request recorder and the fault injector."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

# Scope extensions set by the outermost layer for the inner ones.
RAW_SEND = "prefactor_local.raw_send"
RECORD = "prefactor_local.record"


def extension(scope: Scope, name: str) -> Any:
    """A value the outer layers put into `scope["extensions"]`, or None."""
    extensions = scope.get("extensions") or {}
    return extensions.get(name)


def with_extensions(scope: Scope, **values: Any) -> Scope:
    """A copy of `scope` with more `extensions` entries."""
    copied = dict(scope)
    copied["extensions"] = {**(scope.get("extensions") or {}), **values}
    return copied


async def buffer_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """Read the request body now (up to just past `limit`); return it and a replaying receive."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False) or size > limit:
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return body, replay


async def drop_connection(scope: Scope, send: Send) -> None:
    """Close the client's connection without writing a response.

    uvicorn answers 500 when an app fails before starting its response, so the socket is
    closed through the server's own transport, reachable from the `send` callable uvicorn
    handed to the outermost layer.
    """
    raw = extension(scope, RAW_SEND) or send
    cycle = getattr(raw, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise ConnectionAbortedError("injected connection drop")
    transport.close()
    if cycle is not None and hasattr(cycle, "disconnected"):
        cycle.disconnected = True
