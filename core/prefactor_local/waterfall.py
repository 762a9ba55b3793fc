"""Traces drawn as self-contained HTML: a waterfall of spans on a shared time axis.

The output needs no JavaScript, fonts or network: one `<style>` block and inline positions.
Every string that comes from a stored row is escaped, since payloads are user data.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefactor_local.render import format_duration
from prefactor_local.trace import SpanNode, TokenCounts, Trace

STATUS_COLOURS = {
    "complete": "#2f9e5f",
    "failed": "#d93a3a",
    "cancelled": "#8c959f",
    "active": "#e0a106",
    "terminated": "#7c3aed",
    "pending": "#c4cbd3",
}
LEGEND_STATUSES = ("complete", "failed", "cancelled", "active", "terminated")
DEFAULT_MAX_SPANS = 1000

_LABEL_CHARS = 48
_SCHEMA_CHARS = 40
_ERROR_CHARS = 240
_TITLE_VALUE_CHARS = 160
_INDENT_PX = 16
_MAX_INDENT_LEVELS = 12
_TICK_TARGET = 6
_HOUR_MS = 3_600_000.0
_DAY_MS = 24 * _HOUR_MS

_CSS = """
.pf-wf{--pf-border:#d8dee4;--pf-soft:#eef1f4;--pf-muted:#656d76;--pf-text:#1f2328;
--pf-grid:#e6eaee;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Liberation Sans","DejaVu Sans",sans-serif;font-size:13px;line-height:1.4;
color:var(--pf-text);background:#fff;text-align:left}
.pf-wf *{box-sizing:border-box}
.pf-wf .pf-mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
"DejaVu Sans Mono",monospace;font-size:12px}
.pf-wf-trace{border:1px solid var(--pf-border);border-radius:8px;margin:0 0 20px;
overflow:hidden;background:#fff}
.pf-wf-head{display:flex;justify-content:space-between;align-items:flex-start;gap:16px;
padding:12px 16px;background:#f6f8fa;border-bottom:1px solid var(--pf-border)}
.pf-wf-title{display:flex;align-items:center;gap:10px;flex-wrap:wrap;font-size:14px}
.pf-wf-kicker{color:var(--pf-muted);font-size:11px;font-weight:600;letter-spacing:.06em;
text-transform:uppercase}
.pf-wf-id{font-weight:600;font-size:13px}
.pf-wf-badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:11px;
font-weight:600;color:#fff;line-height:18px}
.pf-wf-meta{display:flex;flex-wrap:wrap;gap:4px 18px;margin-top:6px;color:var(--pf-muted);
font-size:12px}
.pf-wf-meta b{color:var(--pf-text);font-weight:600}
.pf-wf-reason{margin-top:6px;color:#b42318;font-size:12px}
.pf-wf-legend{display:flex;flex-wrap:wrap;justify-content:flex-end;gap:4px 12px;
color:var(--pf-muted);font-size:11px;max-width:52%;padding-top:2px}
.pf-wf-legend span{display:inline-flex;align-items:center;gap:5px;white-space:nowrap}
.pf-wf-swatch{display:inline-block;width:14px;height:8px;border-radius:2px}
.pf-wf-line{display:grid;grid-template-columns:minmax(240px,34%) 128px 92px minmax(0,1fr);
align-items:center;min-height:26px;border-bottom:1px solid var(--pf-soft)}
.pf-no-tokens .pf-wf-line{grid-template-columns:minmax(240px,34%) 92px minmax(0,1fr)}
.pf-wf-span:hover .pf-wf-line{background:#f6f8fa}
.pf-wf-cols{min-height:38px;color:var(--pf-muted);font-size:11px;font-weight:600;
letter-spacing:.04em;text-transform:uppercase;border-bottom:1px solid var(--pf-border)}
.pf-wf-cols>div{padding:0 10px}
.pf-wf-sub{display:block;font-size:10px;font-weight:500;letter-spacing:0;text-transform:none;
color:#8c959f}
.pf-wf-name{display:flex;align-items:center;gap:7px;min-width:0;height:100%;
padding:0 10px 0 12px;white-space:nowrap;overflow:hidden;background-repeat:no-repeat;
background-image:repeating-linear-gradient(90deg,transparent 0 5px,#d5dbe1 5px 6px,
transparent 6px 16px)}
.pf-wf-dot{flex:none;width:8px;height:8px;border-radius:50%}
.pf-wf-schema{flex:0 1 auto;min-width:0;font-weight:600;overflow:hidden;
text-overflow:ellipsis}
.pf-wf-label{flex:1 1 0;min-width:0;color:var(--pf-muted);overflow:hidden;
text-overflow:ellipsis}
.pf-wf-num{padding:0 10px;text-align:right;white-space:nowrap;
font-variant-numeric:tabular-nums;color:var(--pf-text)}
.pf-wf-num .pf-wf-dim{color:#8c959f}
.pf-wf-track{position:relative;height:26px;margin:0 18px 0 10px;
background-image:linear-gradient(90deg,var(--pf-grid) 1px,transparent 1px);
background-repeat:repeat-x;border-right:1px solid var(--pf-grid)}
.pf-wf-axis{position:relative;height:38px;margin:0 18px 0 10px}
.pf-wf-tick{position:absolute;top:11px;transform:translateX(-50%);white-space:nowrap;
font-weight:500;letter-spacing:0;text-transform:none;font-variant-numeric:tabular-nums}
.pf-wf-tick.pf-first{transform:none}
.pf-wf-tick.pf-last{transform:translateX(-100%)}
.pf-wf-bar{position:absolute;top:7px;height:12px;min-width:3px;border-radius:3px}
.pf-wf-bar.pf-open{border-top-right-radius:0;border-bottom-right-radius:0;
background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.35) 0 4px,
transparent 4px 8px)}
.pf-wf-note{position:absolute;top:5px;color:var(--pf-muted);font-size:11px;font-style:italic}
.pf-wf-err{grid-column:1/-2;min-width:0;padding:0 10px 5px 0;align-self:stretch;
background-repeat:no-repeat;background-image:repeating-linear-gradient(90deg,transparent 0 5px,
#d5dbe1 5px 6px,transparent 6px 16px);color:#b42318;font-size:12px;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.pf-wf-err b{font-weight:600}
.pf-wf-errline{min-height:0;border-bottom:1px solid var(--pf-soft);background:#fff8f7}
.pf-wf-errline .pf-wf-track{height:auto;align-self:stretch}
.pf-wf-span.pf-has-error .pf-wf-line:first-child{border-bottom:none;background:#fff8f7}
.pf-wf-empty,.pf-wf-more{padding:14px 16px;color:var(--pf-muted)}
.pf-wf-page-title{font-size:20px;font-weight:600;margin:0 0 14px}
.pf-wf-page-sub{color:var(--pf-muted);margin:-10px 0 16px}
"""


@dataclass(frozen=True)
class _Axis:
    """Time zero, the axis length and tick step, and where unfinished bars end (milliseconds)."""

    origin: datetime | None
    open_end_ms: float
    length_ms: float
    step_ms: float

    @property
    def ticks(self) -> int:
        return max(1, round(self.length_ms / self.step_ms))

    def percent(self, millis: float) -> float:
        return min(max(millis / self.length_ms * 100, 0.0), 100.0)


def render_trace_html(trace: Trace, *, max_spans: int = DEFAULT_MAX_SPANS) -> str:
    """One trace as an HTML fragment (its own `<style>` included): header, legend, waterfall."""
    return _wrap(_trace_section(trace, max_spans))


def render_traces_html(traces: Iterable[Trace], *, max_spans: int = DEFAULT_MAX_SPANS) -> str:
    """Several traces as one HTML fragment, in the given order (one `<style>` block)."""
    sections = [_trace_section(trace, max_spans) for trace in traces]
    if not sections:
        sections = ['<div class="pf-wf-empty">No agent instances recorded yet.</div>']
    return _wrap("\n".join(sections))


def render_html_page(
    traces: Iterable[Trace], *, title: str | None = None, max_spans: int = DEFAULT_MAX_SPANS
) -> str:
    """A complete HTML document showing `traces` (what `prefactor-local show --html` writes)."""
    items = list(traces)
    count = len(items)
    heading = title or ("Prefactor trace" if count == 1 else "Prefactor traces")
    if title is None:
        title = f"Trace {items[0].id}" if count == 1 else "Prefactor traces"
    sub = "" if count == 1 else f"{count} agent instances, newest first"
    header = f'<h1 class="pf-wf-page-title">{_e(heading)}</h1>'
    if sub:
        header += f'<p class="pf-wf-page-sub">{_e(sub)}</p>'
    body = render_traces_html(items, max_spans=max_spans)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n"
        "<style>body{margin:0;padding:24px 28px;background:#fff}"
        "h1,p{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,"
        "'Liberation Sans','DejaVu Sans',sans-serif;color:#1f2328}</style>\n"
        f"</head>\n<body>\n{header}\n{body}\n</body>\n</html>\n"
    )


# -- one trace --------------------------------------------------------------------------------


def _wrap(content: str) -> str:
    return f'<div class="pf-wf">\n<style>{_CSS}</style>\n{content}\n</div>'


def _trace_section(trace: Trace, max_spans: int) -> str:
    nodes = list(trace.walk())
    axis = _axis(trace, nodes)
    with_tokens = any(node.token_counts() is not None for node in nodes)
    classes = "pf-wf-trace" if with_tokens else "pf-wf-trace pf-no-tokens"
    parts = [f'<section class="{classes}" data-instance-id="{_e(trace.id)}">']
    parts.append(_header(trace, len(nodes), any(n.status == "pending" for n in nodes)))
    if not nodes:
        parts.append('<div class="pf-wf-empty">No spans recorded.</div>')
    else:
        parts.append(_columns(axis, with_tokens))
        parts.extend(_span_row(trace, node, axis, with_tokens) for node in nodes[:max_spans])
        hidden = len(nodes) - max_spans
        if hidden > 0:
            parts.append(
                f'<div class="pf-wf-more">{hidden} more span{"" if hidden == 1 else "s"} '
                "not shown.</div>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def _header(trace: Trace, span_count: int, has_pending: bool) -> str:
    instance = trace.instance
    started = trace.started_at
    meta = [
        ("Agent", _text(instance.get("agent_id")) or "—"),
        ("Duration", format_duration(trace.duration_ms)),
        ("Spans", str(span_count)),
        ("Started", started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "—"),
    ]
    purpose = _text(instance.get("purpose"))
    if purpose:
        meta.append(("Purpose", purpose))
    meta_html = "".join(f"<span>{_e(key)} <b>{_e(value)}</b></span>" for key, value in meta)
    reason = _text(instance.get("termination_reason"))
    reason_html = (
        f'<div class="pf-wf-reason">Termination reason: {_e(_clip(reason, _ERROR_CHARS))}</div>'
        if reason
        else ""
    )
    legend = [*LEGEND_STATUSES, "pending"] if has_pending else list(LEGEND_STATUSES)
    legend_html = "".join(
        f'<span><i class="pf-wf-swatch" style="background:{_colour(status)}"></i>{status}</span>'
        for status in legend
    )
    return (
        '<div class="pf-wf-head"><div>'
        '<div class="pf-wf-title"><span class="pf-wf-kicker">Agent instance</span>'
        f'<span class="pf-wf-id pf-mono">{_e(trace.id)}</span>'
        f"{_badge(trace.status)}</div>"
        f'<div class="pf-wf-meta">{meta_html}</div>{reason_html}</div>'
        f'<div class="pf-wf-legend" aria-label="Status colours">{legend_html}</div></div>'
    )


def _columns(axis: _Axis, with_tokens: bool) -> str:
    ticks = []
    for index in range(axis.ticks + 1):
        position = index / axis.ticks * 100
        edge = " pf-first" if index == 0 else " pf-last" if index == axis.ticks else ""
        label = _tick_label(index * axis.step_ms, axis.step_ms, axis.length_ms)
        ticks.append(
            f'<span class="pf-wf-tick{edge}" style="left:{position:.4g}%">{_e(label)}</span>'
        )
    tokens = (
        '<div class="pf-wf-num" title="prompt / completion / total tokens">'
        'Tokens<small class="pf-wf-sub">in / out / total</small></div>'
        if with_tokens
        else ""
    )
    return (
        f'<div class="pf-wf-line pf-wf-cols"><div>Span</div>{tokens}'
        '<div class="pf-wf-num">Duration</div>'
        f'<div class="pf-wf-axis">{"".join(ticks)}</div></div>'
    )


def _span_row(trace: Trace, node: SpanNode, axis: _Axis, with_tokens: bool) -> str:
    status = node.status or "pending"
    shown = _shown_status(trace, node)
    highlights = node.highlights()
    label = node.label
    tokens = node.token_counts()
    levels = min(node.depth, _MAX_INDENT_LEVELS)
    indent = 12 + levels * _INDENT_PX
    guides = f"background-size:{levels * _INDENT_PX}px 100%;background-position:12px 0;"
    title = _title(trace, node, highlights, tokens)
    error = highlights.get("error")
    name = (
        f'<div class="pf-wf-name" style="padding-left:{indent}px;{guides}">'
        f'<i class="pf-wf-dot" style="background:{_colour(shown)}"></i>'
        f'<span class="pf-wf-schema">{_e(_clip(node.schema_name or "(unnamed)", _SCHEMA_CHARS))}'
        "</span>"
        f'<span class="pf-wf-label">{_e(_clip(label, _LABEL_CHARS))}</span></div>'
    )
    duration = "running" if node.finished_at is None and node.started_at else ""
    if node.duration_ms is not None:
        duration = format_duration(node.duration_ms)
    track_style = f"background-size:calc(100% / {axis.ticks}) 100%"
    tokens_cell = (
        f'<div class="pf-wf-num pf-wf-tokens">{_tokens_html(tokens)}</div>' if with_tokens else ""
    )
    line = (
        f'<div class="pf-wf-line" title="{_e(title)}">{name}{tokens_cell}'
        f'<div class="pf-wf-num pf-wf-duration">{_e(duration)}</div>'
        f'<div class="pf-wf-track" style="{track_style}">{_bar(trace, node, axis, shown)}</div>'
        "</div>"
    )
    classes = f"pf-wf-span pf-status-{_css_token(status)}"
    error_html = ""
    if error:
        classes += " pf-has-error"
        error_html = (
            f'<div class="pf-wf-line pf-wf-errline" title="{_e(error)}">'
            f'<div class="pf-wf-err" style="padding-left:{indent + 15}px;{guides}">'
            f"<b>Error</b> {_e(_clip(error, _ERROR_CHARS))}</div>"
            f'<div class="pf-wf-track" style="{track_style}"></div></div>'
        )
    return (
        f'<div class="{classes}" data-span-id="{_e(node.id)}" data-depth="{node.depth}">'
        f"{line}{error_html}</div>"
    )


def _bar(trace: Trace, node: SpanNode, axis: _Axis, shown: str) -> str:
    start = trace.offset_ms(node)
    if start is None:
        return '<span class="pf-wf-note" style="left:0">not started</span>'
    end = start + node.duration_ms if node.duration_ms is not None else axis.open_end_ms
    left = axis.percent(start)
    width = max(axis.percent(end) - left, 0.0)
    classes = "pf-wf-bar" + (" pf-open" if node.finished_at is None else "")
    return (
        f'<span class="{classes}" data-status="{_e(shown)}" '
        f'style="left:{left:.3f}%;width:{width:.3f}%;background-color:{_colour(shown)}"></span>'
    )


def _shown_status(trace: Trace, node: SpanNode) -> str:
    """The colour key: an unfinished span of a terminated instance shows as terminated."""
    status = node.status or "pending"
    if node.finished_at is None and trace.status == "terminated" and status == "active":
        return "terminated"
    return status


def _tokens_html(tokens: TokenCounts | None) -> str:
    if tokens is None:
        return ""
    parts = [_count(tokens.prompt), _count(tokens.completion), _count(tokens.total)]
    dim = '<span class="pf-wf-dim"> / </span>'
    return f"{parts[0]}{dim}{parts[1]}{dim}<b>{parts[2]}</b>"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _title(
    trace: Trace, node: SpanNode, highlights: dict[str, str], tokens: TokenCounts | None
) -> str:
    """The hover text of a row: timing, the highlighted fields, then the params in short."""
    lines = [f"{node.schema_name or '(unnamed)'} · {node.status or 'pending'}"]
    start = trace.offset_ms(node)
    if start is not None:
        lines.append(
            f"start +{format_duration(start)} · duration {format_duration(node.duration_ms)}"
        )
    for key, value in highlights.items():
        if key == "tokens" and tokens is not None:
            value = (
                f"prompt {_count(tokens.prompt)}, completion {_count(tokens.completion)}, "
                f"total {_count(tokens.total)}"
            )
        lines.append(f"{key}: {_clip(value, _ERROR_CHARS)}")
    for key, value in list(node.payload.items())[:8]:
        if key in ("model_name", "tool_name", "token_usage"):
            continue
        lines.append(f"{key}: {_clip(_compact(value), _TITLE_VALUE_CHARS)}")
    lines.append(f"span id: {node.id}")
    return "\n".join(lines)


# -- time axis --------------------------------------------------------------------------------


def _axis(trace: Trace, nodes: Sequence[SpanNode]) -> _Axis:
    origin = trace.origin
    moments = [trace.started_at, trace.finished_at]
    for node in nodes:
        moments += [node.started_at, node.finished_at]
    offsets = [
        (moment - origin).total_seconds() * 1000
        for moment in moments
        if moment is not None and origin is not None
    ]
    end = max([0.0, *offsets])
    running = trace.finished_at is None and any(
        node.started_at is not None and node.finished_at is None for node in nodes
    )
    if running:
        # Leave room after the last known moment: running bars run on to the right edge.
        end = end * 1.04 if end > 0 else 1.0
    step = _nice_step(end if end > 0 else 1.0)
    length = max(step, math.ceil(end / step - 1e-9) * step)
    return _Axis(origin, length if running else end, length, step)


def _nice_step(total_ms: float) -> float:
    """A 1-2-2.5-5 step (whole seconds, minutes, hours or days when long) for ~6 intervals."""
    raw = total_ms / _TICK_TARGET
    power = 10.0 ** math.floor(math.log10(raw))
    step = next((f * power for f in (1, 2, 2.5, 5) if raw <= f * power), 10 * power)
    if step < 1000:
        return max(step, 1.0)
    for seconds in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600):
        if seconds * 1000 >= raw:
            return seconds * 1000.0
    hours = raw / _HOUR_MS
    if hours <= 12:
        return 12 * _HOUR_MS
    days = hours / 24
    power = 10.0 ** math.floor(math.log10(days))
    return _DAY_MS * next((f * power for f in (1, 2, 5) if days <= f * power), 10 * power)


def _tick_label(millis: float, step_ms: float, length_ms: float) -> str:
    if millis == 0:
        return "0"
    if length_ms < 1000:
        return f"{millis:g} ms"
    if step_ms < 1000:
        decimals = 1 if step_ms % 100 == 0 else 2
        return f"{millis / 1000:.{decimals}f} s"
    if length_ms <= 60_000:
        return f"{round(millis / 1000)} s"
    if step_ms >= _DAY_MS:
        return f"{millis / _DAY_MS:g}d"
    if step_ms >= _HOUR_MS:
        return f"{millis / _HOUR_MS:g}h"
    minutes, rest = divmod(round(millis / 1000), 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h" if minutes == 0 else f"{hours}h {minutes:02d}m"
    if minutes == 0:
        return f"{rest}s"
    return f"{minutes}m" if rest == 0 else f"{minutes}m {rest:02d}s"


# -- small helpers ----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status, STATUS_COLOURS["pending"])


def _css_token(status: str) -> str:
    return "".join(char for char in status.lower() if char.isalnum() or char == "-") or "unknown"


def _badge(status: str) -> str:
    shown = status or "pending"
    return f'<span class="pf-wf-badge" style="background:{_colour(shown)}">{_e(shown)}</span>'
