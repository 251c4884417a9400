"""The exporters' pages read directly, and the counters at S and E they give (the reference)."""


from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from .plan import CPU_KINDS, GPU_KINDS, INSTANCE_KINDS, JOB_KINDS, METRICS, POLLS, GpuKey, Plan, SeriesKey


@dataclass
class Page:
    """One exporter page: its poll number and its energy counters (joules)."""

    polls: int
    values: dict[SeriesKey, float]
    read_at: float = 0.0           # when this poll's page was first read


def parse_page(text: str) -> Page:
    polls = -1
    values: dict[SeriesKey, float] = {}
    kinds = {v: k for k, v in METRICS.items()}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == POLLS:
                polls = int(s.value)
            elif s.name in kinds:
                values[series_key(kinds[s.name], s.labels)] = s.value
    return Page(polls, values)


def series_key(kind: str, labels: dict[str, str]) -> SeriesKey:
    device = (labels.get("socket", ""), labels.get("domain", "")) if kind in (*CPU_KINDS, "cpu_seconds") else \
        (labels.get("gpu", ""), labels.get("uuid", ""))
    last = labels.get("job_id", "") if kind in JOB_KINDS else \
        labels.get("gpu_instance", "") if kind in INSTANCE_KINDS else ""
    return (kind, labels.get("cluster", ""), labels.get("hostname", ""), *device, last)


class Capture:
    """Reads every exporter's /metrics every `period` seconds in the background; keeps each poll's page once."""

    def __init__(self, targets: dict[str, str], period: float = 0.1) -> None:
        self.targets = targets          # instance (host:port) -> node name
        self.period = period
        self.pages: dict[str, dict[int, Page]] = {t: {} for t in targets}
        self.reads = 0
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(t,), daemon=True) for t in targets]

    def _loop(self, instance: str) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                page = parse_page(session.get(f"http://{instance}/metrics", timeout=2).text)
                page.read_at = time.time()
                self.pages[instance].setdefault(page.polls, page)
                self.reads += 1
            except (requests.RequestException, ValueError):
                self.errors += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def __enter__(self) -> Capture:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@dataclass
class Reference:
    """The exporters' counters at S and E, and what was seen on the way."""

    at_start: dict[SeriesKey, float]
    at_end: dict[SeriesKey, float]
    pages_checked: int                       # exporter pages whose conservation was checked
    conservation_errors: list[str]           # per page and GPU where jobs + idle != GPU (mJ)
    prometheus_mismatches: list[str]         # series where Prometheus' value differs from the exporter's page
    intensity: dict[str, float] = field(default_factory=dict)  # zone -> serve-intensity's value, at E
    # the same counters read at wall-clock S and E (the last page read by then): for scale only
    wall_start: dict[SeriesKey, float] = field(default_factory=dict)
    wall_end: dict[SeriesKey, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rapl_wraps: int = 0                      # RAPL counter wraps the hosts went through during the run
    mig_pages: int = 0                       # pages of MIG nodes whose instance accounts were checked
    mig_errors: list[str] = field(default_factory=list)   # per page and board where an instance identity failed
    edge_polls: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> its polls Prometheus has at S, E
    kube_started: float = 0.0                # when the Kubernetes node's exporter started (its pods held GPUs since)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # WattprintJobHoldingIdleGpus alerts seen firing
    # BMC nodes: the exporter's node energy counter as Prometheus holds it at S and E, and what the BMC's model
    # (bmc.py) put in beside the GPUs and RAPL over [S, E] by the wall clock (overhead and PSU losses; for scale)
    node_at: dict[str, tuple[float, float]] = field(default_factory=dict)
    window_s: int = 0                        # E - S
    bmc_overhead_j: dict[str, float] = field(default_factory=dict)

    def increase(self, key: SeriesKey) -> float:
        return self.at_end[key] - self.at_start.get(key, 0.0)

    def keys(self, kind: str) -> list[SeriesKey]:
        return sorted(k for k in self.at_end if k[0] == kind)


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else (0.0 if a == 0 else math.inf)


def pct(a: float, b: float) -> str:
    return f"{(a - b) / b * 100:+.4f} %" if b else ("0 %" if a == 0 else "inf")


def mj(v: float) -> int:
    return round(v * 1000)


def uj(v: float) -> int:
    return round(v * 1_000_000)


def page_conservation(node: str, page: Page) -> list[str]:
    """Per GPU (mJ, the GPU accounts' unit) and per socket and domain (µJ, RAPL's): jobs + idle == the whole."""
    gpus: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])  # [gpu mJ, jobs + idle mJ]
    cpus: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])  # [socket µJ, jobs + idle µJ]
    for key, v in page.values.items():
        if key[0] in GPU_KINDS:
            gpus[key[1:5]][0 if key[0] == "gpu" else 1] += mj(v)
        elif key[0] in CPU_KINDS:
            cpus[key[1:5]][0 if key[0] == "cpu" else 1] += uj(v)
    return [f"{node} poll {page.polls} GPU {g[3]}: jobs + idle {b} mJ != GPU {a} mJ"
            for g, (a, b) in sorted(gpus.items()) if a != b] + \
           [f"{node} poll {page.polls} socket {c[2]} {c[3]}: jobs + idle {b} µJ != socket {a} µJ"
            for c, (a, b) in sorted(cpus.items()) if a != b]


def page_mig(plan: Plan, node: str, page: Page) -> list[str]:
    """Per MIG board, in mJ: every instance == its jobs (the plan's `<gpu>.<GPU_I_ID>` files) + its idle; the
    instances add up to at most the board; the board's idle == the instances' idle + the unpartitioned slices'
    part (board - instances)."""
    on: dict[tuple[str, str], list[str]] = defaultdict(list)     # (gpu, gpu instance) -> job ids
    for slot, ids in plan.mapping(node, "before").items():
        gpu, _, gi = slot.partition(".")
        if gi:
            on[(gpu, gi)] += ids
    boards: dict[GpuKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    inst: dict[tuple[GpuKey, str], list[int]] = defaultdict(lambda: [0, 0])     # [energy, idle]
    jobs: dict[tuple[str, str], int] = {}
    for key, v in page.values.items():
        g = key[1:5]
        if key[0] in ("gpu", "idle"):
            boards[g][key[0]] += mj(v)
        elif key[0] in INSTANCE_KINDS:
            inst[(g, key[5])][0 if key[0] == "inst" else 1] += mj(v)
        elif key[0] == "job":
            jobs[(g[2], key[5])] = mj(v)
    errors = []
    for (g, gi), (energy, idle) in sorted(inst.items()):
        charged = sum(jobs.get((g[2], j), 0) for j in on.get((g[2], gi), []))
        if charged + idle != energy:
            errors.append(f"{node} poll {page.polls} GPU {g[2]} instance {gi}: jobs {charged} + idle {idle} mJ != "
                          f"instance {energy} mJ")
    for g, b in sorted(boards.items()):
        parts = [(e, i) for (gg, _), (e, i) in inst.items() if gg == g]
        if not parts:
            errors.append(f"{node} poll {page.polls} GPU {g[2]}: no MIG instance exported")
            continue
        total, total_idle = sum(e for e, _ in parts), sum(i for _, i in parts)
        if total > b["gpu"] or b["idle"] != total_idle + (b["gpu"] - total):
            errors.append(f"{node} poll {page.polls} GPU {g[2]}: board {b['gpu']} mJ, idle {b['idle']} mJ, instances "
                          f"{total} mJ with idle {total_idle} mJ")
    return errors
