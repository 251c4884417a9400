"""The `wattprint` command: the demo runs end to end; every verb and flag is documented."""

from __future__ import annotations

import argparse
import subprocess
import sys

from tests.conftest import REPO
from wattprint.pipeline.cli import build_parser


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_demo_exporter_measures_energy_with_conservation():
    """`wattprint demo --exporter`: the exporter side (the month-long report demo is tests/test_demo.py)."""
    res = run("demo", "--exporter", "--gpus", "3", "--seconds", "1.5")
    assert res.returncode == 0, res.stderr
    assert "3 virtual H100s replaying a real trace" in res.stdout
    assert "largest gap 0.000 J" in res.stdout
    assert "pretrain-1001=" in res.stdout and "finetune-1002=" in res.stdout and "eval-1003=" in res.stdout
    rows = [line.split() for line in res.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert all(float(r[2]) > 0 for r in rows)                     # every GPU measured some energy
    assert rows[2][4] == "-"                                      # the last GPU has no job: all of it is idle
    assert float(rows[2][3]) == float(rows[2][2])
    assert not (REPO / "wattprint-demo").exists() or (REPO / "wattprint-demo" / ".wattprint-demo").is_file()


def test_demo_exporter_rejects_bad_flags():
    res = run("demo", "--exporter", "--gpus", "0")
    assert res.returncode == 2 and "--gpus must be >= 1" in res.stderr


def test_report_without_a_database_says_so_and_creates_nothing(tmp_path):
    res = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", "report", "--month", "2026-10",
                          "--db", str(tmp_path / "x.duckdb")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert res.returncode == 2, res.stderr
    assert "no database at" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_verb():
    out = run("--help").stdout
    for verb in ("demo", "ingest", "jobs", "intensity", "report"):
        assert verb in out


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((f"{prefix}{name}", sub))
                out.extend(_subparsers(sub, f"{prefix}{name} "))
    return out


def test_every_verb_and_flag_is_documented_in_help_and_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    verbs = _subparsers(build_parser())
    assert {v for v, _ in verbs} >= {"ingest", "jobs import", "jobs sync-kubernetes", "intensity import",
                                     "intensity fetch", "build", "demo"}
    for verb, sub in verbs:
        assert f"`{verb.split()[0]}" in readme, verb
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction) or "--help" in action.option_strings:
                continue
            assert action.help, (verb, action.option_strings)
            for flag in action.option_strings:
                assert f"`{flag}" in readme, f"{verb} {flag} missing from README.md"


def test_every_verb_is_dispatched_from_the_one_table():
    """cli.VERBS holds a handler for each leaf of the command tree (and for `demo --exporter`), and nothing else."""
    from wattprint.pipeline.cli import VERBS

    leaves = {tuple(v.split(" ", 1)) if " " in v else (v, None) for v, sub in _subparsers(build_parser())
              if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)}
    assert set(VERBS) == leaves | {("demo", "exporter")}
    for verb in VERBS.values():
        assert callable(verb.handler()), verb
