"""The `wattprint` command: the demo runs end to end; pending verbs say so and change nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_demo_measures_energy_with_conservation():
    res = run("demo", "--gpus", "3", "--seconds", "1.5")
    assert res.returncode == 0, res.stderr
    assert "largest gap 0.000 J" in res.stdout
    assert "pretrain-1001=" in res.stdout and "finetune-1002=" in res.stdout


@pytest.mark.parametrize("verb", ["report"])
def test_pending_verbs_say_so(verb, tmp_path):
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", verb, "--db", str(tmp_path / "x.duckdb")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert res.returncode == 3
    assert "not yet implemented" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_verb():
    out = run("--help").stdout
    for verb in ("demo", "ingest", "jobs", "intensity", "report"):
        assert verb in out
