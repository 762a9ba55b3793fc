"""Reports how long each cookbook notebook took to run."""

from __future__ import annotations

from typing import Any

BUDGET_SECONDS = 60


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List notebook run times (recorded by test_notebooks.py), flagging slow ones."""
    timings: list[tuple[str, float]] = []
    for report in terminalreporter.stats.get("passed", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "notebook_seconds":
                name = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
                timings.append((name, float(value)))
    if not timings:
        return
    terminalreporter.section("cookbook notebook run times")
    for name, seconds in sorted(timings):
        note = f"  (over the {BUDGET_SECONDS} s budget)" if seconds > BUDGET_SECONDS else ""
        terminalreporter.write_line(f"{name:32} {seconds:6.1f} s{note}")
