"""docs/examples/ holds real outputs of `wattprint report` (scripts/example_reports.py): check they are current."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from scripts.example_reports import outputs
from tests.conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal, numbers within 1e-9 relative (DuckDB's parallel sums may differ in the last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return outputs()


def test_every_example_is_committed(fresh):
    assert sorted(fresh) == sorted(p.name for p in EXAMPLES.iterdir())


@pytest.mark.parametrize("name", ["idefics-2024-03.md", "idefics-2024-03.html", "all-projects-2024-03.md",
                                  "all-projects-2024-03.html", "idefics-2024-03.json"])
def test_example_is_current(fresh, name):
    committed = (EXAMPLES / name).read_text(encoding="utf-8")
    hint = "regenerate with: .venv/bin/python scripts/example_reports.py"
    if name.endswith(".json"):
        _close(json.loads(fresh[name]), json.loads(committed))
    else:
        assert fresh[name] == committed, hint
