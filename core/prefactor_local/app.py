"""The ASGI application: routes, bearer-token check, bounded JSON bodies, error envelopes.

Handlers are `async` only to read the body under a size limit. Writes run on the event loop
itself: each is one short SQLite transaction (WAL, synchronous=NORMAL), and a hop to a worker
thread and back would cost more than the write. Reads, which may return long lists, run in
Starlette's thread pool. Injected latency and hangs are `asyncio` sleeps either way.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from prefactor_local.errors import ApiError, validation_error
from prefactor_local.faults import FaultConfig, FaultInjector
from prefactor_local.json_body import parse_json_body
from prefactor_local.recording import RequestRecorder
from prefactor_local.service import Service
from prefactor_local.store import TraceStore

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
# A rejected body is still read (and thrown away) up to this much, so the client gets to read
# the 413 instead of a connection reset while it is still sending.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024

Handler = Callable[[Request], Awaitable[Response]]


class LocalApp:
    """The local Prefactor API as one ASGI callable.

    Layers, outermost first: request recording, fault injection, bearer-token check, routes.
    """

    def __init__(
        self,
        store: TraceStore,
        token: str,
        *,
        faults: FaultConfig | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        bulk: bool = True,
    ) -> None:
        self.store = store
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.bulk = bulk
        self.service = Service(store)
        self.starlette = Starlette(
            routes=self._routes(),
            exception_handlers={
                ApiError: _api_error_response,
                HTTPException: _http_error_response,
                ClientDisconnect: _client_gone,
                Exception: _internal_error_response,
            },
        )
        self.injector = FaultInjector(self._authenticated, faults, max_body_bytes=max_body_bytes)
        self.recorder = RequestRecorder(self.injector, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.recorder(scope, receive, send)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_api = scope["type"] == "http" and scope["path"].startswith("/api/")
        if is_api and not self._authorized(scope):
            error = ApiError(401, "unauthorized", "Missing or invalid bearer token")
            response = JSONResponse(error.to_body(), 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.starlette(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, credentials = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    # -- plumbing ---------------------------------------------------------------------------

    async def read_json(self, request: Request, *, optional: bool) -> Any:
        """The parsed body; 413 past the size limit, 400 for malformed JSON (see `json_body`)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                raise ApiError(400, "bad_request", "Invalid Content-Length header") from None
            if declared_size > limit:
                if declared_size <= _DRAIN_LIMIT_BYTES:
                    await _drain(request)
                raise _too_large(limit)
        body = bytearray()
        oversized = False
        drained = 0
        async for chunk in request.stream():
            if oversized:
                drained += len(chunk)
                if drained > _DRAIN_LIMIT_BYTES:
                    break
                continue
            body += chunk
            if len(body) > limit:
                oversized = True
                body = bytearray()
        if oversized:
            raise _too_large(limit)
        if not body.strip():
            if optional:
                return None
            raise validation_error({"body": ["is required"]})
        return parse_json_body(body)

    def _mutation(
        self, call: Callable[..., dict[str, Any]], *, path_param: str | None, optional: bool
    ) -> Handler:
        async def handler(request: Request) -> Response:
            body = await self.read_json(request, optional=optional)
            key = request.headers.get("idempotency-key")
            args: list[Any] = []
            if path_param is not None:
                args.append(request.path_params[path_param])
            return JSONResponse(call(*args, body, key))

        return handler

    def _read(self, call: Callable[..., dict[str, Any]], *, path_param: str | None) -> Handler:
        async def handler(request: Request) -> Response:
            if path_param is not None:
                result = await run_in_threadpool(call, request.path_params[path_param])
            else:
                result = await run_in_threadpool(call, dict(request.query_params))
            return JSONResponse(result)

        return handler

    def _agent_action(self, action: str) -> Handler:
        async def handler(request: Request) -> Response:
            body = await self.read_json(request, optional=True)
            key = request.headers.get("idempotency-key")
            agent_id = request.path_params["agent_id"]
            return JSONResponse(self.service.agent_action(agent_id, action, body, key))

        return handler

    # -- routes -----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        service = self.service
        mutate = self._mutation
        read = self._read
        return [
            Route("/api/v1/ping", self._ping, methods=["GET"]),
            Route(
                "/api/v1/agent_instance/register",
                mutate(service.register, path_param=None, optional=False),
                methods=["POST"],
            ),
            Route(
                "/api/v1/agent_instance",
                read(service.list_instances, path_param=None),
                methods=["GET"],
            ),
            Route(
                "/api/v1/agent_instance/{instance_id}",
                read(service.get_instance, path_param="instance_id"),
                methods=["GET"],
            ),
            *[
                Route(
                    f"/api/v1/agent_instance/{{instance_id}}/{action}",
                    mutate(call, path_param="instance_id", optional=optional),
                    methods=["POST"],
                )
                for action, call, optional in (
                    ("start", service.start_instance, True),
                    ("finish", service.finish_instance, True),
                    ("record_quality", service.record_quality, False),
                    ("terminate", service.terminate, True),
                )
            ],
            Route(
                "/api/v1/agent_spans",
                mutate(service.create_span, path_param=None, optional=False),
                methods=["POST"],
            ),
            Route(
                "/api/v1/agent_spans", read(service.list_spans, path_param=None), methods=["GET"]
            ),
            Route(
                "/api/v1/agent_spans/{span_id}/finish",
                mutate(service.finish_span, path_param="span_id", optional=True),
                methods=["POST"],
            ),
            *([Route("/api/v1/bulk", self._bulk, methods=["POST"])] if self.bulk else []),
            Route(
                "/api/v1/agent",
                mutate(service.create_agent, path_param=None, optional=False),
                methods=["POST"],
            ),
            Route("/api/v1/agent", read(service.list_agents, path_param=None), methods=["GET"]),
            Route("/api/v1/agent/show", read(service.show_agent, path_param=None), methods=["GET"]),
            Route(
                "/api/v1/agent/{agent_id}",
                read(service.get_agent, path_param="agent_id"),
                methods=["GET"],
            ),
            Route(
                "/api/v1/agent/{agent_id}",
                mutate(service.update_agent, path_param="agent_id", optional=False),
                methods=["PUT"],
            ),
            Route("/api/v1/agent/{agent_id}", self._agent_action("delete"), methods=["DELETE"]),
            Route(
                "/api/v1/agent/{agent_id}/retire", self._agent_action("retire"), methods=["POST"]
            ),
            Route(
                "/api/v1/agent/{agent_id}/reinstate",
                self._agent_action("reinstate"),
                methods=["POST"],
            ),
            Route("/api/v1/agent_schema_version", self._schema_versions, methods=["GET"]),
            Route("/api/v1/_admin/faults", self._faults, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v1/_admin/health", self._health, methods=["GET"]),
        ]

    async def _ping(self, request: Request) -> Response:
        return JSONResponse(self.service.ping())

    async def _bulk(self, request: Request) -> Response:
        body = await self.read_json(request, optional=False)
        return JSONResponse(self.service.bulk(body))

    async def _schema_versions(self, request: Request) -> Response:
        agent_id = request.query_params.get("agent_id") or None
        versions = await run_in_threadpool(self.store.list_agent_schema_versions, agent_id)
        return JSONResponse(
            {"status": "success", "summaries": versions, "pagination": None, "sorting": None}
        )

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "success", "details": {"status": "ok"}})

    async def _faults(self, request: Request) -> Response:
        if request.method == "PUT":
            body = await self.read_json(request, optional=False)
            self.injector.config = FaultConfig.from_json(body)
        elif request.method == "DELETE":
            self.injector.reset()
        details = {
            "faults": self.injector.config.to_json(),
            "injected": dict(self.injector.injected),
        }
        return JSONResponse({"status": "success", "details": details})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"Request body exceeds the limit of {limit} bytes")


async def _drain(request: Request) -> None:
    drained = 0
    async for chunk in request.stream():
        drained += len(chunk)
        if drained > _DRAIN_LIMIT_BYTES:
            return


async def _api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.to_body(), exc.status_code, headers=exc.headers)


async def _http_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = {
        "status": "error",
        "code": codes.get(exc.status_code, "http_error"),
        "message": str(exc.detail),
    }
    return JSONResponse(body, exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody is left to read this; the server discards it.
    return Response(status_code=499)


async def _internal_error_response(request: Request, exc: Exception) -> Response:
    body = {"status": "error", "code": "internal_error", "message": "Internal server error"}
    return JSONResponse(body, 500)
