"""`LocalServer`: the local API on a loopback port in a background thread, for tests and demos."""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from prefactor_local.app import DEFAULT_MAX_BODY_BYTES, LocalApp
from prefactor_local.connections import ConnectionLimits, guarded_protocol
from prefactor_local.connections import NoDelayHTTPProtocol as NoDelayHTTPProtocol
from prefactor_local.faults import FaultConfig
from prefactor_local.recording import RecordedRequest
from prefactor_local.store import TraceStore

TOKEN_META_KEY = "api_token"
DEFAULT_DB_PATH = Path(".prefactor") / "local.db"
DEFAULT_PORT = 8787
HEALTH_PATH = "/api/v1/_admin/health"


class _PromptServer(uvicorn.Server):
    """A uvicorn server whose `request_exit()` takes effect at once instead of on its next
    0.1 s tick (every test stops a server, so this adds up)."""

    _wakeup: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            try:
                await asyncio.wait_for(self._wakeup.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
            should_exit = await self.on_tick(counter)

    def request_exit(self) -> None:
        """Ask the server to stop (thread-safe)."""
        self.should_exit = True
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:
                pass


def uvicorn_config(
    app: LocalApp, *, log_level: str, access_log: bool, limits: ConnectionLimits | None = None
) -> uvicorn.Config:
    """The uvicorn settings shared by `LocalServer` and `prefactor-local serve`."""
    limits = limits or ConnectionLimits()
    return uvicorn.Config(
        app,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_timeout,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )


def new_token() -> str:
    """A fresh random API token."""
    return "pfl_" + secrets.token_urlsafe(24)


def resolve_token(store: TraceStore, token: str | None) -> str:
    """The token to serve with: the given one, else the stored one, else a new one; stored."""
    chosen = token or store.get_meta(TOKEN_META_KEY) or new_token()
    if store.get_meta(TOKEN_META_KEY) != chosen:
        store.set_meta(TOKEN_META_KEY, chosen)
    return chosen


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def format_url(host: str, port: int) -> str:
    """`http://host:port`, with brackets around IPv6 hosts."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def ping(url: str, token: str, timeout: float = 2.0, path: str = "/api/v1/ping") -> int | None:
    """GET `path` (the token check by default); the HTTP status, or None if nothing answers."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


class LocalServer:
    """A real uvicorn server for the local API, running in a background thread.

    Use as a context manager, or call `start()` / `stop()`. `restart()` comes back on the same
    port with the same database (for outage tests). `db_path=None` uses a fresh temporary file
    that `stop()` removes. `bulk=False` serves no `/api/v1/bulk` (404), as some servers do.
    `connection_limits` bounds connections and how long a request may take to arrive.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: FaultConfig | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log_level: str = "warning",
        bulk: bool = True,
        connection_limits: ConnectionLimits | None = None,
    ) -> None:
        self.host = host
        self.connection_limits = connection_limits or ConnectionLimits()
        self.bulk = bulk
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.log_level = log_level
        self._temp_dir: str | None = None
        self._owns_db = db_path is None
        self.db_path = Path(db_path) if db_path is not None else self._temp_db()
        self.store = TraceStore(self.db_path)
        self.token = resolve_token(self.store, token)
        self._faults = faults or FaultConfig()
        self._app: LocalApp | None = None
        self._server: _PromptServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.attached = False

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:8787`."""
        return format_url(self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self.attached or (self._thread is not None and self._thread.is_alive())

    def start(self, timeout: float = 10.0) -> LocalServer:
        """Start serving and wait until the server answers."""
        if self.running:
            return self
        if not self.db_path.parent.exists() and self._owns_db:
            self.db_path = self._temp_db()
            self.store = TraceStore(self.db_path)
            self.token = resolve_token(self.store, self.token)
        self.store.open()
        sock = self._bind()
        self.port = sock.getsockname()[1]
        app = LocalApp(
            self.store,
            self.token,
            faults=self._faults,
            max_body_bytes=self.max_body_bytes,
            bulk=self.bulk,
        )
        config = uvicorn_config(
            app, log_level=self.log_level, access_log=False, limits=self.connection_limits
        )
        server = _PromptServer(config)
        self._app, self._server, self._error = app, server, None
        thread = threading.Thread(
            target=self._serve,
            args=(server, sock),
            name=f"prefactor-local:{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._stop_thread()
                raise RuntimeError(f"local server failed to start: {self._error!r}")
            time.sleep(0.005)
        # The admin route is immune to injected faults, unlike ping.
        while ping(self.url, self.token, path=HEALTH_PATH) is None:
            if time.monotonic() > deadline:
                self._stop_thread()
                raise RuntimeError("local server does not answer")
            time.sleep(0.01)
        return self

    def _bind(self) -> socket.socket:
        # A restart may race the old socket's release for a moment; retry briefly.
        deadline = time.monotonic() + 5
        while True:
            try:
                return bind_socket(self.host, self.port)
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _serve(self, server: _PromptServer, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving (in-flight hangs are cut off) and remove a temporary database."""
        if self.attached:
            return
        self._stop_thread()
        self.store.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _stop_thread(self) -> None:
        server, thread, app = self._server, self._thread, self._app
        if app is not None:
            self._faults = app.injector.config
            app.injector.closing = True
        if server is not None:
            server.request_exit()
        if thread is not None:
            thread.join(timeout=3)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout=3)
        self._server = self._thread = self._app = None

    def restart(self, downtime: float = 0.0) -> None:
        """Stop and start again on the same port with the same database and token."""
        self._stop_thread()
        self.store.close()
        if downtime > 0:
            time.sleep(downtime)
        self.start()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _temp_db(self) -> Path:
        self._temp_dir = tempfile.mkdtemp(prefix="prefactor-local-")
        return Path(self._temp_dir) / "local.db"

    # -- test controls ------------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        """The live fault configuration (mutate it, or assign a new `FaultConfig`)."""
        return self._app.injector.config if self._app is not None else self._faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self._faults = value
        if self._app is not None:
            self._app.injector.config = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received since the server (re)started, oldest first, faulted ones too."""
        return self._app.recorder.entries if self._app is not None else []

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        if self._app is not None:
            self._app.recorder.clear()

    @property
    def injected_faults(self) -> dict[str, int]:
        """How many faults of each kind fired since the server (re)started."""
        return dict(self._app.injector.injected) if self._app is not None else {}

    def terminate(self, instance_id: str, reason: str | None = None) -> dict[str, Any]:
        """Mark an instance `terminated` (as the platform would); returns the instance JSON."""
        from prefactor_local.service import Service

        details: dict[str, Any] = Service(self.store).terminate(instance_id, {"reason": reason})[
            "details"
        ]
        return details

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing a client at this server."""
        return {"PREFACTOR_API_URL": self.url, "PREFACTOR_API_TOKEN": self.token}

    # -- reuse a running server ----------------------------------------------------------------

    @classmethod
    def ensure_running(
        cls,
        url: str | None = None,
        *,
        db_path: str | Path | None = None,
        token: str | None = None,
    ) -> LocalServer:
        """Reuse a local server answering at `url`, or start one there (in this process).

        The token is taken from the argument, `PREFACTOR_API_TOKEN`, or the database. A server
        that answers 401 raises `PermissionError`. A reused server is not stopped by `stop()`.
        """
        target = url or format_url("127.0.0.1", DEFAULT_PORT)
        parts = urllib.parse.urlsplit(target)
        host = parts.hostname or "127.0.0.1"
        port = DEFAULT_PORT if parts.port is None else parts.port
        path = Path(db_path) if db_path is not None else DEFAULT_DB_PATH
        chosen = token or os.environ.get("PREFACTOR_API_TOKEN") or None
        if chosen is None and path.exists():
            reader = TraceStore(path)
            try:
                chosen = reader.get_meta(TOKEN_META_KEY)
            finally:
                reader.close()
        status = ping(target, chosen or "-", timeout=1.0)
        if status is None:
            return cls(db_path=path, token=chosen, host=host, port=port).start()
        if status == 401:
            source = (
                "the token argument"
                if token
                else (
                    "PREFACTOR_API_TOKEN"
                    if os.environ.get("PREFACTOR_API_TOKEN")
                    else f"the token stored in {path}"
                )
            )
            raise PermissionError(
                f"the server at {target} rejects the token from {source}: set "
                "PREFACTOR_API_TOKEN to the token it serves with (`prefactor-local token --db "
                "<its database>` prints it), or stop that server"
            )
        if status != 200:
            raise RuntimeError(f"the server at {target} answered ping with HTTP {status}")
        # The ping proved this token is the running server's, so storing it changes nothing.
        server = cls(db_path=path, token=chosen, host=host, port=port)
        server.attached = True
        return server
