"""`prefactor-local show` on a real terminal: stored text cannot drive the terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from local_helpers import Api, client_for

from prefactor_local.server import LocalServer

CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write "rm -rf ~" to the clipboard
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;pwned\x07"  # set the window title
CURSOR_UP = "\x1b[5A"  # a CSI sequence that moves the cursor over earlier lines
MARKUP = "[bold]loud[/bold] [link=https://evil.example]click[/link]"
# What rich itself writes for colours: SGR only. Anything else came from stored data.
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m")


def _run_in_pty(*args: str) -> str:
    """Run `prefactor-local` with its output on a pseudo-terminal; everything it wrote."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    env.update(COLUMNS="400", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefactor_local", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        process.wait(timeout=30)
    assert process.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8")


def _hostile_database(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "local.db"
    with LocalServer(db_path=db) as server, client_for(server) as client:
        api = Api(client)
        instance = api.started(agent_id=f"a{TITLE}[bold]x[/bold]")
        iid = instance["id"]
        chain = api.new_span(iid, schema_name="demo:chain", payload={"model_name": CURSOR_UP})
        api.new_span(
            iid,
            schema_name="demo:tool",
            parent_span_id=chain["id"],
            status="failed",
            payload={"tool_name": f"fetch{CLEAR}{MARKUP}"},
            result_payload={
                "error": {"error_type": "HTTPError", "message": f"page said {CLIPBOARD}\u202eok"}
            },
        )
        server.terminate(iid, reason=f"stopped{CLEAR}\nfake line")
    return db, iid


def test_show_prints_escape_sequences_from_stored_spans_visibly(tmp_path: Path) -> None:
    db, iid = _hostile_database(tmp_path)
    out = _run_in_pty("show", "--db", str(db))
    assert iid in out
    plain = OWN_SEQUENCES.sub("", out)
    assert "\x1b" not in plain and "\x07" not in plain and "\u202e" not in plain, repr(out)
    for shown in [
        r"page said \x1b]52;c;cm0gLXJmIH4=\x07\u202eok",  # the error highlight
        r"fetch\x1b[2J\x1b[H" + MARKUP,  # the tool label, markup kept literally
        r"demo:chain \x1b[5A",  # the model label
        r"agent=a\x1b]0;pwned\x07[bold]x[/bold]",  # the instance line
        r"termination reason: stopped\x1b[2J\x1b[H\nfake line",  # no fake line break
    ]:
        assert shown in plain, repr(out)
    assert "https://evil.example]click" in plain
    assert "\x1b]8;" not in out  # no hyperlink was made of the [link=...] markup
