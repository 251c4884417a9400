"""Turn the poller's latest Snapshot into Prometheus metric families.

Nothing here touches hardware: a scrape only serialises what the poller
already read. Metric names are the contract with the pipeline, dashboards and
alerts (docs/metrics.md); keep them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import contract as C
from ..common.logs import kv, typed
from . import __version__
from .host.accounting import HostSnapshot
from .poller import GpuSnapshot, Snapshot

log = logging.getLogger("wattprint.collectors")

GPU_LABELS = C.GPU_LABELS
CPU_LABELS = C.CPU_LABELS
RESERVED_LABELS = frozenset(
    GPU_LABELS + CPU_LABELS + ("job_id", "job_source", "uid", "container", "driver", "energy_source", "backend",
                               "call", "collector", "discovery", "reason", "version", "instance", "job")
)
# the node-power series' own labels (node/collector.py)
RESERVED_LABELS |= frozenset((C.SOURCE, "method", "reading", "chassis"))


class WattprintCollector(Collector):
    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        hostname: str,
        static_labels: Sequence[tuple[str, str]] = (),
        backend: str = "",
        more_collectors: Callable[[], Sequence[tuple[str, bool, float]]] | None = None,
    ) -> None:
        self._snapshot = snapshot
        # collectors polled on threads of their own (node power): (name, success, duration) of their last poll
        self._more_collectors = more_collectors
        self._hostname = hostname
        self._static = tuple(static_labels)
        self._static_keys = [k for k, _ in self._static]
        self._static_values = [v for _, v in self._static]
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        snap = self._snapshot()
        try:
            families = self._families(snap)
            if snap.host is not None:
                families += self._cpu_families(snap.host)
            ok = True
        except Exception as exc:  # a bug here must not take the whole page down
            log.error("rendering metrics failed", extra=kv(err=typed(exc)))
            families, ok = [], False
        yield from families
        yield from self._exporter_families(snap, ok, time.perf_counter() - start)

    # -- GPU and job series ---------------------------------------------------------
    def _gpu_values(self, g: GpuSnapshot) -> list[str]:
        return [g.info.index, g.info.uuid, g.info.model, self._hostname, *self._static_values]

    def _families(self, snap: Snapshot) -> list[Metric]:
        lk = [*GPU_LABELS, *self._static_keys]
        up = GaugeMetricFamily("wattprint_gpu_up", "1 if the last poll read this GPU, 0 if it failed.", labels=lk)
        info = GaugeMetricFamily(
            "wattprint_gpu_info",
            "GPU facts; energy_source says whether energy comes from the hardware counter or integrated power.",
            labels=[*lk, "driver", "energy_source", "backend"],
        )
        energy = CounterMetricFamily(
            C.GPU_ENERGY,
            "GPU energy since the exporter started, from hardware energy-counter deltas "
            "(or integrated power where energy_source says so).",
            labels=lk,
        )
        idle = CounterMetricFamily(
            C.GPU_IDLE_ENERGY,
            "GPU energy in intervals with no job on the GPU; jobs + idle == GPU energy.",
            labels=lk,
        )
        power = GaugeMetricFamily("wattprint_gpu_power_watts", "Power draw as reported by the GPU.", labels=lk)
        limit = GaugeMetricFamily(
            "wattprint_gpu_power_limit_watts", "Enforced power limit of the GPU.", labels=lk
        )
        util = GaugeMetricFamily(
            "wattprint_gpu_utilization_ratio", "Fraction of the last sample period the GPU was busy (0-1).",
            labels=lk,
        )
        mem = GaugeMetricFamily("wattprint_gpu_memory_used_bytes", "GPU memory in use.", labels=lk)
        resets = CounterMetricFamily(
            "wattprint_gpu_energy_resets",
            "Times the hardware energy counter went backwards (driver reload, GPU reset); "
            "each drops at most one poll interval of energy.",
            labels=lk,
        )
        errors = CounterMetricFamily(
            "wattprint_gpu_collection_errors", "Failed reads per GPU and call.", labels=[*lk, "call"]
        )
        job_info = GaugeMetricFamily(
            "wattprint_job_info",
            "One series per GPU and job while the job runs on it.",
            labels=[*lk, "job_id", "job_source", "uid", "container"],
        )
        job_energy = CounterMetricFamily(
            C.JOB_ENERGY,
            "Energy of a job on a GPU, its share of each poll interval's GPU energy.",
            labels=[*lk, "job_id"],
        )
        job_seconds = CounterMetricFamily(
            C.JOB_GPU_SECONDS,
            "Time a job held a GPU: the summed length of the poll intervals whose energy was split among the jobs "
            "on it, each job the whole interval; constant after the job left.",
            labels=[*lk, "job_id"],
        )
        held_idle = CounterMetricFamily(
            C.JOB_HELD_IDLE_ENERGY,
            "The part of a job's energy on a GPU from poll intervals in which the GPU (or the MIG instance) it held "
            "was idle: utilisation below --held-idle-utilization.",
            labels=[*lk, "job_id"],
        )
        held_idle_s = CounterMetricFamily(
            C.JOB_HELD_IDLE_SECONDS, "The held time of those intervals (see wattprint_job_gpu_seconds_total).",
            labels=[*lk, "job_id"],
        )
        equal_s = CounterMetricFamily(
            C.JOB_EQUAL_SHARE_SECONDS,
            "Held time of the intervals in which the job shared its GPU (or MIG instance) with other jobs and their "
            "energy was split equally, for want of per-process utilisation.",
            labels=[*lk, "job_id"],
        )
        ilk = [*lk, C.GPU_INSTANCE, C.MIG_PROFILE]
        inst_energy = CounterMetricFamily(
            "wattprint_gpu_instance_energy_joules",
            "A MIG instance's part of its board's energy (the board's idle floor by compute slices, the rest by "
            "slices x activity; docs/exporter.md). The instances and the unpartitioned slices add up to the board.",
            labels=ilk,
        )
        inst_idle = CounterMetricFamily(
            "wattprint_gpu_instance_idle_energy_joules", "The part of a MIG instance's energy with no job on it.",
            labels=ilk,
        )
        inst_info = GaugeMetricFamily(
            "wattprint_gpu_instance_info", "A MIG instance of the board: its compute slices and MIG UUID.",
            labels=[*ilk, "slices", "mig_uuid"],
        )
        for g in snap.gpus:
            v = self._gpu_values(g)
            up.add_metric(v, 1.0 if g.up else 0.0)
            info.add_metric([*v, g.info.driver, g.energy_source, self._backend], 1.0)
            if g.up:
                # A GPU that cannot be read exports no energy sample at all: a flat counter would hide the
                # outage from Prometheus and from the pipeline's gap detection. When it answers again the
                # counters resume, with the energy the hardware counted meanwhile (flagged as a gap later).
                energy.add_metric(v, g.energy_mj / 1000.0)
                idle.add_metric(v, g.idle_mj / 1000.0)
            resets.add_metric(v, float(g.counter_resets))
            if g.power_watts is not None:
                power.add_metric(v, g.power_watts)
            if g.power_limit_watts is not None:
                limit.add_metric(v, g.power_limit_watts)
            if g.utilization_ratio is not None:
                util.add_metric(v, g.utilization_ratio)
            if g.memory_used_bytes is not None:
                mem.add_metric(v, float(g.memory_used_bytes))
            for call, n in g.errors:
                errors.add_metric([*v, call], float(n))
            for j in g.jobs:
                if g.up:
                    job_energy.add_metric([*v, j.job.job_id], j.energy_mj / 1000.0)
                    # With the energy, never without it: the pipeline reads them as one job's pair.
                    job_seconds.add_metric([*v, j.job.job_id], j.gpu_us / 1e6)
                    held_idle.add_metric([*v, j.job.job_id], j.held_idle_mj / 1000.0)
                    held_idle_s.add_metric([*v, j.job.job_id], j.held_idle_us / 1e6)
                    equal_s.add_metric([*v, j.job.job_id], j.equal_share_us / 1e6)
                if j.running:
                    job_info.add_metric([*v, j.job.job_id, j.job.source, j.job.pod_uid, j.job.container], 1.0)
            for ins in g.instances:
                iv = [*v, ins.instance.gi_id, ins.instance.profile]
                inst_info.add_metric([*iv, str(ins.instance.slices), ins.instance.uuid], 1.0)
                if g.up:
                    inst_energy.add_metric(iv, ins.energy_mj / 1000.0)
                    inst_idle.add_metric(iv, ins.idle_mj / 1000.0)
        return [up, info, energy, idle, power, limit, util, mem, resets, errors, job_info, job_energy, job_seconds,
                held_idle, held_idle_s, equal_s, inst_info, inst_energy, inst_idle]

    # -- CPU (RAPL) series ---------------------------------------------------------------
    def _cpu_families(self, host: HostSnapshot) -> list[Metric]:
        node = ["hostname", *self._static_keys]
        node_values = [self._hostname, *self._static_values]
        lk = [*CPU_LABELS, *self._static_keys]
        up = GaugeMetricFamily(
            C.CPU_RAPL_UP, "1 if the last poll read every RAPL zone (package, DRAM), 0 otherwise.",
            labels=node,
        )
        up.add_metric(node_values, 1.0 if host.rapl_up else 0.0)
        energy = CounterMetricFamily(
            C.CPU_ENERGY,
            "CPU socket energy per RAPL domain (package, dram) since the exporter started, from wrap-corrected "
            "energy_uj deltas.",
            labels=lk,
        )
        idle = CounterMetricFamily(
            C.CPU_IDLE_ENERGY,
            "CPU socket energy not attributed to jobs (host idle); per socket and domain, jobs + idle == CPU energy.",
            labels=lk,
        )
        job_energy = CounterMetricFamily(
            C.JOB_CPU_ENERGY,
            "Energy of a job on a CPU socket and domain: its share of each poll interval's energy by cgroup CPU time.",
            labels=[*lk, "job_id"],
        )
        resets = CounterMetricFamily(
            "wattprint_cpu_energy_resets",
            "Times the RAPL baseline restarted without booking the energy in between (a state file written in "
            "another boot).",
            labels=lk,
        )
        for d in host.domains:
            v = [d.socket, d.domain, d.model, self._hostname, *self._static_values]
            resets.add_metric(v, float(d.resets))
            if not d.read:
                # Unread this poll: no sample rather than a flat line, as for a GPU that cannot be read.
                continue
            energy.add_metric(v, d.energy_uj / 1e6)
            idle.add_metric(v, d.idle_uj / 1e6)
            for job_id, uj in d.jobs:
                job_energy.add_metric([*v, job_id], uj / 1e6)
        seconds = CounterMetricFamily(
            C.JOB_CPU_SECONDS,
            "CPU time of the job's cgroup on this node (cgroup v2 usage_usec deltas) since the exporter first saw it.",
            labels=["job_id", *node],
        )
        if host.cpu_times_ok:
            for job_id, usec, _running in host.jobs:
                seconds.add_metric([job_id, *node_values], usec / 1e6)
        errors = CounterMetricFamily(
            "wattprint_cpu_collection_errors",
            "Failed RAPL and cgroup reads, by reason.",
            labels=[*node, "reason"],
        )
        for reason, n in host.errors:
            errors.add_metric([*node_values, reason], float(n))
        return [up, energy, idle, job_energy, resets, seconds, errors]

    # -- the exporter's own health -----------------------------------------------------
    def _exporter_families(self, snap: Snapshot, render_ok: bool, render_s: float) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "wattprint_exporter_build_info", "Exporter version and backend.", labels=["version", "backend"]
        )
        build.add_metric([__version__, self._backend], 1.0)
        yield build
        polls = CounterMetricFamily("wattprint_exporter_polls", "Polls run since start.")
        polls.add_metric([], float(snap.polls))
        yield polls
        yield GaugeMetricFamily(
            "wattprint_exporter_poll_duration_seconds", "Duration of the last poll.", value=snap.poll_duration_seconds
        )
        yield GaugeMetricFamily(
            "wattprint_exporter_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that read the backend.",
            value=snap.last_success_unixtime,
        )
        success = GaugeMetricFamily(
            "wattprint_exporter_collector_success",
            "1 if the collector succeeded in the last poll (render: this scrape).",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "wattprint_exporter_collector_duration_seconds",
            "Time the collector took in the last poll (render: this scrape).",
            labels=["collector"],
        )
        more = tuple(self._more_collectors()) if self._more_collectors is not None else ()
        for name, ok, secs in (*snap.collectors, *more, ("render", render_ok, render_s)):
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], secs)
        yield success
        yield duration
        derr = CounterMetricFamily(
            "wattprint_job_discovery_errors",
            "Job-discovery entries skipped (unreadable /proc files, malformed mapping files), by reason.",
            labels=["discovery", "reason"],
        )
        for reason, n in snap.discovery_errors:
            derr.add_metric([snap.discovery_name, reason], float(n))
        yield derr
        skipped = CounterMetricFamily(
            "wattprint_gpu_backend_skipped_lines",
            "Lines of the page the GPU backend reads (dcgm-exporter's) that did not parse and were skipped, by "
            "metric family; the rest of the page is still read.",
            labels=["backend", "family"],
        )
        for family, n in snap.backend_skipped:
            skipped.add_metric([self._backend, family], float(n))
        yield skipped
        dinfo = GaugeMetricFamily(
            "wattprint_job_discovery_info",
            "How jobs are found: the discovery (--job-discovery) and the method it uses now (kubernetes: "
            "podresources, or proc where the kubelet's PodResources socket is absent).",
            labels=["discovery", "method"],
        )
        dinfo.add_metric([snap.discovery_name, snap.discovery_method or snap.discovery_name], 1.0)
        yield dinfo
        if snap.state_save_errors is not None:
            serr = CounterMetricFamily(
                "wattprint_exporter_state_save_errors",
                "Failed writes of the --state-file (the counters would restart from an older state).",
            )
            serr.add_metric([], float(snap.state_save_errors))
            yield serr
