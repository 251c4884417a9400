"""A real Prometheus (Debian package) scrapes the running exporter.

The replay exporter plays the real H100 trace from a known epoch, so the test
can compute, from trace.csv alone, the energy the GPU used in any window and
compare it with Prometheus' increase() over the same window.
"""

from __future__ import annotations

import bisect
import csv
import json
import subprocess
import time

import pytest
import requests

from tests.conftest import FIXTURES, free_port, require_tool, wait_http
from tests.exporter_proc import running_exporter, wait_until
from wattprint.exporter.backends.replay import default_trace_path

pytestmark = pytest.mark.slow


def trace_energy_joules(pos0: float, pos1: float) -> float:
    """Energy between two positions (seconds from the first row) by linear interpolation of the counter."""
    with default_trace_path().open() as fh:
        rows = [(float(r["ts"]), float(r["energy_mj"])) for r in csv.DictReader(fh)]
    t = [ts - rows[0][0] for ts, _ in rows]
    e = [mj for _, mj in rows]

    def at(p: float) -> float:
        i = bisect.bisect_right(t, p) - 1
        return e[i] + (e[i + 1] - e[i]) * (p - t[i]) / (t[i + 1] - t[i])

    return (at(pos1) - at(pos0)) / 1000.0


def start_prometheus(tmp_path, target: str):
    binary = require_tool("prometheus")
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: wattprint\n    static_configs:\n      - targets: ['{target}']\n"
    )
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30)
    return proc, f"http://127.0.0.1:{port}"


def query(base: str, promql: str, at: float) -> list[dict]:
    r = requests.get(f"{base}/api/v1/query", params={"query": promql, "time": at}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_prometheus_increase_matches_the_replayed_trace(tmp_path):
    meta = json.loads((FIXTURES / "nvml-h100" / "meta.json").read_text())
    phases = dict(meta["phases"])
    matmul_offset = phases["matmul"] - phases["idle"]  # trace seconds at which the steady matmul starts
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "0").write_text("train-1\n")
    (tmp_path / "jobs" / "1").write_text("a-2\nb-3\n")
    exporter_port = free_port()
    prom, base = start_prometheus(tmp_path, f"127.0.0.1:{exporter_port}")
    try:
        # GPU 0 enters the trace 1 s into its matmul phase (40 s of ~690 W) as the exporter starts.
        epoch = time.time() - (matmul_offset + 1.0)
        with running_exporter(
            "--backend", "replay", "--replay-gpus", "2", "--replay-epoch", repr(epoch), "--poll-interval", "0.1",
            "--job-discovery", "mapping-dir", "--mapping-dir", str(tmp_path / "jobs"), "--label", "cluster=ci",
            port=exporter_port,
        ):
            span = 15
            series = 'wattprint_gpu_energy_joules_total{gpu="0"}'
            # Prometheus' discovery hands targets over only every 5 s: wait until the span is covered.
            covered = wait_until(
                lambda: len(query(base, f"count_over_time({series}[{span + 3}s]) >= {span + 2}", time.time())) == 1,
                timeout=40, step=0.5,
            )
            assert covered, "Prometheus did not collect enough samples"
            raw = query(base, f"{series}[{span + 3}s]", time.time())[0]["values"]
            # Align the window on stored samples so increase() has (almost) nothing to extrapolate:
            # it starts 1 ms before the sample `span` scrapes back and ends on the last one.
            (t_first, _), (t_last, _) = raw[-1 - span], raw[-1]
            window = t_last - t_first + 0.001
            inc = query(base, f"increase({series}[{window * 1000:.0f}ms])", t_last)
            up = query(base, 'up{job="wattprint"}', t_last)
            gap = query(
                base,
                "sum by (gpu) (wattprint_job_energy_joules_total) + on (gpu) "
                "sum by (gpu) (wattprint_gpu_idle_energy_joules_total) - on (gpu) "
                "sum by (gpu) (wattprint_gpu_energy_joules_total)",
                t_last,
            )
    finally:
        prom.terminate()
        prom.wait(10)
    assert up and up[0]["value"][1] == "1"
    measured = float(inc[0]["value"][1])
    expected = trace_energy_joules(t_first - epoch, t_last - epoch)
    assert expected > 8000  # ~15 s of a ~690 W matmul
    assert measured == pytest.approx(expected, rel=0.01), (measured, expected)
    # conservation, as Prometheus stored it: per GPU, jobs + idle - GPU == 0
    assert {g["metric"]["gpu"] for g in gap} == {"0", "1"}
    for g in gap:
        assert abs(float(g["value"][1])) < 1e-6
