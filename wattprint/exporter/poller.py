"""Background polling: read GPUs, find jobs, book each interval's energy.

Collection is decoupled from scrapes: a thread calls ``poll_once`` every
``interval`` seconds and publishes an immutable Snapshot; scrapes only
serialise the latest one. All energy is kept as integer millijoules so that,
per GPU, job energy + idle energy == GPU energy exactly at every snapshot. The
time each job held each GPU is integer microseconds, so that its sums never drift.
Host CPU energy (the rapl and cgroups collectors, ``wattprint/exporter/host``) is read
in the same poll and booked apart, in integer microjoules.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..common.logs import kv, typed
from .attribution import split_energy_mj
from .backends.base import BackendError, GpuBackend, GpuInfo, GpuReading, MigInstance, id_order, instance_key
from .host.accounting import HostPoller, HostSnapshot
from .jobs.base import Assignment, Job, JobDiscovery
from .mig import board_shares
from .state import SavedGpu, SavedJob, StateError, dump_state, load_state_doc, write_state
from .ticker import run_every

if TYPE_CHECKING:
    from .node.accounting import NodePowerPoller

log = logging.getLogger("wattprint.poller")

ENERGY_FROM_COUNTER = "counter"
ENERGY_FROM_POWER = "power_integration"


# The default of --held-idle-utilization: below 5 % utilisation a held GPU (or MIG instance) counts as idle.
HELD_IDLE_UTILIZATION = 0.05


@dataclass
class _JobAccount:
    energy_mj: int = 0
    gpu_us: int = 0
    last_seen: float = 0.0
    running: bool = True
    held_idle_mj: int = 0      # energy of the intervals in which the GPU (instance) it held was idle
    held_idle_us: int = 0
    equal_share_us: int = 0    # held time of the intervals split equally with other jobs (no per-process usage)


@dataclass
class _InstanceAccount:
    """A MIG instance's part of the board energy: energy_mj == its jobs' + idle_mj, and over the board the
    instances' energy plus the unpartitioned slices' make the board's."""

    instance: MigInstance
    energy_mj: int = 0
    idle_mj: int = 0


@dataclass
class _GpuAccount:
    info: GpuInfo
    up: bool = False
    energy_source: str = ENERGY_FROM_COUNTER
    last_counter_mj: int | None = None
    last_ts: float | None = None
    last_power: float | None = None
    carry_mj: float = 0.0
    energy_mj: int = 0
    idle_mj: int = 0
    resets: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    jobs: dict[Job, _JobAccount] = field(default_factory=dict)
    reading: GpuReading | None = None
    # MIG: the board's instances by GPU instance id, and the lowest power the board has shown over a poll
    # interval (W), the idle floor of the split (mig.py) unless --mig-idle-floor-watts sets it
    instances: dict[str, _InstanceAccount] = field(default_factory=dict)
    floor_watts: float | None = None


@dataclass(frozen=True)
class JobSnapshot:
    job: Job
    energy_mj: int
    gpu_us: int
    running: bool
    held_idle_mj: int = 0
    held_idle_us: int = 0
    equal_share_us: int = 0


@dataclass(frozen=True)
class InstanceSnapshot:
    instance: MigInstance
    energy_mj: int
    idle_mj: int


@dataclass(frozen=True)
class GpuSnapshot:
    info: GpuInfo
    up: bool
    energy_source: str
    energy_mj: int
    idle_mj: int
    power_watts: float | None
    power_limit_watts: float | None
    utilization_ratio: float | None
    memory_used_bytes: int | None
    counter_resets: int
    errors: tuple[tuple[str, int], ...]
    jobs: tuple[JobSnapshot, ...]
    instances: tuple[InstanceSnapshot, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    generation: int
    gpus: tuple[GpuSnapshot, ...] = ()
    polls: int = 0
    poll_duration_seconds: float = 0.0
    last_success_unixtime: float = 0.0
    # collector name -> (success, duration seconds) of the last poll
    collectors: tuple[tuple[str, bool, float], ...] = ()
    discovery_name: str = "none"
    # how the discovery finds jobs now, where it has several ways (kubernetes: podresources, or proc as a fallback)
    discovery_method: str = ""
    discovery_errors: tuple[tuple[str, int], ...] = ()
    # lines of a page the backend reads (dcgm-exporter's) that did not parse, by family
    backend_skipped: tuple[tuple[str, int], ...] = ()
    # None without --state-file; else failed writes of the state file since start.
    state_save_errors: int | None = None
    # None with --no-collector.rapl.
    host: HostSnapshot | None = None


class Poller:
    def __init__(
        self,
        backend: GpuBackend,
        discovery: JobDiscovery,
        interval: float = 1.0,
        job_retention: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        state_file: str | None = None,
        state_interval: float = 10.0,
        host: HostPoller | None = None,
        held_idle_utilization: float = HELD_IDLE_UTILIZATION,
        mig_idle_floor_watts: float | None = None,
        node: NodePowerPoller | None = None,
    ) -> None:
        self.backend = backend
        # The node-power poller runs on its own thread; this one only keeps its totals in the state file.
        self.node = node
        self.held_idle_utilization = held_idle_utilization
        self.mig_idle_floor_watts = mig_idle_floor_watts
        self.host = host
        self.discovery = discovery
        self.interval = interval
        self.job_retention = job_retention
        self._clock = clock
        self._wallclock = wallclock
        self._accounts: dict[str, _GpuAccount] = {}
        self._polls = 0
        self._last_success = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state_file = state_file
        self.state_interval = state_interval
        self.state_save_errors = 0
        self._last_save: float | None = None
        # GPU UUID -> totals from the state file, taken over when that GPU is first read.
        self._restored: dict[str, SavedGpu] = {}
        self.snapshot = Snapshot(generation=0, discovery_name=discovery.name)
        if state_file:
            self._load_state(state_file)

    # -- the state file ---------------------------------------------------------------
    def _load_state(self, path: str) -> None:
        try:
            doc = load_state_doc(path)
        except StateError as exc:
            log.warning("state file not used, counters start from 0", extra=kv(path=path, reason=exc))
            return
        self._restored = doc.gpus
        log.info("state file loaded", extra=kv(path=path, gpus=len(self._restored)))
        if doc.host is not None and self.host is not None:
            self.host.restore(doc.host)
        if doc.node is not None and self.node is not None:
            self.node.restore(doc.node)

    def _account_from_state(self, info: GpuInfo, saved: SavedGpu, now: float) -> _GpuAccount:
        acc = _GpuAccount(info=info, energy_mj=saved.energy_mj, idle_mj=saved.idle_mj, resets=saved.resets)
        # The hardware kept counting while the exporter was down: the next delta from this baseline
        # (booked like any interval's) carries the downtime's energy; a counter below it is a reset.
        acc.last_counter_mj = saved.raw_counter_mj
        # No reading time is restored (reading timestamps are per process), so the first interval after a
        # restart books its energy but no held time: nothing says how much of the downtime each job held.
        for s in saved.jobs:
            acc.jobs[s.job] = _JobAccount(energy_mj=s.energy_mj, gpu_us=s.gpu_us, last_seen=now, running=False,
                                          held_idle_mj=s.held_idle_mj, held_idle_us=s.held_idle_us,
                                          equal_share_us=s.equal_share_us)
        if saved.idle_mj + sum(s.energy_mj for s in saved.jobs) > saved.energy_mj:
            log.warning("state file: jobs + idle exceed the GPU energy", extra=kv(uuid=info.uuid))
        return acc

    def save_state(self) -> bool:
        """Write the state file now (no-op without one); False if the write failed."""
        if not self.state_file:
            return True
        with self._lock:
            return self._save_state_locked()

    def _save_state_locked(self) -> bool:
        assert self.state_file is not None
        self._last_save = self._clock()
        gpus = [
            SavedGpu(uuid=uuid, index=acc.info.index,
                     raw_counter_mj=acc.last_counter_mj if acc.energy_source == ENERGY_FROM_COUNTER else None,
                     energy_mj=acc.energy_mj, idle_mj=acc.idle_mj, resets=acc.resets,
                     jobs=tuple(SavedJob(job=j, energy_mj=ja.energy_mj, gpu_us=ja.gpu_us,
                                         held_idle_mj=ja.held_idle_mj, held_idle_us=ja.held_idle_us,
                                         equal_share_us=ja.equal_share_us)
                                for j, ja in sorted(acc.jobs.items())))
            for uuid, acc in sorted(self._accounts.items())
        ]
        # GPUs restored from the file but not read yet keep their saved totals.
        gpus += [g for uuid, g in sorted(self._restored.items()) if uuid not in self._accounts]
        try:
            host = self.host.saved() if self.host is not None else None
            node = self.node.saved() if self.node is not None else None
            write_state(self.state_file, dump_state(gpus, self._wallclock(), host, node))
        except OSError as exc:
            self.state_save_errors += 1
            if self.state_save_errors == 1:  # once: a full or read-only disk would log every poll otherwise
                log.error("cannot write the state file (counted in wattprint_exporter_state_save_errors_total; "
                          "logged once)", extra=kv(path=self.state_file, err=exc))
            return False
        return True

    # -- one poll -----------------------------------------------------------------
    def poll_once(self) -> Snapshot:
        with self._lock:
            start = time.perf_counter()
            collectors: list[tuple[str, bool, float]] = []
            readings: list[GpuReading] = []
            try:
                readings = self.backend.read()
                gpu_ok = True
            except BackendError as exc:
                gpu_ok = False
                log.warning("gpu read failed", extra=kv(backend=self.backend.name, err=exc))
                for acc in self._accounts.values():
                    acc.up = False
                    acc.errors["backend"] += 1
            t_gpu = time.perf_counter()
            collectors.append(("gpu", gpu_ok, t_gpu - start))

            assignment: Assignment = {}
            jobs_ok = True
            if readings:
                try:
                    assignment = self.discovery.discover(readings)
                except Exception as exc:  # a discovery bug must not stop energy accounting
                    jobs_ok = False
                    log.error("job discovery failed", extra=kv(discovery=self.discovery.name, err=typed(exc)))
            collectors.append(("jobs", jobs_ok, time.perf_counter() - t_gpu))

            seen = set()
            now = self._clock()
            for reading in readings:
                seen.add(reading.info.uuid)
                self._book(reading, assignment, now)
            for uuid, acc in self._accounts.items():
                if gpu_ok and uuid not in seen:
                    acc.up = False
                    acc.errors["missing"] += 1
                self._expire_jobs(acc, now)

            if self.host is not None:
                # Apart from the GPU: a RAPL or cgroup failure never stops GPU accounting, nor the reverse.
                try:
                    collectors.extend(self.host.poll(now, self._polls))
                except Exception as exc:  # the collectors catch their own faults; this is for a bug in the booking
                    log.error("host energy accounting failed", extra=kv(err=typed(exc)))
                    collectors.append(("rapl", False, 0.0))

            if gpu_ok and self._restored:
                for uuid in self._restored:
                    if uuid not in seen:
                        log.info("state file: GPU not found, its saved totals are dropped", extra=kv(uuid=uuid))
                self._restored = {}

            self._polls += 1
            if gpu_ok:
                self._last_success = self._wallclock()
            # Saved before the snapshot is published, so no scraped value is newer than the file
            # when the state interval is the poll interval.
            if self.state_file and (self._last_save is None or now - self._last_save >= self.state_interval):
                self._save_state_locked()
            self.snapshot = self._build_snapshot(collectors, time.perf_counter() - start)
            return self.snapshot

    def _book(self, r: GpuReading, assignment: Assignment, now: float) -> None:
        acc = self._accounts.get(r.info.uuid)
        if acc is None:
            saved = self._restored.pop(r.info.uuid, None)
            acc = _GpuAccount(info=r.info) if saved is None else self._account_from_state(r.info, saved, now)
            self._accounts[r.info.uuid] = acc
        acc.info = r.info
        acc.reading = r
        for call in r.failed_calls:
            acc.errors[call] += 1
        acc.up = r.ok
        if not r.ok:
            # Keep the last good counter: the hardware keeps counting, so the delta
            # across the outage is booked when the GPU answers again.
            return

        delta = 0
        if r.energy_mj is not None:
            acc.energy_source = ENERGY_FROM_COUNTER
            if acc.last_counter_mj is not None:
                if r.energy_mj >= acc.last_counter_mj:
                    delta = r.energy_mj - acc.last_counter_mj
                else:
                    # Driver reload or GPU reset restarted the counter. We cannot know
                    # how much of this interval ran before the reset, so it is dropped:
                    # at most one poll interval is lost, and the exported counters never go back.
                    acc.resets += 1
                    log.warning("energy counter went backwards", extra=kv(
                        gpu=r.info.index, uuid=r.info.uuid, from_mj=acc.last_counter_mj, to_mj=r.energy_mj))
            acc.last_counter_mj = r.energy_mj
            acc.last_power = None
        elif r.power_watts is not None:
            acc.energy_source = ENERGY_FROM_POWER
            # A counter seen again later restarts from a fresh baseline, so the span
            # integrated here is never booked a second time from the counter delta.
            acc.last_counter_mj = None
            if acc.last_ts is not None and acc.last_power is not None:
                exact = (acc.last_power + r.power_watts) / 2.0 * (r.timestamp - acc.last_ts) * 1000.0
                exact += acc.carry_mj
                delta = max(0, int(exact))
                acc.carry_mj = exact - delta
            acc.last_power = r.power_watts
        # The span the delta covers: since the last good reading, so after an outage the whole outage, as
        # for its energy. From whole microseconds of each end, so the sums telescope and never drift.
        # Booked even when the energy of the interval is dropped (counter reset): the jobs still held the GPU.
        span_us = 0 if acc.last_ts is None else max(0, _us(r.timestamp) - _us(acc.last_ts))
        acc.last_ts = r.timestamp

        for ja in acc.jobs.values():
            ja.running = False
        acc.energy_mj += delta
        if not r.mig:
            self._book_group(acc, delta, span_us, assignment.get(r.info.index, {}), r.process_sm_util,
                             self._idle(r.utilization_ratio), now)
            return
        self._book_mig(acc, r, assignment, delta, span_us, now)

    def _book_mig(self, acc: _GpuAccount, r: GpuReading, assignment: Assignment, delta: int, span_us: int,
                  now: float) -> None:
        """A MIG board: its energy split among its instances (mig.board_shares), each instance's part among the
        jobs on it. A job known only by the board (a `<gpu>` mapping file) holds every instance no job is known on."""
        if span_us > 0 and delta > 0:
            watts = delta / 1000.0 / (span_us / 1e6)
            acc.floor_watts = watts if acc.floor_watts is None else min(acc.floor_watts, watts)
        floor = self.mig_idle_floor_watts if self.mig_idle_floor_watts is not None else acc.floor_watts
        parts = board_shares(delta, r.mig, r.mig_slices, span_us / 1e6, floor, rotate=self._polls)
        acc.idle_mj += parts.unpartitioned_mj
        board_jobs = assignment.get(r.info.index, {})
        timed: set[Job] = set()
        live = {}
        for inst in r.mig:
            ia = acc.instances.get(inst.gi_id)
            if ia is None:
                ia = acc.instances[inst.gi_id] = _InstanceAccount(instance=inst)
            ia.instance = inst
            live[inst.gi_id] = ia
            part = parts.instances_mj[inst.gi_id]
            jobs = assignment.get(instance_key(r.info.index, inst.gi_id)) or board_jobs
            ia.energy_mj += part
            ia.idle_mj += self._book_group(acc, part, span_us, jobs, r.process_sm_util,
                                           self._idle(inst.activity), now, timed)
        acc.instances = live       # an instance destroyed (re-partitioned) is no longer exported

    def _idle(self, utilization: float | None) -> bool:
        """Whether a held GPU or instance counts as idle in an interval (unknown utilisation: not idle)."""
        return utilization is not None and utilization < self.held_idle_utilization

    def _book_group(self, acc: _GpuAccount, energy: int, span_us: int, jobs: dict[Job, frozenset[int]],
                    sm_util: dict[int, float], idle: bool, now: float, timed: set[Job] | None = None) -> int:
        """Book `energy` (mJ) of one GPU or MIG instance to the jobs on it; returns what went to idle. `timed`: the
        jobs whose held time this interval was booked already (a job on two instances of a board holds it once)."""
        timed = set() if timed is None else timed
        jobs = _one_per_job_id(acc, jobs)
        ordered = sorted(jobs)
        fresh = {job for job in ordered if job not in timed}
        timed |= fresh
        for job in ordered:
            account = acc.jobs.setdefault(job, _JobAccount())
            account.running = True
            account.last_seen = now
            # Each job held the whole interval, shared or not: held time is not split like energy.
            if job in fresh:
                account.gpu_us += span_us
        if not ordered:
            acc.idle_mj += energy
            return energy
        weights = {job: float(sum(sm_util.get(pid, 0.0) for pid in pids)) for job, pids in jobs.items()}
        equal = len(ordered) > 1 and sum(weights.values()) <= 0.0
        for job, part in split_energy_mj(energy, ordered, weights, rotate=self._polls).items():
            ja = acc.jobs[job]
            ja.energy_mj += part
            if idle:
                ja.held_idle_mj += part
                ja.held_idle_us += span_us if job in fresh else 0
            if equal and job in fresh:
                ja.equal_share_us += span_us
        return 0

    def _expire_jobs(self, acc: _GpuAccount, now: float) -> None:
        # Finished jobs stay exported for a while so Prometheus scrapes their final value.
        for job in [j for j, ja in acc.jobs.items() if not ja.running and now - ja.last_seen > self.job_retention]:
            del acc.jobs[job]

    def _build_snapshot(self, collectors: list[tuple[str, bool, float]], duration: float) -> Snapshot:
        gpus = []
        for acc in sorted(self._accounts.values(), key=lambda a: (_index_key(a.info.index), a.info.uuid)):
            r = acc.reading if acc.up else None
            gpus.append(
                GpuSnapshot(
                    info=acc.info,
                    up=acc.up,
                    energy_source=acc.energy_source,
                    energy_mj=acc.energy_mj,
                    idle_mj=acc.idle_mj,
                    power_watts=r.power_watts if r else None,
                    power_limit_watts=r.power_limit_watts if r else None,
                    utilization_ratio=r.utilization_ratio if r else None,
                    memory_used_bytes=r.memory_used_bytes if r else None,
                    counter_resets=acc.resets,
                    errors=tuple(sorted(acc.errors.items())),
                    jobs=tuple(
                        JobSnapshot(job=j, energy_mj=ja.energy_mj, gpu_us=ja.gpu_us, running=ja.running,
                                    held_idle_mj=ja.held_idle_mj, held_idle_us=ja.held_idle_us,
                                    equal_share_us=ja.equal_share_us)
                        for j, ja in sorted(acc.jobs.items())
                    ),
                    instances=tuple(InstanceSnapshot(ia.instance, ia.energy_mj, ia.idle_mj)
                                    for _, ia in sorted(acc.instances.items(), key=lambda kv: id_order(kv[0]))),
                )
            )
        return Snapshot(
            generation=self.snapshot.generation + 1,
            gpus=tuple(gpus),
            polls=self._polls,
            poll_duration_seconds=duration,
            last_success_unixtime=self._last_success,
            collectors=tuple(collectors),
            discovery_name=self.discovery.name,
            discovery_method=str(getattr(self.discovery, "method", "")),
            discovery_errors=tuple(sorted(self.discovery.errors.items())),
            backend_skipped=tuple(sorted(getattr(self.backend, "skipped", {}).items())),
            state_save_errors=self.state_save_errors if self.state_file else None,
            host=self.host.snapshot() if self.host is not None else None,
        )

    # -- thread -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wattprint-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        run_every(self.interval, self.poll_once, self._stop, self._clock, log, "poll")

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _one_per_job_id(acc: _GpuAccount, jobs: dict[Job, frozenset[int]]) -> dict[Job, frozenset[int]]:
    """The series carry only job_id: one account per job_id and GPU, or two series would share their labels. Jobs
    of one id seen together are merged (their PIDs united); a job seen again with other facts (a pod whose
    containers on the GPU changed) takes over its account, which keeps its counters."""
    merged: dict[str, tuple[Job, frozenset[int]]] = {}
    for job, pids in sorted(jobs.items()):
        seen = merged.get(job.job_id)
        merged[job.job_id] = (job, pids) if seen is None else (seen[0], seen[1] | pids)
    if len(merged) == len(jobs) and all(job in acc.jobs for job in jobs):
        return jobs
    for job, _ in merged.values():
        if job in acc.jobs:
            continue
        old = next((j for j in acc.jobs if j.job_id == job.job_id), None)
        if old is not None:
            acc.jobs[job] = acc.jobs.pop(old)
    return dict(merged.values())


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _index_key(index: str) -> tuple[int, str]:
    head = index.split(".", 1)[0]
    return (int(head), index) if head.isdigit() else (1 << 30, index)
