"""The cookbook notebooks run top to bottom, offline, and draw the traces they promise.

Each notebook is executed in a fresh Jupyter kernel running this interpreter (so it sees the
installed packages). The kernel's cell outputs are then checked: no errors, no tracebacks on
stderr, and HTML waterfalls (``prefactor_local.waterfall``) showing the expected span types and
instance statuses. The committed notebooks themselves must carry no outputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"
KERNEL_NAME = "python3"
CELL_TIMEOUT = 120  # seconds per cell; a whole notebook should take well under a minute

# Markup of prefactor_local.waterfall: one section per agent instance, a status badge in its
# header, and the span type in each row.
WATERFALL_CLASS = "pf-wf-trace"
BADGE = re.compile(r'class="pf-wf-badge"[^>]*>([a-z_]+)<')

EXPECTED: dict[str, dict[str, set[str]]] = {
    "01_langchain_agent.ipynb": {
        "span_types": {"langchain:agent", "langchain:node", "langchain:llm", "langchain:tool"},
        "statuses": {"complete", "failed"},
    },
    "02_langgraph.ipynb": {
        "span_types": {"langchain:agent", "langchain:node", "langchain:chain", "langchain:llm"},
        "statuses": {"complete"},
    },
    "03_llama_index.ipynb": {
        "span_types": {
            "llama_index:query",
            "llama_index:retrieve",
            "llama_index:embedding",
            "llama_index:synthesize",
            "llama_index:llm",
            "llama_index:agent",
            "llama_index:workflow",
            "llama_index:tool",
        },
        "statuses": {"complete"},
    },
    "04_core_api.ipynb": {
        "span_types": {"agent:llm", "agent:tool", "agent:retrieval"},
        "statuses": {"complete"},
    },
    "05_production.ipynb": {
        "span_types": {"langchain:agent", "langchain:node", "langchain:llm", "langchain:tool"},
        "statuses": {"complete", "terminated"},
    },
}

PROBE = "import sys\nprint(sys.executable)"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """Kernel specs where ``python3`` runs this very interpreter, whatever else is installed."""
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cookbook tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(root)])


def read_notebook(path: Path) -> Any:
    """The notebook at ``path``, as nbformat 4."""
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def kernel_env() -> dict[str, str]:
    """The test's environment without PREFACTOR_* settings: notebooks configure themselves."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}


def code_outputs(nb: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(cell id, output)`` for every output of every code cell."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                yield cell.get("id", "?"), output


def test_every_notebook_is_covered() -> None:
    on_disk = {path.name for path in COOKBOOK.glob("*.ipynb")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_notebook_has_no_outputs(name: str) -> None:
    nb = read_notebook(COOKBOOK / name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    dirty = [
        cell.get("id", "?")
        for cell in nb.cells
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{name}: clear the outputs of cells {dirty} (see cookbook/README.md)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_draws_its_traces(
    name: str,
    tmp_path: Path,
    kernel_specs: KernelSpecManager,
    record_property: Any,
) -> None:
    nb = read_notebook(COOKBOOK / name)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # type: ignore[no-untyped-call]
    kernel = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=kernel,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )

    started = time.perf_counter()
    client.execute(env=kernel_env())  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - started
    record_property("notebook_seconds", round(seconds, 1))
    print(f"{name}: {seconds:.1f} s")

    outputs = list(code_outputs(nb))
    errors = [cell for cell, out in outputs if out["output_type"] == "error"]
    assert not errors, f"{name}: error output in cells {errors}"
    noisy = [
        (cell, out["text"])
        for cell, out in outputs
        if out["output_type"] == "stream"
        and out["name"] == "stderr"
        and ("Traceback" in out["text"] or "Prefactor tracing error" in out["text"])
    ]
    assert not noisy, f"{name}: tracebacks on stderr: {noisy}"

    probe = nb.cells[-1].outputs
    assert probe and probe[0]["text"].strip() == sys.executable, "kernel ran another Python"

    pictures = [
        out["data"]["text/html"]
        for _, out in outputs
        if "text/html" in out.get("data", {}) and WATERFALL_CLASS in out["data"]["text/html"]
    ]
    assert pictures, f"{name}: no trace waterfall in the outputs"
    html = "\n".join(pictures)
    missing = sorted(t for t in EXPECTED[name]["span_types"] if t not in html)
    assert not missing, f"{name}: span types not drawn: {missing}"
    statuses = set(BADGE.findall(html))
    assert EXPECTED[name]["statuses"] <= statuses, f"{name}: instance statuses {statuses}"
