"""The trace picture: HTML waterfalls of stored traces, `show --html`, and a real browser render."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from local_helpers import Api, client_for

from prefactor_local.cli import main
from prefactor_local.server import LocalServer
from prefactor_local.store import TraceStore
from prefactor_local.trace import Trace, Traces, load_traces
from prefactor_local.waterfall import (
    STATUS_COLOURS,
    render_html_page,
    render_trace_html,
    render_traces_html,
)

T0 = "2026-05-01T10:00:"
HOSTILE = '<script>alert("x")</script>'
WINDOW = (1200, 800)
INSTALL_HINT = (
    "headless Chromium is needed for the trace-picture test: install it with "
    "`apt-get update && apt-get install -y chromium` (as root), or set "
    "PREFACTOR_SKIP_BROWSER_TESTS=1 to skip this test"
)


def at(seconds: float) -> str:
    """A timestamp `seconds` after 10:00:00 on the test day."""
    return f"{T0}{seconds:06.3f}Z"


def started_at_zero(api: Api, agent_id: str) -> str:
    """Register and start an instance at 10:00:00 (so span times line up with it)."""
    iid: str = api.register(agent_id=agent_id)["id"]
    response = api.post(f"/api/v1/agent_instance/{iid}/start", {"timestamp": at(0)})
    assert response.status_code == 200, response.text
    return iid


def fill_agent_trace(api: Api, agent_id: str = "support-agent") -> tuple[str, dict[str, str]]:
    """A realistic finished trace: agent root, chains, llms with tokens, tools (one failed)."""
    iid = started_at_zero(api, agent_id)
    ids: dict[str, str] = {}

    def span(key: str, schema: str, start: float, parent: str | None, **fields: Any) -> None:
        if parent is not None:
            fields["parent_span_id"] = ids[parent]
        ids[key] = api.new_span(iid, schema_name=schema, started_at=at(start), **fields)["id"]

    def finish(key: str, end: float, **body: Any) -> None:
        response = api.finish_span(ids[key], timestamp=at(end), **body)
        assert response.status_code == 200, response.text

    span("agent", "langgraph:agent", 0.0, None, payload={"name": "support_agent"})
    span("plan", "langchain:chain", 0.05, "agent", payload={"metadata": {"langgraph_node": "plan"}})
    span(
        "llm1",
        "langchain:llm",
        0.1,
        "plan",
        payload={"model_name": "gpt-4o-mini", "inputs": {"messages": ["Where is order 1042?"]}},
    )
    finish(
        "llm1",
        1.3,
        result_payload={
            "token_usage": {"prompt_tokens": 412, "completion_tokens": 86, "total_tokens": 498}
        },
    )
    finish("plan", 1.35)
    span("search", "langchain:tool", 1.4, "agent", payload={"tool_name": "search_docs"})
    finish("search", 2.1, result_payload={"output": "3 documents"})
    span(
        "lookup",
        "langchain:tool",
        2.15,
        "agent",
        status="failed",
        finished_at=at(2.6),
        payload={"tool_name": "lookup_order", "inputs": {"order_id": 1042}},
        result_payload={
            "error": {
                "error_type": "TimeoutError",
                "message": "order service did not answer within 400 ms",
            }
        },
    )
    span(
        "answer",
        "langchain:chain",
        2.65,
        "agent",
        payload={"metadata": {"langgraph_node": "answer"}},
    )
    span("retrieve", "langchain:retriever", 2.7, "answer", payload={"name": "kb_retriever"})
    finish("retrieve", 3.0)
    span("llm2", "langchain:llm", 3.05, "answer", payload={"model_name": "claude-sonnet-4"})
    finish(
        "llm2",
        4.05,
        result_payload={"token_usage": {"input_tokens": 1210, "output_tokens": 240}},
    )
    finish("answer", 4.1)
    span(
        "notify",
        "langchain:tool",
        4.1,
        "agent",
        status="cancelled",
        finished_at=at(4.15),
        payload={"tool_name": "send_email"},
    )
    finish("agent", 4.2)
    response = api.post(
        f"/api/v1/agent_instance/{iid}/finish", {"status": "complete", "timestamp": at(4.25)}
    )
    assert response.status_code == 200, response.text
    return iid, ids


def fill_hostile_trace(api: Api) -> str:
    """A trace whose payloads carry markup, still running, with a span never started."""
    iid = started_at_zero(api, "agent-hostile")
    root = api.new_span(
        iid, schema_name="demo:<b>chain</b>", started_at=at(0), payload={"name": HOSTILE}
    )["id"]
    api.new_span(
        iid,
        schema_name="demo:tool",
        parent_span_id=root,
        status="failed",
        started_at=at(0.2),
        finished_at=at(0.5),
        payload={"tool_name": HOSTILE, "query": "a & b \"quoted\" 'single'"},
        result_payload={"error": {"error_type": "ValueError", "message": HOSTILE}},
    )
    api.new_span(iid, schema_name="demo:llm", parent_span_id=root, started_at=at(0.6))
    api.new_span(iid, schema_name="demo:later", parent_span_id=root, status="pending")
    return iid


# -- HTML structure ---------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every start tag with its attributes, every text run, and whether nesting balanced."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self.stack: list[str] = []
        self.mismatched: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {key: value or "" for key, value in attrs}))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.mismatched.append(tag)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and (cls is None or cls in attrs.get("class", "").split())
        ]

    @property
    def text(self) -> str:
        return " ".join(self.texts)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Trace]]:
    """The realistic and the hostile trace, read back from a server filled over HTTP."""
    db = tmp_path_factory.mktemp("html") / "local.db"
    with LocalServer(db_path=db) as server, client_for(server) as client:
        api = Api(client)
        agent_id, _ = fill_agent_trace(api)
        hostile_id = fill_hostile_trace(api)
        agent = Trace.load(server.store, agent_id)
        hostile = Trace.load(server.store, hostile_id)
        assert agent is not None and hostile is not None
        yield {"agent": agent, "hostile": hostile}


def _bar_geometry(parsed: Elements) -> list[tuple[str, float, float]]:
    found = []
    for attrs in parsed.find("span", "pf-wf-bar"):
        style = attrs["style"]
        left = re.search(r"left:([\d.]+)%", style)
        width = re.search(r"width:([\d.]+)%", style)
        assert left and width, style
        found.append((attrs["data-status"], float(left.group(1)), float(width.group(1))))
    return found


def test_waterfall_rows_follow_the_tree_with_positions_on_one_axis(
    traces: dict[str, Trace],
) -> None:
    trace = traces["agent"]
    markup = render_trace_html(trace)
    parsed = Elements(markup)
    assert parsed.mismatched == [] and parsed.stack == []
    rows = parsed.find("div", "pf-wf-span")
    assert [row["data-span-id"] for row in rows] == [node.id for node in trace.walk()]
    assert [int(row["data-depth"]) for row in rows] == [0, 1, 2, 1, 1, 1, 2, 2, 1]
    schemas = [text for text in parsed.texts if text.startswith(("langchain:", "langgraph:"))]
    assert schemas[:3] == ["langgraph:agent", "langchain:chain", "langchain:llm"]
    text = parsed.text
    for label in ["support_agent", "plan", "gpt-4o-mini", "search_docs", "lookup_order"]:
        assert label in text
    for label in ["answer", "kb_retriever", "claude-sonnet-4", "send_email"]:
        assert label in text

    # The axis is 0..5 s in whole seconds; bars sit at start/axis and span duration/axis.
    ticks = re.findall(r'class="pf-wf-tick[^"]*" style="left:([\d.]+)%">([^<]*)<', markup)
    labels = ["0", "1 s", "2 s", "3 s", "4 s", "5 s"]
    assert ticks == [(str(20 * index), label) for index, label in enumerate(labels)]
    bars = _bar_geometry(parsed)
    assert [status for status, _, _ in bars] == [
        "complete", "complete", "complete", "complete", "failed",
        "complete", "complete", "complete", "cancelled",
    ]  # fmt: skip
    root, _, llm1, _, lookup, *_ = bars
    assert root[1] == 0 and root[2] == pytest.approx(84.0, abs=0.01)
    assert llm1[1] == pytest.approx(2.0, abs=0.01) and llm1[2] == pytest.approx(24.0, abs=0.01)
    assert lookup[1] == pytest.approx(43.0, abs=0.01)
    assert lookup[2] == pytest.approx(9.0, abs=0.01)


def test_header_tokens_errors_legend_and_hover_text(traces: dict[str, Trace]) -> None:
    trace = traces["agent"]
    markup = render_trace_html(trace)
    parsed = Elements(markup)
    text = parsed.text
    assert f"Agent instance {trace.id} complete" in text
    for expected in [
        "Agent support-agent",
        "Duration 4.25 s",
        "Spans 9",
        "Started 2026-05-01 10:00:00 UTC",
    ]:
        assert expected in text
    badge = parsed.find("span", "pf-wf-badge")[0]
    assert STATUS_COLOURS["complete"] in badge["style"]
    swatches = [attrs["style"] for attrs in parsed.find("i", "pf-wf-swatch")]
    assert "complete failed cancelled active terminated" in text
    for status in ["complete", "failed", "cancelled", "active", "terminated"]:
        assert any(STATUS_COLOURS[status] in style for style in swatches)
    assert "Tokens in / out / total" in text
    cells = re.findall(r'<div class="pf-wf-num pf-wf-tokens">(.*?)</div>', markup)
    assert [Elements(cell).text for cell in cells if cell] == [
        "412 / 86 / 498",
        "1,210 / 240 / 1,450",
    ]
    errors = parsed.find("div", "pf-wf-errline")
    assert len(errors) == 1
    assert errors[0]["title"] == "TimeoutError: order service did not answer within 400 ms"
    assert "Error TimeoutError: order service did not answer within 400 ms" in text
    titles = [attrs["title"] for attrs in parsed.find("div", "pf-wf-line") if "title" in attrs]
    llm_title = next(title for title in titles if title.startswith("langchain:llm · complete"))
    assert "model: gpt-4o-mini" in llm_title
    assert "tokens: prompt 412, completion 86, total 498" in llm_title
    assert "start +100 ms · duration 1.20 s" in llm_title
    assert 'inputs: {"messages":["Where is order 1042?"]}' in llm_title


def test_payload_markup_is_escaped_everywhere(traces: dict[str, Trace]) -> None:
    trace = traces["hostile"]
    markup = render_trace_html(trace)
    assert "<script" not in markup.lower()
    assert "<b>chain</b>" not in markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in markup
    parsed = Elements(markup)
    assert parsed.mismatched == [] and parsed.stack == []
    assert {tag for tag, _ in parsed.tags} <= {"div", "section", "span", "i", "b", "small", "style"}
    # The payload text comes back intact as text and in hover titles.
    assert "demo:<b>chain</b>" in parsed.texts
    assert HOSTILE in parsed.text
    assert f"Error ValueError: {HOSTILE}" in parsed.text
    titles = " ".join(attrs.get("title", "") for _, attrs in parsed.tags)
    assert "query: a & b \"quoted\" 'single'" in titles
    # Running and never-started spans: an open bar to the axis end, and a note.
    bars = _bar_geometry(parsed)
    assert bars[-1][0] == "active" and sum(bars[-1][1:]) == pytest.approx(100.0, abs=0.01)
    assert "running" in parsed.texts and "not started" in parsed.texts
    assert "pending" in parsed.texts  # legend gains pending when a span is pending
    # No span reported tokens: the column is left out.
    assert "Tokens" not in parsed.texts and "pf-no-tokens" in parsed.find("section")[0]["class"]


def test_open_spans_of_a_terminated_instance_end_at_the_termination() -> None:
    instance = {
        "id": "inst-t",
        "status": "terminated",
        "termination_reason": "budget <exceeded>",
        "started_at": at(0),
        "finished_at": at(2),
    }
    spans = [
        {"id": "a", "schema_name": "x:agent", "status": "active", "started_at": at(0)},
        {
            "id": "b",
            "schema_name": "x:llm",
            "status": "complete",
            "parent_span_id": "a",
            "started_at": at(0.5),
            "finished_at": at(1),
        },
    ]
    parsed = Elements(render_trace_html(Trace.build(instance, spans)))
    assert "Termination reason: budget <exceeded>" in parsed.text
    assert _bar_geometry(parsed) == [("terminated", 0.0, 100.0), ("complete", 25.0, 25.0)]
    assert [a["class"] for a in parsed.find("span", "pf-wf-bar")] == [
        "pf-wf-bar pf-open",
        "pf-wf-bar",
    ]
    assert "running" in parsed.texts


def test_fragments_pages_and_notebook_reprs(tmp_path: Path, traces: dict[str, Trace]) -> None:
    agent, hostile = traces["agent"], traces["hostile"]
    assert agent._repr_html_() == render_trace_html(agent)
    both = Traces([agent, hostile])
    fragment = both._repr_html_()
    assert fragment == render_traces_html([agent, hostile])
    assert fragment.count("<style>") == 1 and fragment.count("<section") == 2
    assert "No agent instances recorded yet." in render_traces_html([])
    page = render_html_page([agent])
    assert page.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in page
    assert f"<title>Trace {agent.id}</title>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "@import" not in page and "url(" not in page
    store = TraceStore(tmp_path / "empty.db").open()
    try:
        loaded = load_traces(store)
    finally:
        store.close()
    assert isinstance(loaded, Traces) and loaded == []
    assert "No agent instances" in loaded._repr_html_()


def test_long_traces_truncate_labels_and_cap_rows() -> None:
    instance = {"id": "inst-long", "status": "active", "started_at": at(0), "agent_id": "a"}
    spans = [
        {
            "id": f"s{index}",
            "schema_name": "x:step",
            "status": "complete",
            "parent_span_id": f"s{index - 1}" if index else None,
            "payload": {"name": "n" * 300},
            "started_at": at(index * 0.01),
            "finished_at": at(index * 0.01 + 0.001),
        }
        for index in range(40)
    ]
    trace = Trace.build(instance, spans)
    parsed = Elements(render_trace_html(trace, max_spans=25))
    assert len(parsed.find("div", "pf-wf-span")) == 25
    assert "15 more spans not shown." in parsed.texts
    labels = [text for text in parsed.texts if text.startswith("nnn")]
    assert labels and all(len(label) <= 48 and label.endswith("…") for label in labels)
    widths = [width for _, _, width in _bar_geometry(parsed)]
    assert all(width < 1 for width in widths)  # tiny bars still show: CSS gives a min width
    assert "min-width:3px" in render_trace_html(trace)
    indents = [row["style"] for row in parsed.find("div", "pf-wf-name")]
    assert indents[0].startswith("padding-left:12px") and indents[-1] == indents[13]


def test_a_notebook_shows_traces_as_waterfalls(filled_db: tuple[Path, str, str]) -> None:
    import nbformat
    from nbclient import NotebookClient

    db, agent_id, hostile_id = filled_db
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from prefactor_local.store import TraceStore\n"
            "from prefactor_local.trace import load_traces\n"
            f"store = TraceStore({str(db)!r}, read_only=True)\n"
            "traces = load_traces(store)\n"
            "traces"
        ),
        nbformat.v4.new_code_cell("traces[1]"),
    ]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    shown = [cell.outputs[0]["data"]["text/html"] for cell in notebook.cells]
    both, single = Elements(shown[0]), Elements(shown[1])
    assert [s["data-instance-id"] for s in both.find("section")] == [hostile_id, agent_id]
    assert [s["data-instance-id"] for s in single.find("section")] == [agent_id]
    assert "412 / 86 / 498" in single.text and "<script" not in shown[0]


# -- the command ------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "prefactor_local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A database written through HTTP: the realistic trace and the hostile one."""
    db = tmp_path_factory.mktemp("show-html") / "local.db"
    with LocalServer(db_path=db) as server, client_for(server) as client:
        api = Api(client)
        agent_id, _ = fill_agent_trace(api)
        hostile_id = fill_hostile_trace(api)
        yield db, agent_id, hostile_id


def test_show_html_writes_a_page_for_one_instance(
    tmp_path: Path, filled_db: tuple[Path, str, str]
) -> None:
    db, agent_id, _ = filled_db
    out = tmp_path / "pages" / "trace.html"
    result = run_cli("show", agent_id, "--db", str(db), "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Wrote 1 trace to {out.resolve()}"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    assert f"<title>Trace {agent_id}</title>" in page
    parsed = Elements(page)
    assert parsed.mismatched == [] and parsed.stack == []
    assert [s["data-instance-id"] for s in parsed.find("section")] == [agent_id]
    assert len(parsed.find("div", "pf-wf-span")) == 9
    assert "TimeoutError: order service did not answer within 400 ms" in parsed.text
    assert "412 / 86 / 498" in parsed.text.replace("  ", " ")


def test_show_html_filters_like_show(
    tmp_path: Path, filled_db: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    db, agent_id, hostile_id = filled_db
    result = run_cli("show", "--db", str(db), "--html", "all.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str((tmp_path / "all.html").resolve()) in result.stdout
    page = (tmp_path / "all.html").read_text(encoding="utf-8")
    sections = [s["data-instance-id"] for s in Elements(page).find("section")]
    assert sections == [hostile_id, agent_id]
    assert "<script" not in page.lower() and "&lt;script&gt;" in page
    assert "<title>Prefactor traces</title>" in page

    one = tmp_path / "one.html"
    for options in (["--agent", "agent-hostile"], ["--limit", "1"]):
        assert main(["show", "--db", str(db), "--html", str(one), *options]) == 0
        shown = Elements(one.read_text(encoding="utf-8")).find("section")
        assert [s["data-instance-id"] for s in shown] == [hostile_id]
    missing = tmp_path / "missing.html"
    assert main(["show", "nope", "--db", str(db), "--html", str(missing)]) == 1
    assert "no agent instance 'nope'" in capsys.readouterr().err
    assert not missing.exists()


# -- a real browser ---------------------------------------------------------------------------


def chromium_path() -> str:
    """Chromium's path, or a failure (a skip when PREFACTOR_SKIP_BROWSER_TESTS=1) saying how."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("PREFACTOR_SKIP_BROWSER_TESTS") == "1":
        pytest.skip(
            "needs headless Chromium, a system package that could not be installed here "
            "(install it with `sudo apt-get install chromium` to run this test); the page's "
            "markup, layout data and escaping are still checked by the other tests in this file"
        )
    pytest.fail(INSTALL_HINT)


def screenshot(page: Path, png: Path, profile: Path) -> None:
    """Render `page` in headless Chromium into `png` at the test window size."""
    command = [
        chromium_path(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if method == 1:
                line[x] = (line[x] + left) & 0xFF
            elif method == 2:
                line[x] = (line[x] + up) & 0xFF
            elif method == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif method == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + best) & 0xFF
        previous = line
        rgb = bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3)
        rows.append(rgb)
    return width, height, rows


class Run(NamedTuple):
    """Pixels `start` to `end` (exclusive) of row `y`."""

    start: int
    end: int
    y: int


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def runs(rows: list[bytes], colour: str, min_length: int, tolerance: int = 8) -> list[Run]:
    """Horizontal runs of at least `min_length` pixels of `colour`: the bars, not the legend."""
    red, green, blue = hex_rgb(colour)
    found: list[Run] = []
    for y, row in enumerate(rows):
        start = None
        pixels = zip(row[0::3], row[1::3], row[2::3], strict=True)
        for x, (r, g, b) in enumerate([*pixels, (-999, -999, -999)]):
            near = abs(r - red) <= tolerance and abs(g - green) <= tolerance
            near = near and abs(b - blue) <= tolerance
            if near and start is None:
                start = x
            elif not near and start is not None:
                if x - start >= min_length:
                    found.append(Run(start, x, y))
                start = None
    return found


def test_chromium_renders_the_waterfall(tmp_path: Path, filled_db: tuple[Path, str, str]) -> None:
    db, agent_id, _ = filled_db
    chromium_path()
    page, png = tmp_path / "trace.html", tmp_path / "trace.png"
    result = run_cli("show", agent_id, "--db", str(db), "--html", str(page))
    assert result.returncode == 0, result.stderr
    screenshot(page, png, tmp_path / "profile")
    assert png.exists() and png.stat().st_size > 10_000
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == WINDOW
    colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    assert len(colours) > 50, "the screenshot looks blank"
    green = runs(rows, STATUS_COLOURS["complete"], 20)
    red = runs(rows, STATUS_COLOURS["failed"], 20)
    assert green and red, "no bars in the screenshot"
    # One failed bar, 12 px high, 43% of the track right of the root's start, four rows below.
    failed = max(red, key=lambda run: run.end - run.start)
    assert len({run.y for run in red}) == 12  # rounded corners make the edge rows shorter
    assert all(failed.start <= run.start and run.end <= failed.end for run in red)
    root = max(green, key=lambda run: run.end - run.start)  # the longest bar: the agent
    track = (root.end - root.start) / 0.84  # the root bar spans 4.2 s of the 5 s axis
    assert failed.start - root.start == pytest.approx(0.43 * track, abs=4)
    assert failed.end - failed.start == pytest.approx(0.09 * track, abs=4)
    assert failed.y > root.y + 3 * 26
    assert root.start > width * 0.4, "bars belong in the timeline, right of the span names"
