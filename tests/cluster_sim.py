"""Telemetry of a small cluster over a few hours, as its exporters would have exported it. Not a test module.

The wattprint exporter's series are written by the exporter's own code: its `Poller` (energy split, idle, held GPU
time, job retention, --state-file saves and restores) polls a simulated board every second on a simulated clock, and
its `WattprintCollector` renders each scrape. A scenario drives it through what a real cluster meets: restarts with
and without a state file, unclean kills, scrape outages, a GPU that stops answering. dcgm-exporter needs no code of
ours: its energy counter is the board's hardware counter in millijoules since driver load, written as it labels it.

Power is piecewise constant (a job draws its watts from start to end, a GPU with no job `idle_w`), so every truth a
test needs is arithmetic on the scenario's own numbers (watts x seconds), never read back from wattprint.
Times are UTC seconds; jobs hold a GPU over (start, end]: the exporter's poll at `start` still sees the GPU idle.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from wattprint.exporter.backends.base import GpuInfo, GpuReading
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.jobs.base import Assignment, Job
from wattprint.exporter.poller import Poller

Sample = tuple[str, dict[str, str], float, float]

T0 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
MODEL = "NVIDIA H100 80GB HBM3"
IDLE_W = 70.0
BOOT = T0 - 86_400.0 * 3          # driver loaded three days before the window: counters are large
EXPORTED = ("wattprint_gpu_energy_joules_total", "wattprint_gpu_idle_energy_joules_total",
            "wattprint_job_energy_joules_total", "wattprint_job_gpu_seconds_total")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Run:
    """A job on one GPU of a node over (start, end], drawing `watts`."""

    job_id: str
    gpu: int
    start: float
    end: float
    watts: float

    @property
    def joules(self) -> float:
        return self.watts * (self.end - self.start)


@dataclass
class Node:
    """A node's boards: one hardware energy counter per GPU, driven by the runs on it."""

    host: str
    gpus: int = 2
    runs: list[Run] = field(default_factory=list)
    idle_w: float = IDLE_W
    uuid_prefix: str = ""
    replaced: dict[int, tuple[float, str]] = field(default_factory=dict)   # gpu -> (from when, new UUID)
    down: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # gpu -> spans it does not answer

    def uuid(self, gpu: int, t: float) -> str:
        when, new = self.replaced.get(gpu, (float("inf"), ""))
        return new if t >= when else f"GPU-{self.uuid_prefix or self.host}-{gpu}"

    def watts(self, gpu: int, t: float) -> float:
        """Power during (t - dt, t] for a small dt: a run holds the GPU over (start, end]."""
        return next((r.watts for r in self.runs if r.gpu == gpu and r.start < t <= r.end), self.idle_w)

    def joules(self, gpu: int, t0: float, t1: float) -> float:
        """Energy of one GPU over (t0, t1], exactly."""
        e = self.idle_w * (t1 - t0)
        for r in self.runs:
            if r.gpu == gpu:
                e += (r.watts - self.idle_w) * max(0.0, min(t1, r.end) - max(t0, r.start))
        return e

    def counter_mj(self, gpu: int, t: float) -> int:
        """The board's energy counter: millijoules since the driver loaded (or the board was swapped in)."""
        swapped = self.replaced.get(gpu, (float("inf"), ""))[0]
        return int(self.joules(gpu, swapped if t >= swapped else BOOT, t) * 1000)

    def jobs_at(self, gpu: int, t: float) -> list[str]:
        return [r.job_id for r in self.runs if r.gpu == gpu and r.start < t <= r.end]

    def answering(self, gpu: int, t: float) -> bool:
        return not any(a < t <= b for a, b in self.down.get(gpu, ()))


class _Board:
    """GpuBackend over a Node, read at the simulation's clock."""

    name = "sim"

    def __init__(self, node: Node, clock: Callable[[], float]) -> None:
        self.node, self.clock = node, clock

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> list[GpuReading]:
        t = self.clock()
        out = []
        for g in range(self.node.gpus):
            info = GpuInfo(index=str(g), uuid=self.node.uuid(g, t), model=MODEL, driver="550.54.15")
            if not self.node.answering(g, t):
                out.append(GpuReading(info=info, timestamp=t, ok=False, failed_calls=("energy",)))
                continue
            out.append(GpuReading(info=info, timestamp=t, energy_mj=self.node.counter_mj(g, t),
                                  power_watts=self.node.watts(g, t), pids=()))
        return out


class _Slurm:
    """JobDiscovery over a Node's runs."""

    name = "slurm"

    def __init__(self, node: Node, clock: Callable[[], float]) -> None:
        self.node, self.clock = node, clock
        self.errors: collections.Counter[str] = collections.Counter()

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        t = self.clock()
        out: Assignment = {}
        for g in range(self.node.gpus):
            jobs = self.node.jobs_at(g, t)
            if jobs:
                out[str(g)] = {Job(j, "slurm"): frozenset() for j in jobs}
        return out


class Exporter:
    """One wattprint-exporter process on a node: the real Poller on a simulated clock, polled by the Timeline; its
    series carry `cluster` as a static label (`--label cluster=...`), none when it is None."""

    def __init__(self, node: Node, cluster: str | None, *, state_file: Path | None = None, state_interval: float = 10.0,
                 poll_s: float = 1.0, retention: float = 300.0, hostname: str | None = None,
                 labels: Iterable[tuple[str, str]] = ()) -> None:
        self.node = node
        self.now = 0.0
        self.poller = Poller(_Board(node, lambda: self.now), _Slurm(node, lambda: self.now), interval=poll_s,
                             job_retention=retention, clock=lambda: self.now, wallclock=lambda: self.now,
                             state_file=str(state_file) if state_file else None, state_interval=state_interval)
        self.collector = WattprintCollector(lambda: self.poller.snapshot, hostname or node.host,
                                            static_labels=[*([("cluster", cluster)] if cluster else []), *labels],
                                            backend="sim")

    def poll(self, t: float) -> None:
        self.now = t
        self.poller.poll_once()

    def scrape(self, t: float, target: dict[str, str]) -> list[Sample]:
        out: list[Sample] = []
        for family in self.collector.collect():
            for s in family.samples:
                if s.name in EXPORTED:
                    out.append((s.name, {**s.labels, **target}, t, float(s.value)))
        return out


@dataclass
class Timeline:
    """Polls every exporter each second and scrapes it every `scrape_s` (Prometheus' timestamps), except in
    `outages` (Prometheus down or the target unreachable). Collects the scraped samples."""

    scrape_s: float = 15.0
    poll_s: float = 1.0
    outages: list[tuple[float, float]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @staticmethod
    def warm_up(exporter: Exporter, start: float, end: float, step: float = 300.0) -> None:
        """Polls from start to end, step apart, nothing scraped: an exporter that ran long before the window, so its
        totals are days of energy (the poller books any interval length alike)."""
        t = start
        while t < end:
            t = min(end, t + step)
            exporter.poll(t)

    def run(self, exporter: Exporter, start: float, end: float, target: dict[str, str]) -> None:
        """Poll (start, end] on the second and scrape on the scrape grid."""
        t = start
        while t < end:
            t = round(t + self.poll_s, 6)
            exporter.poll(t)
            on_grid = abs(t / self.scrape_s - round(t / self.scrape_s)) < 1e-9
            if on_grid and not any(a < t < b for a, b in self.outages):
                self.samples += exporter.scrape(t, target)


def dcgm_samples(node: Node, start: float, end: float, target: dict[str, str], *, scrape_s: float = 15.0,
                 hostname: str | None = None, hpc_job: Callable[[int, float], str] | None = None) -> list[Sample]:
    """dcgm-exporter's DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ since driver load) for every GPU of a node, labelled
    as dcgm-exporter labels it (Hostname, UUID, gpu, device, modelName), scraped every scrape_s over [start, end]."""
    out: list[Sample] = []
    t = start
    while t <= end + 1e-9:
        for g in range(node.gpus):
            labels = {"gpu": str(g), "UUID": node.uuid(g, t), "device": f"nvidia{g}", "modelName": MODEL,
                      "Hostname": hostname or node.host, "DCGM_FI_DRIVER_VERSION": "550.54.15", **target}
            if hpc_job is not None and hpc_job(g, t):
                labels["hpc_job"] = hpc_job(g, t)
            out.append(("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", labels, t, float(node.counter_mj(g, t))))
        t += scrape_s
    return out


def ledger_csv(path: Path, rows: Iterable[tuple[str, str, str, str, float, float, str, int | None]]) -> Path:
    """A CSV ledger: (job_id, project, phase, cluster, start, end, nodes, gpus)."""
    lines = ["job_id,project,phase,cluster,start,end,nodes,gpus"]
    for job_id, project, phase, cluster, start, end, nodes, gpus in rows:
        lines.append(f'{job_id},{project},{phase},{cluster},{iso(start)},{iso(end)},"{nodes}",'
                     f'{"" if gpus is None else gpus}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
