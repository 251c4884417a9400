"""benchmarks/bench_host.py still runs (tiny tree): its figure in docs/benchmarks.md must stay reproducible."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def test_bench_host_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_host", REPO / "benchmarks" / "bench_host.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "h.md"
    assert bench.main(["--quick", "--jobs", "6", "--services", "3", "--cpus", "4", "--markdown-out", str(out)]) == 0
    text = out.read_text()
    assert "| machine | polls | CPU ms per poll | % of a core at 1 s polling |" in text
    assert "6 Slurm jobs" in text and "/proc/stat (first 1 KiB)" in text
