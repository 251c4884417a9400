"""Steady-state cost of a running exporter: CPU share, poll duration, memory.

Starts the exporter in this process exactly as production does (App(Config(...)), app.start()):
8 replayed GPUs, 2 mapping-dir jobs per GPU, a 1 s poll interval, the HTTP server up, and one
GET /metrics every 15 s over a kept-alive connection, as Prometheus scrapes. Then, over --seconds
of wall time after start-up:

  CPU          getrusage(RUSAGE_SELF) user+system time of the whole process / wall time, i.e. the
               fraction of one core (poller thread, HTTP server thread, the scrapes, and this script's
               main thread, which only sleeps between scrapes).
  poll         Snapshot.poll_duration_seconds of every poll (wall time of poll_once) and the poller
               thread's CPU time per poll (time.thread_time around poll_once).
  memory       VmHWM (peak RSS) and VmRSS of this process from /proc/self/status at the end, with, as
               context, the RSS of a bare Python interpreter, of one that imported prometheus_client,
               and of one that imported the exporter's modules (each a fresh subprocess).

The replay backend reads a trace from memory: it does not pay NVML's call latency. The script
adds up, from the H100 latency fixture (tests/fixtures/nvml-h100/api_latency_us.json), the
calls the nvml backend makes per GPU per poll, to show what real GPUs add to each poll's wall time.

    .venv/bin/python benchmarks/bench_poller.py [--seconds 60] [--markdown-out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from machinefacts import cpu_model  # noqa: E402  (benchmarks/, beside this script)

from wattprint.common.logs import setup_logging
from wattprint.exporter.app import App
from wattprint.exporter.config import Config
from wattprint.exporter.poller import Snapshot

JOBS_PER_GPU = 2
TARGET_CPU = 0.01  # of one core
TARGET_RSS_MB = 60.0
REPO = Path(__file__).resolve().parent.parent
# Mean µs per call over 500 calls on one H100 SXM, driver 580.159.04 (provenance: its folder's SOURCE.md)
LATENCY_FIXTURE = REPO / "tests" / "fixtures" / "nvml-h100" / "api_latency_us.json"
# What NvmlBackend.read() calls per GPU per poll (wattprint/exporter/backends/nvml.py); GetEnforcedPowerLimit
# was not timed in the fixture and is taken as costing what GetPowerUsage costs.
NVML_CALLS_PER_GPU = (
    ("nvmlDeviceGetTotalEnergyConsumption", "GetTotalEnergyConsumption"),
    ("nvmlDeviceGetPowerUsage", "GetPowerUsage"),
    ("nvmlDeviceGetEnforcedPowerLimit", "GetPowerUsage"),
    ("nvmlDeviceGetUtilizationRates", "GetUtilizationRates"),
    ("nvmlDeviceGetMemoryInfo", "GetMemoryInfo"),
    ("nvmlDeviceGetComputeRunningProcesses", "GetComputeRunningProcesses"),
)


def machine() -> str:
    model = cpu_model()
    return (f"{os.cpu_count()} CPU cores ({model}), no GPU, Linux {platform.release()}, "
            f"Python {platform.python_version()}, prometheus_client {metadata.version('prometheus_client')}")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def status_kb(field: str, text: str | None = None) -> int:
    text = text if text is not None else Path("/proc/self/status").read_text()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child_rss_kb(code: str) -> int:
    """VmRSS of a fresh interpreter (this venv's) after running ``code``."""
    probe = code + "\nprint(open('/proc/self/status').read())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return status_kb("VmRSS", out)


def load_latencies(path: str | None) -> tuple[dict[str, float], str]:
    p = Path(path) if path else LATENCY_FIXTURE
    if not p.is_file():
        raise SystemExit(f"--nvml-latency {p}: no such file")
    return json.loads(p.read_text()), str(p.relative_to(REPO) if p.is_relative_to(REPO) else p)


def run(seconds: float, gpus: int, scrape_every: float, tmp: Path) -> dict[str, float]:
    for gpu in range(gpus):
        ids = [str(1000 + gpu * JOBS_PER_GPU + j) for j in range(JOBS_PER_GPU)]
        (tmp / str(gpu)).write_text("\n".join(ids) + "\n")
    cfg = Config(
        backend="replay", replay_gpus=gpus, poll_interval=1.0, job_discovery="mapping-dir", mapping_dir=str(tmp),
        listen_address="127.0.0.1:0", labels=(("cluster", "bench"), ("region", "FR")), hostname="bench",
    )
    rss_before_app = status_kb("VmRSS")
    app = App(cfg)

    polls: list[tuple[float, float, float]] = []  # (perf_counter at end, poll_duration_seconds, thread CPU s)
    poll_once = app.poller.poll_once

    def measured_poll() -> Snapshot:
        c0 = time.thread_time()
        snap = poll_once()
        polls.append((time.perf_counter(), snap.poll_duration_seconds, time.thread_time() - c0))
        return snap

    app.poller.poll_once = measured_poll  # type: ignore[method-assign]  # the poller thread calls self.poll_once
    app.start()
    assert app.server is not None
    conn = http.client.HTTPConnection("127.0.0.1", app.server.port, timeout=10)
    scrapes: list[float] = []
    page = 0
    try:
        ru0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        pt0 = time.process_time()
        end = w0 + seconds
        next_scrape = w0
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if now >= next_scrape:
                t0 = time.perf_counter()
                conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
                resp = conn.getresponse()
                page = len(resp.read())
                scrapes.append(time.perf_counter() - t0)
                if resp.status != 200:
                    raise RuntimeError(f"GET /metrics answered {resp.status}")
                next_scrape += scrape_every
            time.sleep(max(0.0, min(next_scrape, end) - time.perf_counter()))
        ru1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        pt1 = time.process_time()
        status = Path("/proc/self/status").read_text()
    finally:
        conn.close()
        app.shutdown()

    wall = w1 - w0
    user, system = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    in_run = [p for p in polls if w0 <= p[0] <= w1]
    durations = [d for _, d, _ in in_run]
    cpus = [c for _, _, c in in_run]
    return {
        "gpus": gpus, "wall": wall, "user": user, "system": system, "process_time": pt1 - pt0,
        "cpu_fraction": (user + system) / wall, "polls": len(in_run),
        "poll_mean": statistics.fmean(durations), "poll_median": statistics.median(durations),
        "poll_p99": pct(durations, 99), "poll_max": max(durations),
        "poll_cpu_mean": statistics.fmean(cpus), "poll_cpu_p99": pct(cpus, 99),
        "poller_cpu_fraction": sum(cpus) / wall,
        "scrapes": len(scrapes), "scrape_median": statistics.median(scrapes), "scrape_max": max(scrapes),
        "gzip_bytes": page,
        "hwm_kb": status_kb("VmHWM", status), "rss_kb": status_kb("VmRSS", status),
        "rss_before_app_kb": rss_before_app,
    }


def markdown(r: dict[str, float], ctx: dict[str, int], lat: dict[str, float], lat_src: str, scrape_every: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mb = 1024.0
    cpu_ok = r["cpu_fraction"] <= TARGET_CPU
    rss_ok = r["hwm_kb"] / mb <= TARGET_RSS_MB
    per_gpu_us = sum(lat[key] for _, key in NVML_CALLS_PER_GPU)
    per_poll_ms = per_gpu_us * r["gpus"] / 1e3
    out = [
        f"Machine: {machine()}. Run: {now}; {r['gpus']} replay GPUs, {JOBS_PER_GPU} mapping-dir jobs per GPU, "
        f"poll interval 1 s, one gzip GET /metrics every {scrape_every:g} s, {r['wall']:.1f} s measured "
        "after start-up.",
        "",
        "| measure | value | target |",
        "|---|---:|:---|",
        f"| process CPU (user + system) / wall | {r['cpu_fraction'] * 100:.3f} % of one core "
        f"({r['user']:.3f} s user + {r['system']:.3f} s system in {r['wall']:.1f} s) | ≤ 1 %: "
        f"{'met' if cpu_ok else 'MISSED'} |",
        f"| of which the poller thread (sum of thread CPU in poll_once) | {r['poller_cpu_fraction'] * 100:.3f} % "
        "of one core | |",
        f"| polls in the window | {r['polls']} | |",
        f"| poll duration (wall of poll_once) mean / median / p99 / max | {r['poll_mean'] * 1e3:.3f} / "
        f"{r['poll_median'] * 1e3:.3f} / {r['poll_p99'] * 1e3:.3f} / {r['poll_max'] * 1e3:.3f} ms | |",
        f"| poll CPU (poller thread) mean / p99 | {r['poll_cpu_mean'] * 1e3:.3f} / {r['poll_cpu_p99'] * 1e3:.3f} ms"
        " | |",
        f"| scrapes: count, median / max latency | {r['scrapes']}, {r['scrape_median'] * 1e3:.2f} / "
        f"{r['scrape_max'] * 1e3:.2f} ms ({r['gzip_bytes']} bytes gzip) | |",
        f"| peak RSS (VmHWM) | {r['hwm_kb'] / mb:.1f} MB | ≤ {TARGET_RSS_MB:g} MB: {'met' if rss_ok else 'MISSED'} |",
        f"| RSS at the end (VmRSS) | {r['rss_kb'] / mb:.1f} MB | |",
        f"| RSS of this process before App() (benchmark + exporter imports) | {r['rss_before_app_kb'] / mb:.1f} MB "
        "| |",
        "",
        "Context (fresh subprocesses of the same interpreter, VmRSS):",
        "",
        "| process | RSS |",
        "|---|---:|",
        f"| bare `python -c` | {ctx['bare'] / mb:.1f} MB |",
        f"| after `import prometheus_client` | {ctx['prometheus_client'] / mb:.1f} MB |",
        f"| after importing the exporter (app, web, replay, mapping-dir) | {ctx['exporter'] / mb:.1f} MB |",
        "",
        f"What real NVML adds (per-call means from {lat_src}): the nvml backend makes, per GPU per poll,",
        "",
        "| call | µs |",
        "|---|---:|",
    ]
    for call, key in NVML_CALLS_PER_GPU:
        note = " (taken as GetPowerUsage)" if call == "nvmlDeviceGetEnforcedPowerLimit" else ""
        out.append(f"| {call}{note} | {lat[key]:.1f} |")
    out += [
        f"| **per GPU** | **{per_gpu_us:.1f}** |",
        "",
        f"× {r['gpus']} GPUs = {per_poll_ms:.1f} ms of poller-thread wall time per 1 s poll "
        f"({per_poll_ms / 10:.1f} % of the interval), against {r['poll_mean'] * 1e3:.3f} ms measured with replay; "
        f"{lat['GetTotalEnergyConsumption'] / per_gpu_us * 100:.1f} % of it is nvmlDeviceGetTotalEnergyConsumption. "
        "This is time the poller thread spends blocked in the driver, not necessarily CPU time, and it is off the "
        "scrape path (scrapes serialise the last snapshot). nvmlDeviceGetProcessUtilization, called when a GPU "
        "has processes, is not in the fixture and not counted.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measured wall time (default: %(default)s)")
    p.add_argument("--gpus", type=int, default=8, help="replay GPUs (default: %(default)s)")
    p.add_argument("--scrape-every", type=float, default=15.0, metavar="SECONDS",
                   help="GET /metrics period, as Prometheus' scrape_interval (default: %(default)s)")
    p.add_argument("--nvml-latency", metavar="PATH",
                   help="api_latency_us.json to use (default: tests/fixtures/nvml-h100/api_latency_us.json)")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown tables to PATH")
    args = p.parse_args(argv)
    setup_logging("warning")
    lat, lat_src = load_latencies(args.nvml_latency)
    ctx = {
        "bare": child_rss_kb("pass"),
        "prometheus_client": child_rss_kb("import prometheus_client"),
        "exporter": child_rss_kb("import wattprint.exporter.app, wattprint.common.web, "
                                 "wattprint.exporter.backends.replay, "
                                 "wattprint.exporter.jobs.mapping_dir"),
    }
    with tempfile.TemporaryDirectory(prefix="wattprint-bench-") as tmp:
        r = run(args.seconds, args.gpus, args.scrape_every, Path(tmp))
    text = markdown(r, ctx, lat, lat_src, args.scrape_every)
    print(text, end="")
    if args.markdown_out:
        Path(args.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
