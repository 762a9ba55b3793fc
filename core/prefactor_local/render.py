"""Drawing traces in a terminal with rich (used by `prefactor-local show`)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from prefactor_local.trace import SpanNode, Trace

STATUS_STYLES = {
    "pending": "dim",
    "active": "yellow",
    "complete": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "terminated": "bold red",
}
_MAX_HIGHLIGHT_CHARS = 120
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(value: object) -> str:
    """`value` as one line safe to write to a terminal: control characters (escape sequences,
    newlines, bidi overrides) shown as `\\x1b`-style escapes. Rich markup needs no escaping
    because every stored string is drawn as a literal `Text`, never parsed as markup."""
    return _UNSAFE.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def format_duration(millis: float | None) -> str:
    """`850 ms`, `2.35 s`, `3m 07s`; `running` for None."""
    if millis is None:
        return "running"
    if millis < 1000:
        return f"{millis:.0f} ms"
    seconds = millis / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def status_text(status: str) -> Text:
    """The status in its colour."""
    return Text(visible(status), style=STATUS_STYLES.get(status, ""))


def span_line(node: SpanNode) -> Text:
    """`schema_name label  status  duration  key=value ...` for one span; the label is
    `SpanNode.label`, and a model or tool it already names is not repeated."""
    line = Text()
    line.append(visible(node.schema_name or "(unnamed)"), style="bold")
    label = node.label
    if label:
        line.append(f" {visible(label)}", style="cyan")
    line.append("  ")
    line.append_text(status_text(node.status))
    line.append(f"  {format_duration(node.duration_ms)}", style="cyan")
    for key, value in node.highlights().items():
        if key in ("model", "tool") and value == label:
            continue
        value = visible(value)
        shown = value if len(value) <= _MAX_HIGHLIGHT_CHARS else value[:_MAX_HIGHLIGHT_CHARS] + "…"
        line.append(f"  {visible(key)}=", style="dim")
        line.append(shown, style="red" if key == "error" else "")
    return line


def trace_tree(trace: Trace) -> Tree:
    """A rich Tree: the instance (two lines), then its spans nested."""
    instance = trace.instance
    head = Text()
    head.append("instance ", style="dim")
    head.append(visible(trace.id), style="bold")
    head.append("  ")
    head.append_text(status_text(trace.status))
    head.append(f"  {format_duration(trace.duration_ms)}", style="cyan")
    head.append(f"  {trace.span_count} span{'' if trace.span_count == 1 else 's'}")
    started = instance.get("started_at") or instance.get("inserted_at")
    head.append(
        f"\nagent={visible(instance.get('agent_id'))}  purpose={visible(instance.get('purpose'))}"
        f"  started={visible(started)}",
        style="dim",
    )
    if instance.get("termination_reason"):
        reason = visible(instance["termination_reason"])
        head.append(f"\ntermination reason: {reason}", style="red")
    tree = Tree(head)

    def add(branch: Tree, nodes: list[SpanNode]) -> None:
        for node in nodes:
            add(branch.add(span_line(node)), node.children)

    add(tree, trace.roots)
    return tree


def render_traces(traces: list[Trace], console: Console) -> None:
    """Print every trace, newest first, separated by blank lines."""
    if not traces:
        console.print("No agent instances recorded yet.")
        return
    for index, trace in enumerate(traces):
        if index:
            console.print()
        console.print(trace_tree(trace))
