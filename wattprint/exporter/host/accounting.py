"""Each poll's CPU socket energy, split among the jobs by CPU time; the rest is host idle.

Per socket and domain (package, DRAM) the RAPL delta is divided with
``split_energy_mj`` (largest remainder, integer µJ) among the jobs, weighted by their
cgroup ``usage_usec`` deltas, and a host-idle share weighted by the node CPU time no job
used (``/proc/stat`` delta minus the jobs' deltas, never below 0; when the jobs' deltas add
up to more than the node's, sampling jitter, they share it all). So per socket and domain,
jobs + idle == socket energy exactly. cgroup CPU time is not per socket, so the same shares
apply to every socket.

The CPU time behind a split is the CPU time since that domain's last booked read: a domain
that could not be read for a few polls books the whole outage's energy by the whole outage's
CPU time. A poll whose CPU times are unknown (first poll, cgroup read failed) books its
energy as idle: energy is never dropped for want of a split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ...common.logs import kv, typed
from ..attribution import split_energy_mj
from ..state import SavedCpuDomain, SavedCpuJob, SavedHost
from .cgroups import CgroupCollector, CgroupError, CpuTimes
from .procstat import boot_id, cpu_models
from .rapl import Domain, RaplCollector, RaplPoll, domain_key

log = logging.getLogger("wattprint.host")

# The idle share's key among the job ids in a split.
IDLE = None
Weights = dict[str | None, int]


@dataclass
class _CpuDomain:
    model: str = ""
    energy_uj: int = 0
    idle_uj: int = 0
    resets: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    # CPU µs (per job, and IDLE) since the last booked read: the weights of the next split.
    pending: Weights = field(default_factory=dict)
    # Some poll since the last booked read had no CPU times: that energy cannot be split.
    pending_unknown: bool = False
    read: bool = False


@dataclass
class _CpuJob:
    cpu_usec: int = 0
    last_usage_usec: int | None = None
    # None for a job restored from the state file, until the first poll.
    last_seen: float | None = None
    running: bool = False


@dataclass(frozen=True)
class CpuDomainSnapshot:
    socket: str
    domain: str
    model: str
    # Read in the last poll; when False no energy sample is exported for it (a gap, not a flat line).
    read: bool
    energy_uj: int
    idle_uj: int
    resets: int
    jobs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class HostSnapshot:
    rapl_up: bool
    # The last cgroup scan worked: job CPU seconds are exported.
    cpu_times_ok: bool
    domains: tuple[CpuDomainSnapshot, ...]
    # job id, CPU µs since first seen, running
    jobs: tuple[tuple[str, int, bool], ...]
    errors: tuple[tuple[str, int], ...]


class HostPoller:
    """Runs the rapl and cgroups collectors each poll and keeps the CPU energy accounts."""

    def __init__(self, rapl: RaplCollector, cgroups: CgroupCollector | None, procfs: str = "/proc",
                 job_retention: float = 300.0, hostname: str = "") -> None:
        self.rapl = rapl
        self.hostname = hostname  # the `hostname` label: saved totals continue only on the same series
        self.cgroups = cgroups
        self.procfs = procfs
        self.job_retention = job_retention
        self.boot_id = boot_id(procfs)
        self._domains: dict[Domain, _CpuDomain] = {}
        self._jobs: dict[str, _CpuJob] = {}
        self._node_last_usec: int | None = None
        self._models: dict[str, str] | None = None
        self._rapl_up = False
        self._cpu_times_ok = False
        self._bugs: set[str] = set()

    # -- one poll ----------------------------------------------------------------------------
    def poll(self, now: float, rotate: int = 0) -> list[tuple[str, bool, float]]:
        """Read, book, and return (collector, success, seconds) for rapl and cgroups."""
        t0 = time.perf_counter()
        try:
            reading = self.rapl.poll()
        except Exception as exc:  # a bug here must not stop GPU accounting or the cgroup scan
            self._bug("rapl", exc)
            reading = RaplPoll(present=True, ok=False, deltas={})
        self._rapl_up = reading.ok
        t1 = time.perf_counter()
        collectors = [("rapl", reading.ok, t1 - t0)]
        weights: Weights | None = None
        if self.cgroups is not None:
            try:
                weights = self._cpu_deltas(self.cgroups.read(), now)
                self._cpu_times_ok = True
            except CgroupError as exc:
                log.debug("cgroups read failed", extra=kv(err=exc))
                self._cpu_times_ok = False
            except Exception as exc:
                self._bug("cgroups", exc)
                self._cpu_times_ok = False
            collectors.append(("cgroups", self._cpu_times_ok, time.perf_counter() - t1))
        else:
            weights = {}  # --job-discovery none: no jobs, every joule is idle
        self._book(reading, weights, rotate)
        self._expire(now)
        return collectors

    def _cpu_deltas(self, times: CpuTimes, now: float) -> Weights | None:
        """Accumulate job CPU time; the weights of this interval, None if the node's delta is unknown."""
        node_delta = None
        if self._node_last_usec is not None and times.node_usec >= self._node_last_usec:
            node_delta = times.node_usec - self._node_last_usec
        self._node_last_usec = times.node_usec
        for job in self._jobs.values():
            job.running = False
        weights: Weights = {}
        for job_id, usage in times.jobs.items():
            job = self._jobs.setdefault(job_id, _CpuJob())
            job.running, job.last_seen = True, now
            if usage is None:
                continue  # unreadable this poll: the next read's delta covers it
            if job.last_usage_usec is not None and usage >= job.last_usage_usec:
                d = usage - job.last_usage_usec
                job.cpu_usec += d
                if d:
                    weights[job_id] = d
            # A first sighting, or a usage below the last (the cgroup was removed and created again under
            # the same name): a fresh baseline, nothing booked.
            job.last_usage_usec = usage
        if node_delta is None:
            return None
        weights[IDLE] = max(0, node_delta - sum(weights.values()))
        return weights

    def _book(self, reading: RaplPoll, weights: Weights | None, rotate: int) -> None:
        for key in self.rapl.domains():
            if key not in self._domains:
                self._domains[key] = _CpuDomain()
            model = self._model(key[0])
            if model:
                self._domains[key].model = model
        running = [j for j, job in self._jobs.items() if job.running]
        for key, dom in self._domains.items():
            for job_id in running:
                # Each running job's series starts at 0 on every socket and domain, so that Prometheus'
                # increase() counts its first interval too.
                dom.jobs.setdefault(job_id, 0)
            if weights is None:
                dom.pending_unknown = True
            else:
                for k, w in weights.items():
                    dom.pending[k] = dom.pending.get(k, 0) + w
            dom.read = key in reading.deltas
            if not dom.read:
                continue
            delta = reading.deltas[key]
            pending, unknown = dom.pending, dom.pending_unknown
            dom.pending, dom.pending_unknown = {}, False
            dom.energy_uj += delta
            jobs = sorted(k for k, w in pending.items() if k is not IDLE and w > 0)
            if unknown or not jobs or delta == 0:
                dom.idle_uj += delta
                continue
            keys: list[str | None] = [*jobs, IDLE] if pending.get(IDLE, 0) > 0 else list(jobs)
            for k, part in split_energy_mj(delta, keys, {k: float(pending.get(k, 0)) for k in keys},
                                           rotate=rotate).items():
                if k is IDLE:
                    dom.idle_uj += part
                else:
                    dom.jobs[k] = dom.jobs.get(k, 0) + part

    def _model(self, socket: str) -> str:
        if self._models is None:
            self._models = cpu_models(self.procfs)  # static: read once
        return self._models.get(socket, "")

    def _expire(self, now: float) -> None:
        # Finished jobs stay exported for --job-retention, so Prometheus scrapes their final values.
        gone = []
        for job_id, job in self._jobs.items():
            if job.last_seen is None:
                job.last_seen = now
            elif not job.running and now - job.last_seen > self.job_retention:
                gone.append(job_id)
        for job_id in gone:
            del self._jobs[job_id]
            for dom in self._domains.values():
                dom.jobs.pop(job_id, None)
                owed = dom.pending.pop(job_id, 0)
                if owed:  # CPU time of a domain's unread outage: its energy goes to idle rather than nowhere
                    dom.pending[IDLE] = dom.pending.get(IDLE, 0) + owed

    def _bug(self, collector: str, exc: Exception) -> None:
        level = logging.DEBUG if collector in self._bugs else logging.ERROR
        self._bugs.add(collector)
        log.log(level, "%s collector failed unexpectedly", collector, extra=kv(err=typed(exc)))

    # -- what is exported ---------------------------------------------------------------------------
    def snapshot(self) -> HostSnapshot:
        errors = self.rapl.errors.copy()
        if self.cgroups is not None:
            errors.update(self.cgroups.errors)
        return HostSnapshot(
            rapl_up=self._rapl_up,
            cpu_times_ok=self._cpu_times_ok,
            domains=tuple(
                CpuDomainSnapshot(socket=k[0], domain=k[1], model=d.model, read=d.read, energy_uj=d.energy_uj,
                                  idle_uj=d.idle_uj, resets=d.resets, jobs=tuple(sorted(d.jobs.items())))
                for k, d in sorted(self._domains.items(), key=lambda kv: domain_key(kv[0]))
            ),
            jobs=tuple((j, a.cpu_usec, a.running) for j, a in sorted(self._jobs.items())),
            errors=tuple(sorted(errors.items())),
        )

    # -- the state file --------------------------------------------------------------------------------
    def saved(self) -> SavedHost:
        return SavedHost(
            boot_id=self.boot_id or "",
            hostname=self.hostname,
            node_cpu_usec=self._node_last_usec,
            zones=tuple(self.rapl.saved()),
            domains=tuple(
                SavedCpuDomain(socket=k[0], domain=k[1], model=d.model, energy_uj=d.energy_uj, idle_uj=d.idle_uj,
                               resets=d.resets, jobs=tuple(sorted(d.jobs.items())))
                for k, d in sorted(self._domains.items(), key=lambda kv: domain_key(kv[0]))
            ),
            jobs=tuple(SavedCpuJob(job_id=j, cpu_usec=a.cpu_usec, raw_usage_usec=a.last_usage_usec)
                       for j, a in sorted(self._jobs.items())),
        )

    def restore(self, saved: SavedHost) -> None:
        """Take over the totals of the state file, if saved for this series (--hostname); its raw baselines only
        if it was also written in this boot."""
        if saved.hostname is not None and saved.hostname != self.hostname:
            # A file copied to or shared with another node (an image template, an NFS path), or --hostname changed:
            # that series is new to Prometheus and starts at 0 (the pipeline counts a new series' first value as
            # energy used since it started). A file without a hostname predates the field: restored as before.
            log.info("state file: CPU energy saved for another hostname, not taken over; CPU counters start from 0",
                     extra=kv(saved_hostname=saved.hostname, hostname=self.hostname))
            return
        same_boot = bool(saved.boot_id) and saved.boot_id == self.boot_id
        for d in saved.domains:
            self._domains[(d.socket, d.domain)] = _CpuDomain(
                model=d.model, energy_uj=d.energy_uj, idle_uj=d.idle_uj, resets=d.resets + (0 if same_boot else 1),
                jobs=dict(d.jobs))
            if d.idle_uj + sum(uj for _, uj in d.jobs) > d.energy_uj:
                log.warning("state file: jobs + idle exceed the CPU energy", extra=kv(socket=d.socket, domain=d.domain))
        for j in saved.jobs:
            self._jobs[j.job_id] = _CpuJob(cpu_usec=j.cpu_usec,
                                           last_usage_usec=j.raw_usage_usec if same_boot else None)
        for d in saved.domains:
            for job_id, _ in d.jobs:
                self._jobs.setdefault(job_id, _CpuJob())
        if same_boot:
            # The counters kept running while the exporter was down: the first deltas book the downtime.
            self._node_last_usec = saved.node_cpu_usec
            self.rapl.restore(saved.zones)
            log.info("state file: CPU energy restored, same boot; the downtime's energy is booked at the first poll")
        else:
            log.info("state file: CPU energy totals restored; written in another boot (or the boot id is unknown), "
                     "so RAPL and CPU-time baselines restart and the energy used while the exporter was down is not "
                     "booked (counted in wattprint_cpu_energy_resets_total)")
