"""`wattprint demo` until the reporting pipeline lands (issue #6 replaces it).

Starts a real wattprint-exporter in-process on 127.0.0.1 (replay backend on
the real H100 trace, jobs assigned by a mapping directory), scrapes its
/metrics over HTTP like Prometheus would, and prints what it measured: energy
per GPU, per job and idle, and the conservation check.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App
from exporter.config import Config
from exporter.logs import setup_logging

# Which demo jobs run on which virtual GPU: GPU 1 is shared, the last GPU is left idle.
DEMO_JOBS = {0: ["pretrain-1001"], 1: ["finetune-1002", "eval-1003"]}


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    body = requests.get(url, timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[s.name].append((s.labels, s.value))
    return out


def run_demo(gpus: int = 4, seconds: float = 6.0) -> int:
    setup_logging("warning")
    with tempfile.TemporaryDirectory(prefix="wattprint-demo-") as tmp:
        mapping = Path(tmp)
        for index, job_ids in DEMO_JOBS.items():
            if index < gpus:
                (mapping / str(index)).write_text("\n".join(job_ids) + "\n")
        cfg = Config(
            backend="replay", replay_gpus=gpus, poll_interval=0.5, listen_address="127.0.0.1:0",
            job_discovery="mapping-dir", mapping_dir=str(mapping), hostname="demo-node",
            labels=(("cluster", "demo"),),
        )
        app = App(cfg)
        app.start()
        assert app.server is not None
        url = f"http://127.0.0.1:{app.server.port}/metrics"
        try:
            print(f"wattprint demo: replay exporter on {url}, {gpus} virtual H100s replaying a real trace")
            first = _scrape(url)
            time.sleep(seconds)
            last = _scrape(url)
        finally:
            app.shutdown()

    def by_gpu(m: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[str, float]:
        return {lab["gpu"]: v for lab, v in m.get(name, [])}

    def by_job(m: dict[str, list[tuple[dict[str, str], float]]]) -> dict[tuple[str, str], float]:
        return {(lab["gpu"], lab["job_id"]): v for lab, v in m.get("wattprint_job_energy_joules_total", [])}

    e0, e1 = by_gpu(first, "wattprint_gpu_energy_joules_total"), by_gpu(last, "wattprint_gpu_energy_joules_total")
    i0, i1 = (by_gpu(first, "wattprint_gpu_idle_energy_joules_total"),
              by_gpu(last, "wattprint_gpu_idle_energy_joules_total"))
    j0, j1 = by_job(first), by_job(last)
    power = by_gpu(last, "wattprint_gpu_power_watts")
    print(f"\nEnergy measured over {seconds:g} s (deltas of the replayed H100 energy counter, joules):")
    print(f"{'gpu':>4} {'power_watts':>12} {'gpu_joules':>11} {'idle_joules':>12}  jobs (joules)")
    worst = 0.0
    for gpu in sorted(e1, key=int):
        de = e1[gpu] - e0.get(gpu, 0.0)
        di = i1.get(gpu, 0.0) - i0.get(gpu, 0.0)
        jobs = {j: v - j0.get((g, j), 0.0) for (g, j), v in j1.items() if g == gpu}
        worst = max(worst, abs(de - di - sum(jobs.values())))
        jobs_txt = ", ".join(f"{j}={v:.1f}" for j, v in sorted(jobs.items())) or "-"
        print(f"{gpu:>4} {power.get(gpu, float('nan')):>12.1f} {de:>11.1f} {di:>12.1f}  {jobs_txt}")
    print(f"\nConservation (per GPU: jobs + idle == GPU energy): largest gap {worst:.3f} J")
    print("Carbon reports (per project and phase) come with the pipeline issues; "
          "run `wattprint --help` for their status.")
    return 0 if worst < 0.01 else 1
