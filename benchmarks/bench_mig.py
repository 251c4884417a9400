"""What MIG costs the exporter: poll and scrape with 8 MIG-partitioned GPUs (7 instances each) against 8 whole GPUs,
and the dcgm backend's forgiving line reader against prometheus_client's parser, all in one run.

  poll     Poller.poll_once on the replay backend (a scripted clock, 1 s apart), CPU time of the calling thread per
           poll (time.thread_time), median and p99 of --polls polls after --warm-up ones. Whole GPUs: 2 mapping-dir
           jobs per GPU (bench_poller.py's set-up); MIG: 7 1g.10gb instances per GPU, one job on each
           (`<gpu>.<gi>` mapping files), so 56 jobs and 56 instance splits per poll.
  scrape   rendering the metrics page of the last snapshot (prometheus_client.generate_latest over the exporter's
           collector, what each GET /metrics does), median of --scrapes, and the page's size.
  dcgm     parsing one dcgm-exporter page of 8 boards x 7 MIG instances (the counters dcgm-exporter exports by
           default, each line repeated per instance as current releases do, plus GR_ENGINE_ACTIVE): the exporter's
           line reader (wattprint/exporter/backends/exposition.py) against
           prometheus_client.parser.text_string_to_metric_families, which the dcgm backend used before and which
           rejects a whole page for one bad line. Median of --parses.

    .venv/bin/python benchmarks/bench_mig.py [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_poller import machine  # noqa: E402
from wattprint.common.logs import setup_logging  # noqa: E402
from wattprint.exporter.backends.exposition import parse  # noqa: E402
from wattprint.exporter.backends.replay import ReplayBackend  # noqa: E402
from wattprint.exporter.collectors import WattprintCollector  # noqa: E402
from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery  # noqa: E402
from wattprint.exporter.poller import Poller  # noqa: E402

GPUS = 8
MIG = ("1g.10gb",) * 7
# dcgm-exporter's default counters (etc/default-counters.csv) that a MIG line carries, and the profiling field
DCGM_FIELDS = (
    "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
    "DCGM_FI_DEV_VGPU_LICENSE_STATUS", "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
)


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def exporter_cost(mig: bool, polls: int, warm_up: int, scrapes: int, tmp: Path) -> dict[str, float]:
    for gpu in range(GPUS):
        if mig:
            for gi in range(1, len(MIG) + 1):
                (tmp / f"{gpu}.{gi}").write_text(f"{gpu * 100 + gi}\n")
        else:
            (tmp / str(gpu)).write_text(f"{gpu * 100 + 1}\n{gpu * 100 + 2}\n")
    clock = Clock()
    backend = ReplayBackend(gpus=GPUS, epoch=clock.t, wallclock=clock, hostname="bench", mig=MIG if mig else ())
    backend.open()
    poller = Poller(backend, MappingDirDiscovery(tmp), clock=clock, wallclock=clock)
    cpu = []
    for i in range(warm_up + polls):
        clock.t += 1.0
        c0 = time.thread_time()
        poller.poll_once()
        if i >= warm_up:
            cpu.append(time.thread_time() - c0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(WattprintCollector(lambda: poller.snapshot, "bench", (("cluster", "bench"),), "replay"))
    render = []
    page = b""
    for _ in range(scrapes):
        t0 = time.perf_counter()
        page = generate_latest(reg)
        render.append(time.perf_counter() - t0)
    jobs = sum(len(g.jobs) for g in poller.snapshot.gpus)
    return {"poll_cpu_median": statistics.median(cpu), "poll_cpu_p99": pct(cpu, 99),
            "render_median": statistics.median(render), "page_bytes": len(page),
            "series": sum(1 for line in page.decode().splitlines() if line and not line.startswith("#")),
            "jobs": jobs}


def dcgm_page() -> str:
    lines = []
    for name in DCGM_FIELDS:
        lines.append(f"# HELP {name} {name}.")
        lines.append(f"# TYPE {name} {'counter' if 'ENERGY' in name or 'ERRORS' in name else 'gauge'}")
        for gpu in range(GPUS):
            base = (f'gpu="{gpu}",UUID="GPU-{gpu:08d}-0000-0000-0000-000000000000",'
                    f'pci_bus_id="00000000:{gpu:02X}:00.0",device="nvidia{gpu}",'
                    'modelName="NVIDIA H100 80GB HBM3",Hostname="node-1",DCGM_FI_DRIVER_VERSION="550.54.15"')
            for gi in range(1, len(MIG) + 1):
                value = 0.42 if name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" else 123456789 + gpu
                lines.append(f'{name}{{{base},GPU_I_PROFILE="1g.10gb",GPU_I_ID="{gi}"}} {value}')
    return "\n".join(lines) + "\n"


def parse_cost(parses: int) -> dict[str, float]:
    page = dcgm_page()
    ours, strict = [], []
    n_ours = n_strict = 0
    for _ in range(parses):
        t0 = time.perf_counter()
        n_ours = sum(1 for _ in parse(page))
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_strict = sum(len(f.samples) for f in text_string_to_metric_families(page))
        strict.append(time.perf_counter() - t0)
    assert n_ours == n_strict, (n_ours, n_strict)
    return {"ours": statistics.median(ours), "strict": statistics.median(strict), "lines": n_ours,
            "bytes": len(page.encode())}


def markdown(plain: dict[str, float], mig: dict[str, float], dcgm: dict[str, float], a: argparse.Namespace) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    def row(what: str, key: str, scale: float, unit: str, fmt: str = ".3f") -> str:
        return (f"| {what} | {plain[key] * scale:{fmt}} {unit} | {mig[key] * scale:{fmt}} {unit} | "
                f"{mig[key] / plain[key]:.2f}× |")

    return "\n".join([
        f"Machine: {machine()}. Run: {now}; {GPUS} replay GPUs, a scripted 1 s clock, {a.polls} polls measured after "
        f"{a.warm_up}, {a.scrapes} renders, {a.parses} parses.",
        "",
        f"| | {GPUS} whole GPUs, 2 jobs each | {GPUS} GPUs × 7 MIG instances, 1 job each | MIG / whole |",
        "|---|---:|---:|---:|",
        f"| jobs | {plain['jobs']} | {mig['jobs']} | |",
        row("poll CPU, median", "poll_cpu_median", 1e3, "ms"),
        row("poll CPU, p99", "poll_cpu_p99", 1e3, "ms"),
        row("render /metrics, median", "render_median", 1e3, "ms"),
        row("page size", "page_bytes", 1 / 1024, "KiB", ".1f"),
        f"| series on the page | {plain['series']} | {mig['series']} | {mig['series'] / plain['series']:.2f}× |",
        "",
        f"dcgm-exporter page of {GPUS} boards × 7 MIG instances ({dcgm['lines']:,} sample lines, "
        f"{dcgm['bytes'] / 1024:.0f} KiB): the exporter's line reader {dcgm['ours'] * 1e3:.2f} ms, "
        f"prometheus_client's parser {dcgm['strict'] * 1e3:.2f} ms: **{dcgm['ours'] / dcgm['strict']:.2f}×**.",
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=600)
    p.add_argument("--warm-up", type=int, default=30)
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--parses", type=int, default=50)
    p.add_argument("--markdown-out", metavar="PATH")
    p.add_argument("--quick", action="store_true", help="a few rounds, to smoke-test the script")
    a = p.parse_args(argv)
    if a.quick:
        a.polls, a.warm_up, a.scrapes, a.parses = 20, 2, 5, 2
    setup_logging("warning")
    with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
        plain = exporter_cost(False, a.polls, a.warm_up, a.scrapes, Path(t1))
        mig = exporter_cost(True, a.polls, a.warm_up, a.scrapes, Path(t2))
    text = markdown(plain, mig, parse_cost(a.parses), a)
    print(text, end="")
    if a.markdown_out:
        Path(a.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
