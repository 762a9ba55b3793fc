"""Drawing traces in a terminal with rich (used by `prefactor-local show`)."""

from __future__ import annotations

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
    return Text(status, style=STATUS_STYLES.get(status, ""))


def span_line(node: SpanNode) -> Text:
    """`schema_name label  status  duration  key=value ...` for one span; the label is
    `SpanNode.label`, and a model or tool it already names is not repeated."""
    line = Text()
    line.append(node.schema_name or "(unnamed)", style="bold")
    label = node.label
    if label:
        line.append(f" {label}", style="cyan")
    line.append("  ")
    line.append_text(status_text(node.status))
    line.append(f"  {format_duration(node.duration_ms)}", style="cyan")
    for key, value in node.highlights().items():
        if key in ("model", "tool") and value == label:
            continue
        shown = value if len(value) <= _MAX_HIGHLIGHT_CHARS else value[:_MAX_HIGHLIGHT_CHARS] + "…"
        line.append(f"  {key}=", style="dim")
        line.append(shown, style="red" if key == "error" else "")
    return line


def trace_tree(trace: Trace) -> Tree:
    """A rich Tree: the instance (two lines), then its spans nested."""
    instance = trace.instance
    head = Text()
    head.append("instance ", style="dim")
    head.append(trace.id, style="bold")
    head.append("  ")
    head.append_text(status_text(trace.status))
    head.append(f"  {format_duration(trace.duration_ms)}", style="cyan")
    head.append(f"  {trace.span_count} span{'' if trace.span_count == 1 else 's'}")
    started = instance.get("started_at") or instance.get("inserted_at")
    head.append(
        f"\nagent={instance.get('agent_id')}  purpose={instance.get('purpose')}  started={started}",
        style="dim",
    )
    if instance.get("termination_reason"):
        head.append(f"\ntermination reason: {instance['termination_reason']}", style="red")
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
