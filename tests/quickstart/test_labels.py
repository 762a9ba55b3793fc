"""One labelling rule: the quickstart's printout, `prefactor-local show` and the HTML waterfall
name every span alike (LangChain, LangGraph and LlamaIndex spans)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

from test_quickstart import run_quickstart

HEAD = re.compile(r"^instance (\S+) ")
SPAN = re.compile(r"^[\s│├└─]*([a-z_]+:[a-z_]+(?: \S+)?)  ")
SECTION = re.compile(r'<section [^>]*data-instance-id="([^"]+)"(.*?)</section>', re.S)
ROW = re.compile(
    r'<span class="pf-wf-schema">([^<]*)</span><span class="pf-wf-label">([^<]*)</span>'
)


def tree_lines(out: str) -> dict[str, list[str]]:
    """``schema label`` of every span line, per instance, from printed trees."""
    trees: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        head = HEAD.match(line)
        if head is not None:
            current = trees.setdefault(head.group(1), [])
            continue
        span = SPAN.match(line)
        if span is not None:
            current.append(span.group(1))
    return trees


def html_lines(page: str) -> dict[str, list[str]]:
    """``schema label`` of every waterfall row, per instance."""
    return {
        instance: [
            f"{html.unescape(schema)} {html.unescape(label)}".rstrip()
            for schema, label in ROW.findall(body)
        ]
        for instance, body in SECTION.findall(page)
    }


def prefactor_local(cwd: Path, *args: str) -> str:
    exe = Path(sys.executable).parent / "prefactor-local"
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"COLUMNS": "200", "PATH": str(exe.parent)},
    ).stdout


def test_quickstart_show_and_html_label_every_span_alike(tmp_path: Path) -> None:
    result = run_quickstart(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    db = tmp_path / ".prefactor" / "local.db"

    printed = tree_lines(result.stdout)
    shown = tree_lines(prefactor_local(tmp_path, "show", "--db", str(db)))
    prefactor_local(tmp_path, "show", "--db", str(db), "--html", "trace.html")
    drawn = html_lines((tmp_path / "trace.html").read_text(encoding="utf-8"))

    assert len(printed) == 3
    assert shown == printed
    assert drawn == printed
    every = {line for lines in printed.values() for line in lines}
    assert {
        "langchain:agent LangGraph",  # LangChain agent: the run name
        "langchain:node model",  # LangGraph nodes
        "langchain:node search_web",
        "langchain:llm scripted-gpt",  # the model
        "langchain:tool get_weather",  # the tool
        "llama_index:query RetrieverQueryEngine.query",  # LlamaIndex: the method
        "llama_index:retrieve VectorIndexRetriever.retrieve",
        "llama_index:embedding MockEmbedding",
        "llama_index:llm MockLLM",
    } <= every
