"""`prefactor-local`: run the local server (`serve`) and print stored traces (`show`)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from prefactor_http._version import __version__
from prefactor_local.errors import ApiError
from prefactor_local.faults import FaultConfig
from prefactor_local.store import TraceStore

DEFAULT_DB = Path(".prefactor") / "local.db"
DEFAULT_AGENT_ID = "my-agent"  # what `serve` suggests for PREFACTOR_AGENT_ID


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `prefactor-local`."""
    parser = argparse.ArgumentParser(
        prog="prefactor-local",
        description="A local, Prefactor-compatible API server backed by SQLite.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    serve.add_argument(
        "--port", type=int, default=8787, help="port (default: 8787; 0 picks a free one)"
    )
    serve.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"database (default: {DEFAULT_DB})"
    )
    serve.add_argument(
        "--token",
        help="API token (default: $PREFACTOR_API_TOKEN, else the one stored in the database, "
        "else a new one)",
    )
    serve.add_argument(
        "--faults", metavar="JSON", help="fault injection settings, e.g. '{\"error_rate\": 0.1}'"
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=5 * 1024 * 1024, help="request body limit"
    )
    serve.add_argument(
        "--no-bulk", action="store_true", help="serve no /api/v1/bulk endpoint (answers 404)"
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="open connections at once (default: the open-file limit less a reserve, at most "
        "1000); at the limit the longest-idle one is closed, else the new one gets a 503",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time for a new connection to send its request head (default: 10; then 408)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time for a request body to arrive once its head has (default: 30)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=5,
        metavar="SECONDS",
        help="close an idle keep-alive connection after this long (default: 5)",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")

    show = commands.add_parser("show", help="print recorded agent instances and span trees")
    show.add_argument("instance_id", nargs="?", metavar="INSTANCE_ID", help="only this instance")
    show.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"database (default: {DEFAULT_DB})"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of trees")
    show.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write an HTML page with a waterfall of each trace instead of printing trees",
    )
    show.add_argument("--agent", metavar="AGENT_ID", help="only instances of this agent")
    show.add_argument(
        "--limit", type=int, default=10, metavar="N", help="newest N instances (default: 10)"
    )

    token = commands.add_parser("token", help="print the API token stored in the database")
    token.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help=f"database (default: {DEFAULT_DB})"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `prefactor-local` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args, parser)
        if args.command == "show":
            return show(args)
        return print_token(args)
    except sqlite3.DatabaseError as exc:
        _fail(_database_problem(args.db, exc))
        return 1


def _fail(message: str) -> None:
    print(f"prefactor-local: {message}", file=sys.stderr)


def _database_problem(db: Path, exc: sqlite3.DatabaseError) -> str:
    """One line saying why `--db` cannot be used."""
    if db.is_dir():
        return f"--db {db} is a directory, not a database file"
    return f"--db {db} is not a prefactor-local database ({exc})"


def serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    from prefactor_local.app import LocalApp
    from prefactor_local.connections import ConnectionLimits
    from prefactor_local.server import bind_socket, format_url, resolve_token, uvicorn_config

    faults = None
    if args.faults:
        try:
            faults = FaultConfig.from_json(json.loads(args.faults))
        except (ValueError, ApiError) as exc:
            parser.error(f"--faults: {exc}")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    try:
        limits = ConnectionLimits(
            max_connections=args.max_connections,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keep_alive_timeout=args.keep_alive_timeout,
        )
    except ValueError as exc:
        parser.error(f"--{str(exc).split(' ', 1)[0].replace('_', '-')}: {exc}")
    store = TraceStore(args.db).open()
    given = args.token or os.environ.get("PREFACTOR_API_TOKEN") or None
    source = "--token" if args.token else "PREFACTOR_API_TOKEN" if given else None
    stored_before = store.get_meta("api_token")
    token = resolve_token(store, given)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"prefactor-local: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    url = format_url(args.host, sock.getsockname()[1])
    app = LocalApp(
        store, token, faults=faults, max_body_bytes=args.max_body_bytes, bulk=not args.no_bulk
    )
    print(f"Prefactor local server listening on {url}")
    print(f"Database: {args.db.resolve()}")
    if source is not None:
        print(f"Token: from {source}")
    else:
        note = "stored in the database" if stored_before == token else "new, stored in the database"
        print(f"Token: {token}  ({note})")
    if not _is_loopback(args.host):
        print("Warning: listening beyond loopback; anyone who can reach it needs only the token.")
    if faults is not None:
        print(f"Fault injection: {json.dumps(faults.to_json())}")
    print("Point a client at it:")
    print(f"  export PREFACTOR_API_URL={url}")
    print(f"  export PREFACTOR_API_TOKEN={token if source is None else '<your token>'}")
    agent = os.environ.get("PREFACTOR_AGENT_ID", "").strip() or DEFAULT_AGENT_ID
    print(f"  export PREFACTOR_AGENT_ID={agent}  # any id: unknown agents are created on first use")
    sys.stdout.flush()
    config = uvicorn_config(
        app, log_level=args.log_level, access_log=not args.no_access_log, limits=limits
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl+C after its graceful shutdown; that is a normal stop here.
        pass
    finally:
        store.close()
    print("Stopped.")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_existing(db: Path) -> TraceStore | None:
    if not db.exists():
        print(
            f"prefactor-local: no database at {db} (start one with `prefactor-local serve`)",
            file=sys.stderr,
        )
        return None
    return TraceStore(db, read_only=True)


def show(args: argparse.Namespace) -> int:
    """Print traces as rich trees, as JSON with `--json`, or write an HTML page with `--html`."""
    from prefactor_local.render import render_traces
    from prefactor_local.trace import Trace, load_traces

    if args.limit is not None and args.limit < 1:
        print("prefactor-local: --limit must be at least 1", file=sys.stderr)
        return 2
    store = _open_existing(args.db)
    if store is None:
        return 1
    try:
        if args.instance_id:
            trace = Trace.load(store, args.instance_id)
            if trace is None:
                print(f"prefactor-local: no agent instance {args.instance_id!r}", file=sys.stderr)
                return 1
            traces = [trace]
        else:
            traces = load_traces(store, agent_id=args.agent, limit=args.limit)
    finally:
        store.close()
    if args.html is not None:
        from prefactor_local.waterfall import render_html_page

        path: Path = args.html
        if path.is_dir():
            _fail(f"--html {path} is a directory; give a file name, e.g. {path / 'trace.html'}")
            return 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_html_page(traces), encoding="utf-8")
        except (FileExistsError, NotADirectoryError) as exc:
            _fail(f"cannot write --html {path}: {exc.filename} is not a directory")
            return 1
        except OSError as exc:
            _fail(f"cannot write --html {path}: {exc.strerror or exc}")
            return 1
        print(f"Wrote {len(traces)} trace{'' if len(traces) == 1 else 's'} to {path.resolve()}")
    elif args.json:
        print(json.dumps([trace.to_dict() for trace in traces], indent=2))
    else:
        render_traces(traces, Console())
    return 0


def print_token(args: argparse.Namespace) -> int:
    """Print the token stored in the database."""
    store = _open_existing(args.db)
    if store is None:
        return 1
    try:
        token = store.get_meta("api_token")
    finally:
        store.close()
    if token is None:
        print("prefactor-local: the database has no token yet", file=sys.stderr)
        return 1
    print(token)
    return 0
