"""The pipeline benchmark scripts still run (tiny sizes): numbers in docs/benchmarks.md must stay reproducible."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, require_tool


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, f"benchmarks/{script}", "--quick", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_bench_model_quick(tmp_path):
    res = run("bench_model.py", "--skip-pandas", "--markdown-out", str(tmp_path / "m.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| exporter" in (tmp_path / "m.md").read_text()


def test_bench_incremental_quick(tmp_path):
    """The script runs, and its --check (on with --quick) found the incremental result equal to a full build."""
    res = run("bench_incremental.py", "--markdown-out", str(tmp_path / "i.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    text = (tmp_path / "i.md").read_text()
    assert "one day's ledger imported" in text and "equals a full build, bit for bit" in text


def test_bench_retention_quick(tmp_path):
    """The script runs, and found every result row the same after compaction, a build and the rewrite."""
    res = run("bench_retention.py", "--markdown-out", str(tmp_path / "c.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    text = (tmp_path / "c.md").read_text()
    assert "compact (one transaction, CHECKPOINT)" in text and "the second build and the rewrite (checked)" in text


def test_bench_report_quick(tmp_path):
    res = run("bench_report.py", "--markdown-out", str(tmp_path / "r.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    text = (tmp_path / "r.md").read_text()
    assert "`build_report` + JSON, in process" in text
    assert "`wattprint report --format json` (CLI, whole process)" in text


def test_bench_ingest_quick(tmp_path):
    require_tool("promtool")
    require_tool("prometheus")
    require_tool("curl")
    res = run("bench_ingest.py", "--data-dir", str(tmp_path / "data"), "--markdown-out", str(tmp_path / "i.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ingest / curl" in (tmp_path / "i.md").read_text()


def test_bench_mig_quick(tmp_path):
    """The MIG cost script runs; its parse check (the line reader reads every sample prometheus_client reads) held."""
    res = run("bench_mig.py", "--markdown-out", str(tmp_path / "g.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    text = (tmp_path / "g.md").read_text()
    assert "| jobs | 16 | 56 |" in text and "prometheus_client's parser" in text


def test_bench_cli_startup_quick(tmp_path):
    """The script runs, with this same checkout as its baseline (no git needed)."""
    res = run("bench_cli_startup.py", "--compare-root", str(REPO), "--markdown-out", str(tmp_path / "s.md"))
    assert res.returncode == 0, res.stderr[-2000:]
    text = (tmp_path / "s.md").read_text()
    assert "| `wattprint --help` | baseline |" in text
    assert "| `wattprint jobs import` (2 jobs, new DuckDB file) | this |" in text
