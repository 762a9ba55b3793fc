"""The examples of docs/testing.md, run as a user's test suite would run them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_testing_md_examples_pass(pytester: pytest.Pytester) -> None:
    blocks = python_blocks()
    tests = [b for b in blocks if "def test_" in b]
    assert len(tests) == 2
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(**{f"test_doc_{i}": code for i, code in enumerate(tests)})
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)


def test_testing_md_scripted_model_example() -> None:
    block = next(b for b in python_blocks() if "turns=[" in b)
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    model = namespace["model"]
    first = model.invoke("plan my trip")  # type: ignore[attr-defined]
    assert [c["args"] for c in first.tool_calls] == [{"q": "flights"}, {"q": "hotels"}]
