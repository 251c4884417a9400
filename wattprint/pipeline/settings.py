"""Everything a verb needs from the cluster config and the shipped tables, in the shapes the
ingest and the model take. With no config file, all defaults (one cluster, world-average intensity)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import config as cfg
from .errors import InputError
from .model import BuildSettings, ClusterFacts
from .sources.intensity import embedded
from .sources.jobs.rules import Rules

if TYPE_CHECKING:
    from .ingest import SeriesQuery

FALLBACK_CLUSTER = "default"


@dataclass(frozen=True)
class Settings:
    config: cfg.Config
    path: str | None

    @property
    def step_s(self) -> int:
        return self.config.ingest.step_seconds

    @property
    def basis(self) -> str:
        return self.config.intensity.basis

    @property
    def default_cluster(self) -> str:
        return self.config.default_cluster or FALLBACK_CLUSTER

    def rules(self, override: str | None) -> Rules:
        return Rules.load(override) if override else self.config.rules

    def queries(self, power_metric: str | None = None) -> list[SeriesQuery]:
        from . import amd  # pyarrow (through ingest): only the ingest needs it
        from .ingest import CPU_METRICS, SeriesQuery, cpu_query

        ing = self.config.ingest
        m = ing.metrics
        cl = (ing.cluster_label,)
        wl = m.wattprint.labels
        dl = m.dcgm.labels
        pl = m.power.labels

        def wp(kind: str, metric: str, jobs: tuple[str, ...] = ()) -> SeriesQuery:
            return SeriesQuery("wattprint", kind, metric, 1.0, wl.hostname, wl.gpu, wl.uuid, jobs, cl, wl.model)

        out: list[SeriesQuery] = []
        if m.wattprint.enabled:
            out += [
                wp("job_energy", m.wattprint.job_energy, wl.job_id),
                wp("gpu_energy", m.wattprint.gpu_energy),
                wp("idle_energy", m.wattprint.idle_energy),
                wp("job_gpu_seconds", m.wattprint.job_gpu_seconds, wl.job_id),
                wp("job_held_idle_energy", m.wattprint.job_held_idle_energy, wl.job_id),
                wp("job_held_idle_seconds", m.wattprint.job_held_idle_seconds, wl.job_id),
                wp("job_equal_share_seconds", m.wattprint.job_equal_share_seconds, wl.job_id),
            ]
        if m.dcgm.enabled:
            out += [
                SeriesQuery("dcgm", "gpu_energy", m.dcgm.energy, m.dcgm.joules_per_energy_unit, dl.hostname, dl.gpu,
                            dl.uuid, dl.job_id, cl, dl.model),
                SeriesQuery("dcgm", "gpu_power", m.dcgm.power, m.dcgm.watts_per_power_unit, dl.hostname, dl.gpu,
                            dl.uuid, dl.job_id, cl, dl.model),
            ]
        if m.wattprint.enabled:
            out += [cpu_query(kind, getattr(m.wattprint, kind), wl.hostname, wl.job_id, cl, wl.model)
                    for kind in CPU_METRICS]
        metric = power_metric or m.power.metric
        twice = cfg.double_read(m, power_metric)
        if twice:
            raise InputError("--power-metric", *twice)
        if metric:
            out.append(SeriesQuery("power", "gpu_power", metric, m.power.watts_per_unit, pl.hostname, pl.gpu,
                                   pl.uuid, pl.job_id, cl, pl.model))
        out += amd.queries(m.amd, cl)
        if m.node.enabled:
            # whole-node power (the node layer): per host, no GPU; the BMC reading (redfish | ipmi) as its domain
            nl = m.node.labels
            for kind, name, scale in (("node_energy", m.node.energy, m.node.joules_per_energy_unit),
                                      ("node_power", m.node.power, m.node.watts_per_power_unit)):
                if name:
                    out.append(SeriesQuery("node", kind, name, scale, nl.hostname, (), (), (), cl, (), (),
                                           nl.reading))
        return out

    def build_settings(self) -> BuildSettings:
        c = self.config
        clusters = tuple(
            ClusterFacts(name, cc.provider, cc.region or None, cc.zone, cc.pue, tuple(cc.nodes))
            for name, cc in c.clusters.items()
        )
        annual = tuple(embedded.load())
        return BuildSettings(
            clusters=clusters,
            default_cluster=self.default_cluster,
            max_gap_s=c.ingest.max_gap_seconds,
            nearest_hour_bound_h=float(c.intensity.nearest_hour_bound_hours),
            world_g_per_kwh=embedded.world().g_per_kwh,
            annual=annual,
            config_path=self.path,
        )


def load_settings(path: str | None) -> Settings:
    return Settings(cfg.load(Path(path) if path else None), path)
