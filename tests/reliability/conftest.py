"""Reliability tests: outages, flaky and slow servers, exits, forks, hostile input, secrets.

Each scenario that moves spans adds a line to a table printed at the end of the session:
operations sent (queued by the clients' tracers; requests, for the server's own load test),
spans expected, stored, stored more than once, and missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _rel_support import REPORT

from prefactor_integrations.langchain import uninstrument


@pytest.fixture(autouse=True)
def _no_global_instrumentation() -> Iterator[None]:
    """Every test runs without process-wide instrumentation."""
    uninstrument()
    yield
    uninstrument()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    header = ("scenario", "operations sent", "spans expected", "stored", "duplicated", "lost")
    rows = [
        (r.scenario, str(r.operations), str(r.expected), str(r.stored), str(r.duplicated),
         str(r.lost))
        for r in REPORT
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]
    terminalreporter.section("reliability: what reached the server")
    for line in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        terminalreporter.write_line("  ".join(cells).rstrip())
