"""The `prefactor-local` command run as a user runs it: `serve`, `show` and `token`."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from local_helpers import Api, client_for

from prefactor_local.cli import main
from prefactor_local.server import LocalServer
from prefactor_local.store import TraceStore

URL_LINE = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
CONSOLE_SCRIPT = Path(sys.executable).parent / "prefactor-local"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    env.update(extra)
    return env


class Served:
    """A running `serve` process and what it printed before it was ready."""

    def __init__(self, process: subprocess.Popen[str], lines: list[str], url: str) -> None:
        self.process = process
        self.lines = lines
        self.url = url

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def printed_token(self) -> str | None:
        for line in self.lines:
            if line.startswith("Token: ") and "from" not in line:
                return line.split()[1]
        return None


@contextmanager
def serve(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    command = [sys.executable, "-m", "prefactor_local", "serve", *args]
    if args and args[0] == "--console-script":
        command = [str(CONSOLE_SCRIPT), "serve", *args[1:]]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines_queue: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines_queue.put(line.rstrip("\n"))
        lines_queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    url = None
    try:
        while True:
            line = lines_queue.get(timeout=15)
            if line is None:
                raise AssertionError("serve exited early:\n" + "\n".join(lines))
            lines.append(line)
            match = URL_LINE.search(line)
            if match:
                url = match.group(1)
            if url and line.startswith("  export PREFACTOR_AGENT_ID"):
                break
        yield Served(process, lines, url)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefactor_local", *args],
        cwd=cwd,
        env=_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_serve_on_port_zero_prints_the_real_url_and_a_stored_token(tmp_path: Path) -> None:
    with serve(["--port", "0", "--no-access-log"], cwd=tmp_path) as served:
        token = served.printed_token()
        assert token, served.output
        port = int(served.url.rsplit(":", 1)[1])
        assert port > 0
        assert f"export PREFACTOR_API_URL={served.url}" in served.output
        assert f"export PREFACTOR_API_TOKEN={token}" in served.output
        assert "export PREFACTOR_AGENT_ID=my-agent" in served.output
        with httpx.Client(base_url=served.url) as client:
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/api/v1/ping", headers=headers).status_code == 200
            assert client.get("/api/v1/ping").status_code == 401
            register = client.post(
                "/api/v1/agent_instance/register",
                headers=headers,
                json={"agent_version": {"name": "cli"}, "agent_schema_version": {}},
            )
            assert register.status_code == 200
    assert served.process.returncode == 0
    db = tmp_path / ".prefactor" / "local.db"
    assert db.exists()
    assert TraceStore(db, read_only=True).get_meta("api_token") == token
    printed = run_cli("token", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout.strip() == token

    with serve(["--port", "0"], cwd=tmp_path) as again:
        assert again.printed_token() == token
        assert "stored in the database" in again.output
        with httpx.Client(base_url=again.url) as client:
            listed = client.get(
                "/api/v1/agent_instance", headers={"Authorization": f"Bearer {token}"}
            )
            assert listed.json()["pagination"]["item_count"] == 1


def test_console_script_with_token_from_the_environment_and_faults(tmp_path: Path) -> None:
    env = _env(PREFACTOR_API_TOKEN="env-token")
    faults = json.dumps({"error_rate": 1, "error_statuses": [503]})
    args = ["--console-script", "--port", "0", "--db", str(tmp_path / "x.db"), "--faults", faults]
    with serve(args, cwd=tmp_path, env=env) as served:
        assert "env-token" not in served.output
        assert "PREFACTOR_API_TOKEN" in served.output
        with httpx.Client(
            base_url=served.url, headers={"Authorization": "Bearer env-token"}
        ) as client:
            assert client.get("/api/v1/ping").status_code == 503
            assert client.get("/api/v1/agent_instance").status_code == 200
            assert client.delete("/api/v1/_admin/faults").status_code == 200
            assert client.get("/api/v1/ping").status_code == 200
    assert served.process.returncode == 0


def test_serve_rejects_bad_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for faults in ['{"error_rate": 5}', "not json"]:
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", "--faults", faults])
        assert exit_info.value.code == 2
        assert "--faults" in capsys.readouterr().err
    assert not (tmp_path / ".prefactor").exists()


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A database with two traces written through HTTP, with the server still running."""
    db = tmp_path_factory.mktemp("show") / "local.db"
    with LocalServer(db_path=db) as server, client_for(server) as client:
        api = Api(client)
        older = api.started(agent_id="agent-old")
        api.new_span(older["id"], schema_name="old:step")
        instance = api.started(agent_id="agent-new")
        iid = instance["id"]
        chain = api.new_span(iid, schema_name="demo:chain")["id"]
        llm = api.new_span(
            iid,
            schema_name="demo:llm",
            parent_span_id=chain,
            payload={"model_name": "fake-model"},
        )["id"]
        api.finish_span(
            llm,
            result_payload={
                "token_usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
            },
        )
        api.new_span(
            iid,
            schema_name="demo:tool",
            parent_span_id=chain,
            status="failed",
            payload={"tool_name": "calculator"},
            result_payload={"error": {"error_type": "ZeroDivisionError", "message": "oops"}},
        )
        yield db, [iid, older["id"]]


def test_show_prints_span_trees(filled: tuple[Path, list[str]]) -> None:
    db, (newest, older) = filled
    result = run_cli("show", "--db", str(db))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index(newest) < out.index(older)
    for text in [
        "demo:chain",
        "demo:llm",
        "demo:tool",
        "old:step",
        "active",
        "complete",
        "failed",
        "demo:llm fake-model  complete",  # the model is the label, not repeated
        "tokens=7 in / 5 out (12 total)",
        "demo:tool calculator  failed",
        "error=ZeroDivisionError: oops",
        " ms",
    ]:
        assert text in out, out
    assert out.index("demo:chain") < out.index("demo:llm") < out.index("demo:tool")


def test_show_filters(filled: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    db, (newest, older) = filled
    assert main(["show", older, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert older in out and newest not in out
    assert main(["show", "--db", str(db), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert newest in out and older not in out
    assert main(["show", "--db", str(db), "--agent", "agent-old", "--json"]) == 0
    assert [item["id"] for item in json.loads(capsys.readouterr().out)] == [older]


def test_show_json_nests_the_spans(filled: tuple[Path, list[str]]) -> None:
    db, (newest, older) = filled
    result = run_cli("show", "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [item["id"] for item in data] == [newest, older]
    chain = data[0]["spans"][0]
    assert chain["schema_name"] == "demo:chain"
    assert [child["schema_name"] for child in chain["children"]] == ["demo:llm", "demo:tool"]
    assert chain["children"][0]["result_payload"]["token_usage"]["total_tokens"] == 12
    assert isinstance(chain["children"][0]["duration_ms"], float)
    assert chain["duration_ms"] is None


def test_show_errors(
    tmp_path: Path, filled: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--db", str(tmp_path / "none.db")]) == 1
    assert "no database" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    assert main(["show", "nope", "--db", str(filled[0])]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["token", "--db", str(tmp_path / "none.db")]) == 1


@pytest.mark.parametrize("command", ["show", "token", "serve"])
def test_a_db_that_is_not_a_database_is_one_clear_line(tmp_path: Path, command: str) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    (tmp_path / "folder").mkdir()
    extra = ["--port", "0"] if command == "serve" else []
    for db, message in [
        ("notes.txt", "--db notes.txt is not a prefactor-local database (file is not a database)"),
        ("folder", "--db folder is a directory, not a database file"),
    ]:
        result = run_cli(command, "--db", db, *extra, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr == f"prefactor-local: {message}\n"
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_html_pointed_at_a_directory_is_one_clear_line(
    tmp_path: Path, filled: tuple[Path, list[str]]
) -> None:
    db = str(filled[0])
    (tmp_path / "pages").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for target, message in [
        ("pages", "--html pages is a directory; give a file name, e.g. pages/trace.html"),
        ("notes.txt/t.html", "cannot write --html notes.txt/t.html: notes.txt is not a directory"),
    ]:
        result = run_cli("show", "--db", db, "--html", target, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr == f"prefactor-local: {message}\n"
        assert result.stdout == ""
