"""docs/examples/ holds real outputs of `wattprint report` (scripts/example_reports.py): check they are current."""

from __future__ import annotations

import pytest

from scripts.example_reports import outputs
from tests.conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


@pytest.fixture(scope="module")
def fresh() -> dict[str, str]:
    return outputs()


def test_every_example_is_committed(fresh):
    assert sorted(fresh) == sorted(p.name for p in EXAMPLES.iterdir())


@pytest.mark.parametrize("name", ["idefics-2024-03.md", "idefics-2024-03.html", "all-projects-2024-03.md",
                                  "all-projects-2024-03.html", "idefics-2024-03.json"])
def test_example_is_current(fresh, name):
    committed = (EXAMPLES / name).read_text(encoding="utf-8")
    # byte for byte: the model's sums are exact and its result tables stored in a fixed order
    # (tests/test_model_determinism.py), so the same inputs give the same report, to the last digit
    assert fresh[name] == committed, "regenerate with: .venv/bin/python scripts/example_reports.py"
