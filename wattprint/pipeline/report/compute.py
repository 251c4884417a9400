"""Turn fct_job_gpu_hour and the host (CPU) results into a report: one typed `Report` (types.py, the JSON
contract in docs/reports.md) that every format renders.

Every number here is a sum over rows of the scope (rpt_scope.sql) or a ratio of two such sums, so each one
traces back to (job, GPU, hour), (job, host, socket, domain, hour) or (job, host, hour) rows and from there to
samples, ledger rows and intensity hours.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from .. import equivalences, hardware
from ..config import LAYERS
from ..db import run_sql
from ..errors import InputError
from ..estimate import ManualPhase
from ..records import PHASES
from ..settings import Settings
from ..sources.jobs.common import suggest
from ..timeutil import iso
from . import gpu_checks
from .names import clean
from .types import (
    NOT_IN_LEDGER,
    SCHEMA_VERSION,
    Change,
    ClusterRow,
    CpuEnergyShares,
    CpuHardware,
    CpuLayer,
    CpuReconciliation,
    DataQuality,
    Day,
    Embodied,
    EmbodiedLayer,
    EmbodiedRate,
    EnergyShares,
    Equivalences,
    FleetSections,
    GpuCounters,
    GpuHardware,
    Hour,
    IdleLayer,
    IntensityShares,
    LayerFigures,
    LayerRow,
    Method,
    Phase,
    PhaseCluster,
    PhaseCpu,
    PhaseGpu,
    PhaseLayers,
    Previous,
    ProjectPhase,
    ProjectRow,
    Rapl,
    RaplNode,
    Reconciliation,
    Report,
    ReportWindow,
    TopJob,
    Total,
    WhatIf,
    WhatIfOption,
)
from .window import Window

LAYER_TITLES = {
    "gpu": "GPU energy of the jobs (measured)",
    "cpu": "CPU energy of the jobs (measured: package + DRAM)",
    "idle": "share of idle and unallocated GPU energy and host idle energy",
    "pue": "data-centre overhead (PUE)",
    "embodied": "embodied emissions of the GPUs (amortised)",
}
PROVIDER_NAMES = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure", "onprem": "on-premises"}
COUNTER_QUALITIES = ("counter", "counter_reset", "counter_stepback", "first_sample")
INTENSITY_QUALITIES = ("hourly", "nearest_hour", "monthly_mean", "annual_default", "world_default", "declared")
# thresholds of the data-quality banner (docs/reports.md)
MIN_COUNTER_SHARE = 0.9
MIN_HOURLY_SHARE = 0.9
POOR_SHARE = 0.8
RAPL_WARN_SHARE = 0.01       # nodes without readable RAPL carrying at least this share of the GPU energy: warn
NO_RAPL = "no RAPL series (collector off or exporter without it)"

# the columns of Sums, each named as its field, as sums over rpt_rows
_SUMS = ("sum(energy_j) AS energy_j, sum(gpu_g) AS gpu_g, sum(idle_j) AS idle_j, sum(idle_g) AS idle_g,"
         " sum(pue_gpu_j) AS pue_gpu_j, sum(pue_gpu_g) AS pue_gpu_g, sum(pue_idle_j) AS pue_idle_j,"
         " sum(pue_idle_g) AS pue_idle_g, sum(emb_g) AS emb_g, sum(gpu_seconds) AS gpu_s, sum(cpu_j) AS cpu_j,"
         " sum(cpu_g) AS cpu_g, sum(cpu_j) FILTER (WHERE domain = 'package') AS cpu_pkg_j,"
         " sum(cpu_j) FILTER (WHERE domain = 'dram') AS cpu_dram_j, sum(cpu_seconds) AS cpu_s,"
         " sum(cpu_idle_j) AS cpu_idle_j, sum(cpu_idle_g) AS cpu_idle_g, sum(pue_cpu_j) AS pue_cpu_j,"
         " sum(pue_cpu_g) AS pue_cpu_g, sum(pue_cpu_idle_j) AS pue_cpu_idle_j, sum(pue_cpu_idle_g) AS pue_cpu_idle_g")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """The result rows of `sql`, each a dict by column name (SELECT ... AS name)."""
    cur = con.execute(sql, params) if params is not None else con.execute(sql)
    names = [d[0] for d in cur.description]
    assert len(set(names)) == len(names), f"two columns named alike: {names}"
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@dataclass(frozen=True)
class ReportOptions:
    window: Window
    project: str | None = None
    phases: tuple[str, ...] = ()
    layers: tuple[str, ...] = ("gpu", "cpu", "idle", "pue")
    idle_policy: str = "pro-rata"
    lifetime_years: float = hardware.DEFAULT_LIFETIME_YEARS
    utilisation: float = hardware.DEFAULT_UTILISATION
    estimates: tuple[ManualPhase, ...] = ()
    top_jobs: int = 10
    generated_at: datetime | None = None

    @property
    def kind(self) -> str:
        return "project" if self.project else "fleet"

    @property
    def inc_idle(self) -> bool:
        return "idle" in self.layers and self.idle_policy == "pro-rata"

    @property
    def inc_cpu(self) -> bool:
        """The cpu layer is selected: then the host idle share and the PUE overhead cover CPU energy too."""
        return "cpu" in self.layers


@dataclass(frozen=True)
class Sums:
    """Joules, grams and seconds of every layer over some rows (see rpt_scope.sql for each column)."""

    energy_j: float = 0.0          # GPU energy of the jobs
    gpu_g: float = 0.0
    idle_j: float = 0.0            # share of idle GPU energy
    idle_g: float = 0.0
    pue_gpu_j: float = 0.0
    pue_gpu_g: float = 0.0
    pue_idle_j: float = 0.0
    pue_idle_g: float = 0.0
    emb_g: float = 0.0
    gpu_s: float = 0.0
    cpu_j: float = 0.0             # host energy of the jobs (package + DRAM)
    cpu_g: float = 0.0
    cpu_pkg_j: float = 0.0         # of which package
    cpu_dram_j: float = 0.0        # of which DRAM (estimated phases split neither)
    cpu_s: float = 0.0             # CPU time, core-seconds
    cpu_idle_j: float = 0.0        # share of host idle energy
    cpu_idle_g: float = 0.0
    pue_cpu_j: float = 0.0
    pue_cpu_g: float = 0.0
    pue_cpu_idle_j: float = 0.0
    pue_cpu_idle_g: float = 0.0

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Sums:
        """From a row with a column named as each field (NULL: 0)."""
        return cls(**{name: float(row[name] or 0.0) for name in _SUM_FIELDS})

    def add(self, other: Sums) -> Sums:
        return Sums(**{name: getattr(self, name) + getattr(other, name) for name in _SUM_FIELDS})

    def layers(self, o: ReportOptions) -> PhaseLayers:
        """Each layer's energy and emissions. The host parts of idle and pue follow the cpu layer: without it,
        they are 0 and the figures are those of a GPU-only report."""
        k = 1.0 if o.inc_idle else 0.0
        c = 1.0 if o.inc_cpu else 0.0
        return PhaseLayers(
            gpu=LayerFigures(energy_kwh=self.energy_j / 3.6e6, emissions_kg=self.gpu_g / 1000.0),
            cpu=CpuLayer(energy_kwh=self.cpu_j / 3.6e6, emissions_kg=self.cpu_g / 1000.0,
                         package_kwh=self.cpu_pkg_j / 3.6e6, dram_kwh=self.cpu_dram_j / 3.6e6,
                         cpu_hours=self.cpu_s / 3600.0),
            idle=IdleLayer(energy_kwh=(self.idle_j + c * self.cpu_idle_j) / 3.6e6,
                           emissions_kg=(self.idle_g + c * self.cpu_idle_g) / 1000.0,
                           gpu_energy_kwh=self.idle_j / 3.6e6, cpu_energy_kwh=c * self.cpu_idle_j / 3.6e6),
            pue=LayerFigures(energy_kwh=(self.pue_gpu_j + c * self.pue_cpu_j
                                         + k * (self.pue_idle_j + c * self.pue_cpu_idle_j)) / 3.6e6,
                             emissions_kg=(self.pue_gpu_g + c * self.pue_cpu_g
                                           + k * (self.pue_idle_g + c * self.pue_cpu_idle_g)) / 1000.0),
            embodied=EmbodiedLayer(emissions_kg=self.emb_g / 1000.0, gpu_hours=self.gpu_s / 3600.0),
        )

    def headline_kg(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(_layer(layers, name).emissions_kg or 0.0) for name in _included(o))

    def operational_g(self, o: ReportOptions) -> float:
        """Headline without embodied: what moving the work to another region changes."""
        k = 1.0 if o.inc_idle else 0.0
        c = 1.0 if o.inc_cpu else 0.0
        p = 1.0 if "pue" in o.layers else 0.0
        return (self.gpu_g + c * self.cpu_g + k * (self.idle_g + c * self.cpu_idle_g)
                + p * (self.pue_gpu_g + c * self.pue_cpu_g + k * (self.pue_idle_g + c * self.pue_cpu_idle_g)))

    def facility_kwh(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(_layer(layers, n).energy_kwh or 0.0) for n in ("gpu", "cpu", "idle", "pue")
                   if n in _included(o))

    def intensity(self) -> float:
        """Energy-weighted intensity applied to the own GPU and CPU energy (gCO2eq/kWh)."""
        return _share(self.gpu_g + self.cpu_g, (self.energy_j + self.cpu_j) / 3.6e6)


_SUM_FIELDS = tuple(f.name for f in fields(Sums))


def _layer(layers: PhaseLayers, name: str) -> LayerFigures | EmbodiedLayer:
    value = layers.layer(name)
    assert value is not None          # Sums.layers fills every layer
    return value


def _included(o: ReportOptions) -> tuple[str, ...]:
    return tuple(n for n in LAYERS if n in o.layers and (n != "idle" or o.idle_policy == "pro-rata"))


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _fraction(part: float, whole: float) -> float:
    """A share of a whole summed separately: kept in [0, 1] against floating-point rounding."""
    return min(1.0, max(0.0, _share(part, whole)))


def _ts(x: Any) -> datetime:
    return x if x.tzinfo is not None else x.replace(tzinfo=UTC)


# -- scope ---------------------------------------------------------------------------------------------

def _rates(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> list[EmbodiedRate]:
    """Embodied kgCO2eq per GPU-hour for each (cluster, GPU model) in the window, with where the figure came from."""
    pairs = con.execute(                  # the previous window too: the fleet report compares with it
        "SELECT DISTINCT cluster, coalesce(gpu_model, '') FROM fct_job_gpu_hour"
        " WHERE hour_ts >= ? AND hour_ts < ? AND job_id IS NOT NULL ORDER BY ALL",
        [o.window.previous().start, o.window.end]).fetchall()
    out = []
    for cluster, model in pairs:
        out.append(embodied_rate(settings, cluster, model, o))
    con.execute("CREATE OR REPLACE TEMP TABLE rpt_rates (cluster VARCHAR, gpu_model VARCHAR, kg_per_gpu_hour DOUBLE)")
    if out:
        con.executemany("INSERT INTO rpt_rates VALUES (?, ?, ?)",
                        [[r.cluster, r.model, r.kg_per_gpu_hour] for r in out])
    return out


def embodied_rate(settings: Settings, cluster: str | None, model: str, o: ReportOptions) -> EmbodiedRate:
    spec = settings.config.cluster(cluster).hardware_for(model) if cluster else None
    if spec is not None and spec.embodied_kgco2eq is not None:
        per_gpu, source = spec.embodied_kgco2eq, f"config clusters.{cluster}.hardware[{model!r}]"
    else:
        per_gpu, source = hardware.embodied_kgco2eq_per_gpu(hardware.lookup(model) if model else None)
    rate = per_gpu / (o.lifetime_years * hardware.HOURS_PER_YEAR * o.utilisation)
    return EmbodiedRate(cluster=cluster, model=model or "unknown model", kgco2eq_per_gpu=per_gpu,
                        lifetime_years=o.lifetime_years, utilisation=o.utilisation, kg_per_gpu_hour=rate,
                        source=source)


def _scope(con: duckdb.DuckDBPyConnection, o: ReportOptions, w: Window) -> None:
    run_sql(con, "rpt_scope", {"start": w.start, "end": w.end, "project": o.project, "phases": list(o.phases),
                               "pro_rata": o.idle_policy == "pro-rata"})


def _check_scope(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> None:
    """Unknown project or phase, or nothing to report: a clear error, never a report of zeros."""
    if o.project is not None:
        known = [r[0] for r in con.execute(
            "SELECT DISTINCT project FROM jobs UNION SELECT DISTINCT project FROM fct_job_gpu_hour"
            " WHERE project IS NOT NULL ORDER BY 1").fetchall()]
        known += sorted({e.project for e in o.estimates} - set(known))
        if o.project not in known:
            # the hint lists the ledger's names on the user's terminal: cleaned (the asked-for name is repr'd)
            raise InputError("--project", f"unknown project {o.project!r}{suggest(o.project, known)}",
                             "known projects: " + (", ".join(clean(k) for k in known[:20])
                                                   or "none (import a job ledger first)"))
    for phase in o.phases:
        phases = {r[0] for r in con.execute("SELECT DISTINCT phase FROM jobs").fetchall()} | set(PHASES)
        if phase not in phases:
            raise InputError("--phase", f"unknown phase {phase!r}{suggest(phase, sorted(phases))}",
                             f"phases: {', '.join(clean(p) for p in sorted(phases))}")


def _span(con: duckdb.DuckDBPyConnection, project: str | None) -> str:
    row = con.execute("SELECT min(hour_ts), max(hour_ts) FROM (SELECT hour_ts, job_id, project FROM fct_job_gpu_hour"
                      " UNION ALL SELECT hour_ts, job_id, project FROM fct_job_cpu_hour)"
                      " WHERE job_id IS NOT NULL AND (? IS NULL OR project = ?)", [project, project]).fetchall()[0]
    if row[0] is None:
        return "no measured job energy is stored" + (f" for project {project!r}" if project else "")
    return f"stored results span {iso(_ts(row[0]))} .. {iso(_ts(row[1]) + timedelta(hours=1))}"


# -- the report ----------------------------------------------------------------------------------------

def build_report(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> Report:
    stale = con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE gpu_seconds IS NULL OR gpu_key IS NULL"
                        ).fetchall()[0][0]
    if stale:
        raise InputError("database", "its results were built by an older wattprint (no GPU-seconds or GPU keys)",
                         "run `wattprint build` once, then the report")
    _check_scope(con, o)
    rates = _rates(con, settings, o)
    previous = _previous(con, o) if o.kind == "fleet" else None
    _scope(con, o, o.window)
    estimates = [e for e in o.estimates if _estimate_in_scope(e, o)]
    (n_rows,) = con.execute("SELECT count(*) FROM rpt_rows").fetchall()[0]
    if n_rows == 0 and not estimates:
        who = f"project {o.project!r}" if o.project else "any job"
        which = f" in phase {', '.join(o.phases)}" if o.phases else ""
        raise InputError("--month" if o.window.label else "--start/--end",
                         f"no measured energy for {who}{which} in {iso(o.window.start)} .. {iso(o.window.end)}",
                         _span(con, o.project) + "; pick a window inside it, or add manual phases with --estimates")

    blocks = _phase_blocks(con, settings, o, estimates)
    phases = [p for p, _ in blocks]
    total = Sums()
    for _, sums in blocks:
        total = total.add(sums)
    # the sections in the order their statements always ran
    hardware = _hardware_total(con, phases)
    cpu_hardware = _cpu_hardware_total(con, phases)
    data_quality = _quality(con, o, estimates, total)
    whatif = _whatif(con, settings, o, total, bool(estimates))
    daily = _daily(con, o, estimates)
    hourly = _hourly(con)
    # every GPU-hour of the window against its hardware counter: the data-quality check, fleet-wide
    fleet = _fleet(con, o, total, previous or {}, data_quality.gpu_counters) if o.kind == "fleet" else None
    w = o.window
    return Report(
        schema_version=SCHEMA_VERSION,
        kind=o.kind,
        title=_title(o),
        project=o.project,
        generated_at=iso((o.generated_at or datetime.now(UTC)).replace(microsecond=0)),
        window=ReportWindow(start=iso(w.start), end=iso(w.end), label=w.label, hours=w.hours),
        method=_method(o, rates),
        phases=tuple(phases),
        total=Total(
            energy_kwh=total.energy_j / 3.6e6,
            emissions_kg=total.headline_kg(o),
            gpu_hours=total.gpu_s / 3600.0,
            cpu_energy_kwh=total.cpu_j / 3.6e6,
            cpu_package_kwh=total.cpu_pkg_j / 3.6e6,
            cpu_dram_kwh=total.cpu_dram_j / 3.6e6,
            cpu_hours=total.cpu_s / 3600.0,
            intensity_g_per_kwh=total.intensity(),
            facility_energy_kwh=total.facility_kwh(o),
            hardware=hardware,
            cpu_hardware=cpu_hardware,
        ),
        layers=_layers(total, o),
        equivalences=_equivalences(total.headline_kg(o)),
        data_quality=data_quality,
        whatif=whatif,
        daily=daily,
        hourly=hourly,
        fleet=fleet,
    )


def _title(o: ReportOptions) -> str:
    when = o.window.label or f"{iso(o.window.start)} .. {iso(o.window.end)}"
    scope = f"project {o.project}" if o.project else "all projects"
    if o.phases:
        scope += f" ({', '.join(o.phases)})"
    return f"Carbon report: {scope}, {when}"


def _estimate_in_scope(e: ManualPhase, o: ReportOptions) -> bool:
    if o.project is not None and e.project != o.project:
        return False
    if o.phases and e.phase not in o.phases:
        return False
    if e.start is None and e.end is None:
        return o.kind == "project"        # undated history belongs to its project's report, not to a month
    start = e.start or datetime.min.replace(tzinfo=UTC)
    end = e.end or datetime.max.replace(tzinfo=UTC)
    return start < o.window.end and end > o.window.start


def _phase_order(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase) if phase in PHASES else len(PHASES) - 1, phase)


def _phase_blocks(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions,
                  estimates: list[ManualPhase]) -> list[tuple[Phase, Sums]]:
    """The phase blocks, each with the sums behind it (measured phases, then each group of manual phases)."""
    sums = {r["phase"]: Sums.of(r) for r in _rows(con, f"SELECT phase, {_SUMS} FROM rpt_rows GROUP BY 1")}
    jobs = {r["phase"]: r["jobs"] for r in _rows(
        con, "SELECT phase, count(DISTINCT (cluster, job_id)) AS jobs FROM rpt_rows GROUP BY 1")}
    hw: dict[str, list[PhaseGpu]] = defaultdict(list)
    for r in _rows(con, "SELECT phase, gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)) AS gpus,"
                        " sum(gpu_seconds) AS gpu_seconds"
                        " FROM rpt_rows WHERE kind = 'gpu' GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"):
        hw[r["phase"]].append(PhaseGpu(model=r["gpu_model"] or "unknown model", gpus=int(r["gpus"]),
                                       gpu_hours=float(r["gpu_seconds"]) / 3600))
    cpu_hw: dict[str, list[PhaseCpu]] = defaultdict(list)
    for r in _rows(con, "SELECT phase, cpu_model, count(DISTINCT (cluster, hostname, socket)) AS sockets,"
                        " count(DISTINCT (cluster, hostname)) AS hosts"
                        " FROM rpt_rows WHERE kind = 'cpu' GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"):
        cpu_hw[r["phase"]].append(PhaseCpu(model=r["cpu_model"] or "unknown CPU model", sockets=int(r["sockets"]),
                                           hosts=int(r["hosts"])))
    cl: dict[str, list[PhaseCluster]] = defaultdict(list)
    for r in _rows(con,
                   "SELECT r.phase, r.cluster, coalesce(c.provider, 'onprem') AS provider,"
                   " coalesce(r.region, '') AS region, r.zone, max(r.pue) AS pue,"
                   " coalesce(bool_and(c.pue_known), false) AS pue_known, sum(r.energy_j) AS energy_j,"
                   " sum(r.gpu_g) AS gpu_g, sum(r.cpu_j) AS cpu_j, sum(r.cpu_g) AS cpu_g"
                   " FROM rpt_rows r LEFT JOIN clusters c USING (cluster) GROUP BY 1, 2, 3, 4, 5"
                   " ORDER BY 1, sum(r.energy_j) + sum(r.cpu_j) DESC, 2"):
        e, ce = r["energy_j"], r["cpu_j"]
        cl[r["phase"]].append(PhaseCluster(
            cluster=r["cluster"], provider=r["provider"], region=r["region"], zone=r["zone"], pue=r["pue"],
            pue_known=bool(r["pue_known"]), energy_kwh=e / 3.6e6, cpu_energy_kwh=ce / 3.6e6,
            intensity_g_per_kwh=_share(r["gpu_g"] + r["cpu_g"], (e + ce) / 3.6e6)))
    wall = _wall_clock(con, o.window)

    blocks: list[tuple[Phase, Sums]] = []
    for phase in sorted(sums, key=_phase_order):
        s = sums[phase]
        blocks.append((_block(o, phase, "measured", s, hw[phase], cpu_hw[phase], cl[phase], wall.get(phase, 0.0),
                              int(jobs.get(phase, 0))), s))
    for key, group in _group_estimates(estimates).items():
        s, hw_e, cpu_e, cl_e, hours = _estimate_sums(settings, o, group)
        blocks.append((_block(o, key[0], "estimated (TDP)", s, hw_e, cpu_e, cl_e, hours, 0, group), s))
    blocks.sort(key=lambda b: (_phase_order(b[0].phase), b[0].label != "measured"))
    return blocks


def cpu_name(model: str) -> str:
    """A CPU model name as /proc/cpuinfo gives it, without the clock or 'Processor' suffix, for the phase text:
    'Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz' -> 'Intel(R) Xeon(R) Gold 6248',
    'AMD EPYC 7763 64-Core Processor' -> 'AMD EPYC 7763'."""
    name = re.sub(r"\s*@\s*[\d.]+\s*[GM]Hz$", "", model.strip())
    name = re.sub(r"\s+(?:\d+-Core\s+)?Processor$", "", name)
    return re.sub(r"\s+CPU$", "", name) or model


def _hardware_text(gpus: Sequence[PhaseGpu], cpus: Sequence[PhaseCpu]) -> str:
    """CPUs, then GPUs, in the model card's words: "2 Intel(R) Xeon(R) Gold 6248 CPUs, 4 NVIDIA A100 ... GPUs"."""
    parts = [f"{h.sockets:,} {cpu_name(h.model)} CPUs" if h.sockets else f"{cpu_name(h.model)} CPUs" for h in cpus]
    parts += [f"{h.gpus:,} {h.model} GPUs" if h.gpus else f"{h.model} GPUs" for h in gpus]
    return ", ".join(parts) or "no GPU measured"


def _block(o: ReportOptions, phase: str, label: str, s: Sums, hw: Sequence[PhaseGpu], cpu_hw: Sequence[PhaseCpu],
           clusters: Sequence[PhaseCluster], wall_h: float | None, jobs: int,
           estimates: Sequence[ManualPhase] = ()) -> Phase:
    energy_kwh = s.energy_j / 3.6e6
    title = f"{o.project} {phase}" if o.project else phase
    if estimates and estimates[0].name:
        title = f"{o.project or estimates[0].project} {estimates[0].name}"
    return Phase(
        phase=phase,
        label=label,
        title=title,
        hardware=tuple(hw),
        cpu_hardware=tuple(cpu_hw),
        hardware_text=_hardware_text(hw, cpu_hw),
        gpu_hours=s.gpu_s / 3600.0,
        cpu_hours=s.cpu_s / 3600.0,
        wall_clock_hours=wall_h,
        jobs=jobs,
        clusters=tuple(clusters),
        provider_text="; ".join(
            f"{PROVIDER_NAMES.get(c.provider, c.provider)} (cluster {c.cluster})" if c.cluster
            else PROVIDER_NAMES.get(c.provider, c.provider) for c in clusters),
        region_text="; ".join(_region_text(c) for c in clusters),
        energy_kwh=energy_kwh,
        cpu_energy_kwh=s.cpu_j / 3.6e6,
        cpu_package_kwh=s.cpu_pkg_j / 3.6e6,
        cpu_dram_kwh=s.cpu_dram_j / 3.6e6,
        intensity_g_per_kwh=s.intensity(),
        emissions_kg=s.headline_kg(o),
        layers=s.layers(o),
        sources=tuple(e.origin for e in estimates),
    )


def _hardware_total(con: duckdb.DuckDBPyConnection, phases: Sequence[Phase]) -> tuple[GpuHardware, ...]:
    """Distinct measured GPUs per model over the whole scope (a GPU used by two phases counts once), then
    the estimated phases' declared GPUs."""
    out = [GpuHardware(model=r["gpu_model"] or "unknown model", gpus=int(r["gpus"]), measured=True) for r in _rows(
        con, "SELECT gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)) AS gpus FROM rpt_rows"
             " WHERE kind = 'gpu' GROUP BY 1 ORDER BY 2 DESC, 1")]
    for p in phases:
        if p.label != "measured":
            out += [GpuHardware(model=h.model, gpus=h.gpus, measured=False) for h in p.hardware]
    return tuple(out)


def _cpu_hardware_total(con: duckdb.DuckDBPyConnection, phases: Sequence[Phase]) -> tuple[CpuHardware, ...]:
    """Distinct measured CPU sockets (with RAPL energy) per CPU model over the whole scope, then the estimated
    phases' CPU models (sockets unknown: 0)."""
    out = [CpuHardware(model=r["cpu_model"] or "unknown CPU model", sockets=int(r["sockets"]), hosts=int(r["hosts"]),
                       measured=True)
           for r in _rows(con, "SELECT cpu_model, count(DISTINCT (cluster, hostname, socket)) AS sockets,"
                               " count(DISTINCT (cluster, hostname)) AS hosts"
                               " FROM rpt_rows WHERE kind = 'cpu' GROUP BY 1 ORDER BY 2 DESC, 1")]
    for p in phases:
        if p.label != "measured":
            out += [CpuHardware(model=h.model, sockets=h.sockets, hosts=h.hosts, measured=False)
                    for h in p.cpu_hardware or ()]
    return tuple(out)


def _region_text(c: PhaseCluster) -> str:
    where = c.region or c.cluster or "unknown region"
    zone = f"zone {c.zone}, " if c.zone else "zone unknown, "
    return f"{where} ({zone}{c.intensity_g_per_kwh:,.0f} gCO2eq/kWh)"


def _wall_clock(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, float]:
    """Hours during which at least one job of the phase ran (ledger start/end, else the hours with energy)."""
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in _rows(con, "SELECT r.phase, min(r.hour_ts) AS first, max(r.hour_ts) AS last,"
                        " any_value(j.start_ts) AS start_ts, any_value(j.end_ts) AS end_ts FROM rpt_rows r"
                        " LEFT JOIN jobs j USING (cluster, job_id) GROUP BY r.phase, r.cluster, r.job_id"):
        start, end = r["start_ts"], r["end_ts"]
        s = max(_ts(start) if start is not None else _ts(r["first"]), w.start)
        e = min(_ts(end) if end is not None else _ts(r["last"]) + timedelta(hours=1), w.end)
        if e > s:
            spans[r["phase"]].append((s, e))
    return {phase: _union_hours(iv) for phase, iv in spans.items()}


def _union_hours(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += (cur_e - cur_s).total_seconds()
    return total / 3600.0


# -- estimates -----------------------------------------------------------------------------------------

def _group_estimates(estimates: list[ManualPhase]) -> dict[tuple[str, str], list[ManualPhase]]:
    out: dict[tuple[str, str], list[ManualPhase]] = defaultdict(list)
    for e in estimates:
        out[(e.phase, e.name or "")].append(e)
    return out


def _estimate_sums(settings: Settings, o: ReportOptions, group: list[ManualPhase]
                   ) -> tuple[Sums, list[PhaseGpu], list[PhaseCpu], list[PhaseCluster], float | None]:
    s = Sums()
    hw: dict[str, PhaseGpu] = {}
    cpu_hw: dict[str, PhaseCpu] = {}
    clusters: list[PhaseCluster] = []
    hours: float | None = 0.0
    for e in group:
        r = e.estimate
        gpu_j = r.gpu_it_j
        gpu_g = gpu_j / 3.6e6 * r.intensity_g_per_kwh
        cpu_j = r.cpu_it_j
        cpu_g = cpu_j / 3.6e6 * r.intensity_g_per_kwh
        rate = embodied_rate(settings, e.cluster, r.gpu_model or "", o).kg_per_gpu_hour if r.gpu_hours else 0.0
        s = s.add(Sums(energy_j=gpu_j, gpu_g=gpu_g, pue_gpu_j=(r.pue - 1) * gpu_j, pue_gpu_g=(r.pue - 1) * gpu_g,
                       emb_g=r.gpu_hours * rate * 1000.0, gpu_s=r.gpu_hours * 3600.0,
                       cpu_j=cpu_j, cpu_g=cpu_g, cpu_s=r.cpu_hours * 3600.0,
                       pue_cpu_j=(r.pue - 1) * cpu_j, pue_cpu_g=(r.pue - 1) * cpu_g))
        if r.gpu_hours:
            model = r.gpu_model or "unknown model"
            entry = hw.get(model, PhaseGpu(model=model, gpus=0, gpu_hours=0.0))
            hw[model] = PhaseGpu(model=model, gpus=entry.gpus + int(r.gpus or 0),
                                 gpu_hours=entry.gpu_hours + r.gpu_hours)
        if r.cpu_hours:
            cpu = r.cpu_model or "unknown CPU model"
            cpu_hw.setdefault(cpu, PhaseCpu(model=cpu, sockets=0, hosts=0))
        hours = None if hours is None or r.hours is None else max(hours, r.hours)
        clusters.append(PhaseCluster(cluster=e.cluster or "", provider=e.provider or "onprem", region=e.region or "",
                                     zone=r.region, pue=r.pue, pue_known=True, energy_kwh=gpu_j / 3.6e6,
                                     cpu_energy_kwh=cpu_j / 3.6e6, intensity_g_per_kwh=r.intensity_g_per_kwh))
    return s, list(hw.values()), list(cpu_hw.values()), clusters, hours


# -- sections ------------------------------------------------------------------------------------------

def _method(o: ReportOptions, rates: list[EmbodiedRate]) -> Method:
    inc = _included(o)
    host = " and the host idle energy (RAPL energy of the CPU sockets no job's CPU time accounts for) by CPU-seconds" \
        if o.inc_cpu else ""
    idle = ("each cluster-hour's idle and unallocated GPU energy is shared among the jobs that ran in it, "
            f"pro rata by GPU-hours{host}" if o.idle_policy == "pro-rata"
            else "idle and unallocated GPU energy and host idle energy are reported per cluster, not charged to "
                 "projects")
    cpu = ("CPU energy (package and DRAM of each socket) comes from the hosts' RAPL energy counters, split among "
           "the jobs on a host by their share of its CPU time, and is priced the same way; " if o.inc_cpu else
           "CPU energy is shown but not in the headline (nor in the idle share and overhead); ")
    statement = (
        "Headline = " + " + ".join(LAYER_TITLES[n] for n in inc) + ". "
        "GPU energy comes from the GPUs' hardware energy counters (power gauges integrated only where no counter "
        "exists) and is priced hour by hour with the grid carbon intensity of the cluster's zone; " + cpu + idle +
        "; the data-centre overhead is (PUE - 1) x that energy; embodied emissions are each GPU model's "
        f"manufacturing footprint over {o.lifetime_years:g} years at {o.utilisation:.0%} utilisation, "
        "per GPU-hour." + ("" if "embodied" in inc else " Embodied emissions are shown but not in the headline.")
    )
    return Method(layers_selected=inc, idle_policy=o.idle_policy, statement=statement,
                  embodied=Embodied(lifetime_years=o.lifetime_years, utilisation=o.utilisation,
                                    default_kgco2eq_per_gpu=hardware.DEFAULT_EMBODIED_KGCO2EQ_PER_GPU,
                                    source=hardware.EMBODIED_DEFAULT_SOURCE, rates=tuple(rates)))


def _layers(total: Sums, o: ReportOptions) -> tuple[LayerRow, ...]:
    values = total.layers(o)
    inc = _included(o)
    host = " (GPU-seconds), and host idle energy by CPU-seconds" if o.inc_cpu else ""
    methods = {
        "gpu": "sum over the jobs' (job, GPU, hour) rows of energy x that hour's intensity",
        "cpu": "sum over the jobs' (job, host, socket, RAPL domain, hour) rows of energy x that hour's intensity",
        "idle": (f"pro rata by GPU-hours within each cluster-hour{host}" if o.idle_policy == "pro-rata"
                 else "reported separately per cluster (idle policy 'separate'): not charged"),
        "pue": "(PUE - 1) x the GPU" + (" and CPU" if o.inc_cpu else "") +
               " energy in the headline, at the same hours' intensity",
        "embodied": "GPU-hours x per-GPU kgCO2eq / (lifetime hours x utilisation)",
    }
    out = []
    for n in LAYERS:
        v = _layer(values, n)
        cpu = v if isinstance(v, CpuLayer) else None
        idle = v if isinstance(v, IdleLayer) else None
        out.append(LayerRow(layer=n, title=LAYER_TITLES[n], energy_kwh=v.energy_kwh, emissions_kg=v.emissions_kg,
                            included=n in inc, method=methods[n],
                            package_kwh=cpu.package_kwh if cpu is not None else None,
                            dram_kwh=cpu.dram_kwh if cpu is not None else None,
                            gpu_energy_kwh=idle.gpu_energy_kwh if idle is not None else None,
                            cpu_energy_kwh=idle.cpu_energy_kwh if idle is not None else None))
    return tuple(out)


def _equivalences(kg: float) -> Equivalences:
    e = equivalences.equivalents(kg)
    return Equivalences(miles_driven=e["miles_driven"], homes_energy_years=e["homes_energy_years"],
                        kg_per_mile=e["kg_per_mile"], kg_per_home_year=e["kg_per_home_year"],
                        source=f"{e['edition']}, {e['date']}, {e['url']}", edition=e["edition"],
                        sentence=equivalences.sentence(kg))


def _quality(con: duckdb.DuckDBPyConnection, o: ReportOptions, estimates: list[ManualPhase],
             total: Sums) -> DataQuality:
    est_j = sum(e.estimate.gpu_it_j for e in estimates)
    est_cpu_j = sum(e.estimate.cpu_it_j for e in estimates)
    whole = total.energy_j
    by_energy = {r["quality"]: r["energy_j"] for r in _rows(
        con, "SELECT energy_quality AS quality, sum(energy_j) AS energy_j FROM rpt_rows WHERE kind = 'gpu' GROUP BY 1")}
    energy = EnergyShares(
        counter=_fraction(sum(by_energy.get(q, 0.0) for q in COUNTER_QUALITIES), whole),
        counter_across_gap=_fraction(by_energy.get("gap", 0.0) + by_energy.get("gap_reset", 0.0), whole),
        power_integrated=_fraction(by_energy.get("power_integrated", 0.0), whole),
        estimated=_fraction(est_j, whole),
    )
    by_cpu = {r["quality"]: r["cpu_j"] for r in _rows(
        con, "SELECT energy_quality AS quality, sum(cpu_j) AS cpu_j FROM rpt_rows WHERE kind = 'cpu' GROUP BY 1")}
    cpu_energy = CpuEnergyShares(
        counter=_fraction(sum(by_cpu.get(q, 0.0) for q in COUNTER_QUALITIES), total.cpu_j),
        counter_across_gap=_fraction(by_cpu.get("gap", 0.0) + by_cpu.get("gap_reset", 0.0), total.cpu_j),
        estimated=_fraction(est_cpu_j, total.cpu_j),
    )
    all_j = whole + total.cpu_j
    by_int = {r["quality"]: r["energy_j"] for r in _rows(
        con, "SELECT intensity_quality AS quality, sum(energy_j + cpu_j) AS energy_j FROM rpt_rows"
             " WHERE kind <> 'cpu_time' GROUP BY 1")}
    by_int["declared"] = est_j + est_cpu_j
    intensity = IntensityShares(**{q: _fraction(by_int.get(q, 0.0), all_j) for q in INTENSITY_QUALITIES})
    gaps = gpu_checks.gaps(con, o.window)
    counters = gpu_checks.counters(con, o.window, fleet=o.kind == "fleet")
    silent = con.execute(
        "SELECT count(*) FROM jobs j WHERE (? IS NULL OR j.project = ?)"
        " AND (len(CAST(? AS VARCHAR[])) = 0 OR list_contains(CAST(? AS VARCHAR[]), j.phase))"
        " AND j.start_ts < ? AND coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) > ?"
        " AND NOT EXISTS (SELECT 1 FROM rpt_rows r WHERE r.cluster = j.cluster AND r.job_id = j.job_id)",
        [o.project, o.project, list(o.phases), list(o.phases), o.window.end, o.window.start]).fetchall()[0][0]
    unknown_pue = tuple(r[0] for r in con.execute(
        "SELECT DISTINCT r.cluster FROM rpt_rows r LEFT JOIN clusters c USING (cluster)"
        " WHERE NOT coalesce(c.pue_known, false) ORDER BY 1").fetchall())
    rapl = _rapl(con, o, whole - est_j)
    measured = energy.counter + energy.counter_across_gap + energy.power_integrated
    measured_all = _fraction(all_j - est_j - est_cpu_j, all_j)
    counter_share = _fraction(energy.counter + energy.counter_across_gap, measured)
    hourly_share = _fraction(intensity.hourly + intensity.nearest_hour, measured_all)
    estimated_all = _fraction(est_j + est_cpu_j, all_j)
    warnings = []
    if rapl.nodes and o.inc_cpu and all(n.samples == 0 for n in rapl.without) and rapl.nodes_without == rapl.nodes:
        warnings.append("no node in this report exported RAPL series, so its jobs' CPU energy (layer cpu) is not "
                        "measured: run the exporter with its RAPL collector where /sys/class/powercap is readable, "
                        "or leave cpu out of report.layers")
    elif rapl.nodes_without and o.inc_cpu and (rapl.unreadable_gpu_energy_share >= RAPL_WARN_SHARE
                                                or whole - est_j <= 0):
        shown = rapl.without[:5]
        more = f"; and {len(rapl.without) - len(shown)} more" if len(rapl.without) > len(shown) else ""
        warnings.append(
            f"{rapl.nodes_without} of the {rapl.nodes} nodes in this report had no readable RAPL for all or "
            "part of the window (" + "; ".join(f"{n.hostname}, {n.gpu_energy_share:.1%} of the GPU energy: "
                                               f"{n.reason}" for n in shown) + more +
            f"): about {rapl.unreadable_gpu_energy_share:.1%} of the measured GPU energy ran where the jobs' CPU "
            "energy is missing; enable the exporter's RAPL collector and make the powercap energy_uj files "
            "readable to it")
    if measured > 0 and counter_share < MIN_COUNTER_SHARE:
        warnings.append(f"only {counter_share:.1%} of the measured GPU energy comes from hardware energy counters; "
                        "the rest is integrated from power gauges, which can miss 5-30 % on bursty jobs")
    if measured_all > 0 and hourly_share < MIN_HOURLY_SHARE:
        fallbacks = ", ".join(f"{q.replace('_', ' ')} {getattr(intensity, q):.1%}" for q in
                              ("monthly_mean", "annual_default", "world_default") if getattr(intensity, q) > 0)
        warnings.append(f"only {hourly_share:.1%} of the measured energy is priced with hourly grid intensity "
                        f"(fallbacks: {fallbacks}); import hourly intensity for these zones")
    if intensity.world_default > 0:
        warnings.append(f"{intensity.world_default:.1%} of the energy is priced at the world-average intensity "
                        "because its cluster has no known zone; set clusters.<name>.zone in the config")
    if estimated_all > 0:
        warnings.append(f"{estimated_all:.1%} of the energy is estimated from TDP, not measured")
    if gaps.count:
        warnings.append(f"{gaps.count} telemetry gaps ({gaps.hours:,.1f} GPU-hours) on this report's GPUs: "
                        "energy across a counter gap is kept, power-gauge gaps are not filled")
    warnings += gpu_checks.warnings(gaps, counters)
    if silent:
        warnings.append(f"{silent} jobs of the ledger ran in this window but have no measured energy")
    if unknown_pue and "pue" in o.layers:
        warnings.append(f"PUE unknown for cluster {', '.join(unknown_pue)}: 1.0 applied; set clusters.<name>.pue")
    poor = measured > 0 and (counter_share < POOR_SHARE or hourly_share < POOR_SHARE
                             or intensity.world_default > 0 or silent > 0 or counters.difference_gpu_hours > 0)
    return DataQuality(energy=energy, cpu_energy=cpu_energy, intensity=intensity, gaps=gaps, gpu_counters=counters,
                       jobs_without_telemetry=int(silent), clusters_without_pue=unknown_pue, rapl=rapl,
                       warnings=tuple(warnings), poor=bool(poor))


def _rapl(con: duckdb.DuckDBPyConnection, o: ReportOptions, gpu_j: float) -> Rapl:
    """The nodes in scope (hosts where the scope's jobs have GPU, CPU or CPU-time rows) whose RAPL could not be
    read in the window: no RAPL series at all, unreadable samples, or hours with jobs but no RAPL series."""
    rows = _rows(
        con,
        "WITH n AS (SELECT cluster, hostname, sum(energy_j) AS gpu_j, count(DISTINCT hour_ts) AS hours"
        "           FROM rpt_rows GROUP BY 1, 2),"
        " r AS (SELECT cluster, hostname, sum(samples) AS samples, sum(readable_samples) AS readable"
        "       FROM node_rapl_hour WHERE hour_ts >= ? AND hour_ts < ? GROUP BY 1, 2),"
        " m AS (SELECT h.cluster, h.hostname, count(*) AS hours FROM (SELECT DISTINCT cluster, hostname, hour_ts"
        "       FROM rpt_rows) h WHERE NOT EXISTS (SELECT 1 FROM node_rapl_hour x WHERE x.cluster = h.cluster"
        "       AND x.hostname = h.hostname AND x.hour_ts = h.hour_ts AND x.samples > 0) GROUP BY 1, 2)"
        " SELECT n.cluster, n.hostname, n.gpu_j, n.hours, coalesce(r.samples, 0) AS samples,"
        " coalesce(r.readable, 0) AS readable, coalesce(m.hours, 0) AS missing"
        " FROM n LEFT JOIN r USING (cluster, hostname) LEFT JOIN m USING (cluster, hostname)"
        " ORDER BY n.gpu_j DESC, 1, 2", [o.window.start, o.window.end])
    without: list[RaplNode] = []
    for row in rows:
        host, node_j, hours = row["hostname"], row["gpu_j"], row["hours"]
        samples, readable, missing = row["samples"], row["readable"], row["missing"]
        reasons = []
        if samples == 0:
            reasons.append(NO_RAPL)
        else:
            if readable < samples:
                reasons.append(f"RAPL not readable in {samples - readable:,} of {samples:,} samples")
            if missing:
                reasons.append(f"no RAPL series in {missing:,} of its {hours:,} hours with jobs")
        if not reasons:
            continue
        # the part of the node's time without readable RAPL: all of it, else unreadable samples + hours without
        unreadable = 1.0 if samples == 0 else _fraction((samples - readable) / samples + missing / hours, 1.0)
        without.append(RaplNode(cluster=row["cluster"], hostname=host, reason="; ".join(reasons),
                                samples=int(samples), readable_samples=int(readable), hours=int(hours),
                                hours_without_rapl=int(missing), unreadable_share=unreadable,
                                gpu_energy_share=_fraction(float(node_j or 0.0), gpu_j)))
    return Rapl(nodes=len(rows), nodes_without=len(without),
                gpu_energy_share=_fraction(sum(n.gpu_energy_share for n in without), 1.0),
                unreadable_gpu_energy_share=_fraction(sum(n.gpu_energy_share * n.unreadable_share
                                                          for n in without), 1.0),
                without=tuple(without))


def _whatif(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions, total: Sums,
            has_estimates: bool) -> WhatIf:
    """The scope's hourly energy priced in each configured zone (the same fallback chain as the model)."""
    candidates = con.execute(
        "SELECT cluster, provider, coalesce(region, ''), zone, pue FROM clusters WHERE zone IS NOT NULL ORDER BY 1"
    ).fetchall()
    k = 1.0 if o.inc_idle else 0.0
    c = 1.0 if o.inc_cpu else 0.0
    measured = Sums.of(_rows(con, "SELECT " + _SUMS + " FROM rpt_rows")[0])
    actual_g = measured.operational_g(o)
    actual_kg = actual_g / 1000.0
    note = ("the measured hours' GPU" + (" and CPU" if o.inc_cpu else "") + " energy" +
            (" and idle share" if o.inc_idle else "") +
            (", times each cluster's PUE," if "pue" in o.layers else "") +
            " priced with each zone's intensity at the same hours; embodied emissions do not move with the work")
    if has_estimates:
        note += "; estimated phases have no hourly profile and are left out"
    if not candidates or measured.energy_j + c * measured.cpu_j <= 0:
        note += "; no cluster with a zone is configured" if not candidates else ""
        return WhatIf(actual_kg=actual_kg, options=(), best=None, saving_kg=0.0, saving_pct=0.0, note=note)
    con.execute("CREATE OR REPLACE TEMP TABLE rpt_profile AS SELECT epoch(hour_ts)::BIGINT // 3600 AS hour_idx,"
                " sum(energy_j + ? * cpu_j + ? * (idle_j + ? * cpu_idle_j)) AS energy_j FROM rpt_rows GROUP BY 1",
                [c, k, c])
    zones = sorted({row[3] for row in candidates})
    con.execute("CREATE OR REPLACE TEMP TABLE rpt_intensity_needed AS SELECT z.zone, p.hour_idx FROM rpt_profile p"
                " CROSS JOIN (SELECT unnest(CAST(? AS VARCHAR[])) AS zone) z", [zones])
    b = settings.build_settings()
    run_sql(con, "macros_intensity")   # the model's intensity rule, for other zones at the same hours
    priced = {z: (g, e, h) for z, g, e, h in con.execute(
        "SELECT r.zone, sum(p.energy_j * r.g_per_kwh) / 3600000.0, sum(p.energy_j),"
        " coalesce(sum(p.energy_j) FILTER (WHERE r.quality = 'hourly'), 0)"
        " FROM rpt_profile p JOIN intensity_resolved('rpt_intensity_needed', ?, ?) r USING (hour_idx) GROUP BY 1",
        [b.nearest_hour_bound_h, b.world_g_per_kwh]).fetchall()}
    options = []
    for cluster, provider, region, zone, pue in candidates:
        g, e, h = priced.get(zone, (0.0, 0.0, 0.0))
        factor = pue if "pue" in o.layers else 1.0
        kg = g * factor / 1000.0
        options.append(WhatIfOption(cluster=cluster, provider=provider, region=region, zone=zone, pue=pue,
                                    emissions_kg=kg, intensity_g_per_kwh=_share(g, e / 3.6e6),
                                    hourly_share=_fraction(h, e), delta_kg=kg - actual_kg))
    best = min(options, key=lambda x: x.emissions_kg)
    saving_kg = max(0.0, actual_kg - best.emissions_kg)
    for t in ("rpt_profile", "rpt_intensity_needed"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return WhatIf(actual_kg=actual_kg, options=tuple(options), best=best, saving_kg=saving_kg,
                  saving_pct=_fraction(saving_kg, actual_kg), note=note)


def _daily(con: duckdb.DuckDBPyConnection, o: ReportOptions, estimates: list[ManualPhase]) -> tuple[Day, ...]:
    out = []
    for r in _rows(con, f"SELECT epoch(hour_ts)::BIGINT // 86400 AS day, {_SUMS} FROM rpt_rows GROUP BY 1 ORDER BY 1"):
        s = Sums.of(r)
        out.append(Day(date=(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(r["day"]))).date().isoformat(),
                       energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6, emissions_kg=s.headline_kg(o)))
    return tuple(out)


def _hourly(con: duckdb.DuckDBPyConnection) -> tuple[Hour, ...]:
    rows = _rows(
        con,
        "SELECT hour_ts, cluster, coalesce(zone, '') AS zone, sum(energy_j) / 3600.0 AS power_w,"
        " sum(cpu_j) / 3600.0 AS cpu_power_w,"
        " CASE WHEN sum(energy_j + cpu_j) > 0 THEN sum(gpu_g + cpu_g) / sum(energy_j + cpu_j) * 3600000.0"
        " ELSE coalesce(max(intensity_g_per_kwh), 0) END AS intensity"
        " FROM rpt_rows WHERE kind <> 'cpu_time' GROUP BY 1, 2, 3 ORDER BY 1, 2")
    return tuple(Hour(hour=iso(_ts(r["hour_ts"])), cluster=r["cluster"], zone=r["zone"], power_w=float(r["power_w"]),
                      cpu_power_w=float(r["cpu_power_w"]), intensity_g_per_kwh=float(r["intensity"])) for r in rows)


# -- fleet (monthly) -----------------------------------------------------------------------------------

def _previous(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> dict[str, Sums]:
    """Per project, the sums of the window before (run before this window's scope is built)."""
    _scope(con, o, o.window.previous())
    return {(r["project"] or NOT_IN_LEDGER): Sums.of(r) for r in _rows(
        con, f"SELECT coalesce(project, '') AS project, {_SUMS} FROM rpt_rows GROUP BY 1")}


def _fleet(con: duckdb.DuckDBPyConnection, o: ReportOptions, total: Sums, prev: dict[str, Sums],
           counters: GpuCounters) -> FleetSections:
    sums: dict[str, Sums] = {}
    phases: dict[str, list[ProjectPhase]] = {}
    for r in _rows(con, f"SELECT coalesce(project, '') AS project, phase, {_SUMS} FROM rpt_rows"
                        " GROUP BY 1, 2 ORDER BY 1, 2"):
        s = Sums.of(r)
        name = r["project"] or NOT_IN_LEDGER
        sums[name] = sums.get(name, Sums()).add(s)
        phases.setdefault(name, []).append(ProjectPhase(
            phase=r["phase"], energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6,
            emissions_kg=s.headline_kg(o), gpu_hours=s.gpu_s / 3600.0, cpu_hours=s.cpu_s / 3600.0))
    for p in phases.values():
        p.sort(key=lambda x: _phase_order(x.phase))

    prev_w = o.window.previous()
    prev_total = Sums()
    for s in prev.values():
        prev_total = prev_total.add(s)

    plist = []
    for name, s in sorted(sums.items(), key=lambda kv: -kv[1].headline_kg(o)):
        before = prev[name].headline_kg(o) if name in prev else None
        now = s.headline_kg(o)
        plist.append(ProjectRow(project=name, energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6,
                                emissions_kg=now, gpu_hours=s.gpu_s / 3600.0, cpu_hours=s.cpu_s / 3600.0,
                                previous_emissions_kg=before,
                                change_pct=(now - before) / before if before else None, phases=tuple(phases[name])))

    clusters = _clusters(con, o)
    rows = _rows(con, f"SELECT cluster, job_id, coalesce(project, '') AS project, phase,"
                      f" coalesce(any_value(user_name), '') AS user_name, {_SUMS} FROM rpt_rows GROUP BY 1, 2, 3, 4")
    ranked = sorted(((Sums.of(r), r) for r in rows),
                    key=lambda x: (-x[0].headline_kg(o), x[1]["cluster"], x[1]["job_id"]))
    top_jobs = tuple(TopJob(cluster=r["cluster"], job_id=r["job_id"], project=r["project"] or NOT_IN_LEDGER,
                            phase=r["phase"], user=r["user_name"], gpu_hours=s.gpu_s / 3600.0,
                            cpu_hours=s.cpu_s / 3600.0, energy_kwh=s.energy_j / 3.6e6,
                            cpu_energy_kwh=s.cpu_j / 3.6e6, emissions_kg=s.headline_kg(o))
                     for s, r in ranked[:o.top_jobs])

    pro_rata = o.idle_policy == "pro-rata"
    fleet_j, unapportioned_j, not_in_ledger_j = con.execute(
        "WITH f AS (SELECT * FROM fct_job_gpu_hour WHERE hour_ts >= ? AND hour_ts < ?),"
        " ch AS (SELECT cluster, hour_ts, coalesce(sum(gpu_seconds) FILTER (WHERE job_id IS NOT NULL), 0) AS job_s"
        "        FROM f GROUP BY ALL)"
        " SELECT coalesce(sum(energy_j), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NULL AND (ch.job_s = 0 OR NOT ?)), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NOT NULL AND NOT f.in_ledger), 0)"
        " FROM f JOIN ch USING (cluster, hour_ts)",
        [o.window.start, o.window.end, pro_rata]).fetchall()[0]
    cpu_fleet_j, cpu_unapportioned_j, cpu_not_in_ledger_j = con.execute(
        "WITH c AS (SELECT * FROM fct_job_cpu_hour WHERE hour_ts >= ? AND hour_ts < ?),"
        " t AS (SELECT cluster, hour_ts, sum(cpu_seconds) AS job_s FROM fct_job_cpu_time_hour"
        "       WHERE hour_ts >= ? AND hour_ts < ? GROUP BY ALL)"
        " SELECT coalesce(sum(energy_j), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE c.job_id IS NULL AND (coalesce(t.job_s, 0) = 0 OR NOT ?)), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE c.job_id IS NOT NULL AND NOT c.in_ledger), 0)"
        " FROM c LEFT JOIN t USING (cluster, hour_ts)",
        [o.window.start, o.window.end, o.window.start, o.window.end, pro_rata]).fetchall()[0]
    in_ledger_j, cpu_in_ledger_j = con.execute(
        "SELECT coalesce(sum(energy_j), 0), coalesce(sum(cpu_j), 0) FROM rpt_rows WHERE in_ledger").fetchall()[0]
    return FleetSections(
        projects=tuple(plist),
        clusters=clusters,
        top_jobs=top_jobs,
        previous=Previous(start=iso(prev_w.start), end=iso(prev_w.end), label=prev_w.label, hours=prev_w.hours,
                          energy_kwh=prev_total.energy_j / 3.6e6, cpu_energy_kwh=prev_total.cpu_j / 3.6e6,
                          emissions_kg=prev_total.headline_kg(o)) if prev else None,
        change=Change(energy_pct=_share(total.energy_j - prev_total.energy_j, prev_total.energy_j),
                      emissions_pct=_share(total.headline_kg(o) - prev_total.headline_kg(o),
                                           prev_total.headline_kg(o))) if prev else None,
        reconciliation=Reconciliation(
            fleet_energy_kwh=fleet_j / 3.6e6,
            projects_energy_kwh=in_ledger_j / 3.6e6,
            not_in_ledger_kwh=not_in_ledger_j / 3.6e6,
            idle_apportioned_kwh=total.idle_j / 3.6e6,
            idle_unapportioned_kwh=unapportioned_j / 3.6e6,
            note="fleet GPU energy = projects' jobs + jobs not in the ledger + idle apportioned to jobs + idle "
                 "not apportioned (no job ran in that cluster-hour, or the idle policy is 'separate')",
            cpu=CpuReconciliation(
                fleet_energy_kwh=cpu_fleet_j / 3.6e6,
                projects_energy_kwh=cpu_in_ledger_j / 3.6e6,
                not_in_ledger_kwh=cpu_not_in_ledger_j / 3.6e6,
                idle_apportioned_kwh=total.cpu_idle_j / 3.6e6,
                idle_unapportioned_kwh=cpu_unapportioned_j / 3.6e6,
                note="fleet host CPU energy (RAPL package + DRAM) = projects' jobs + jobs not in the ledger + "
                     "host idle apportioned to jobs (by CPU-seconds) + host idle not apportioned (no job had CPU "
                     "time in that cluster-hour, or the idle policy is 'separate')",
            ),
            gpu_counters=counters,
        ),
    )


def _clusters(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> tuple[ClusterRow, ...]:
    """Per cluster: GPUs and their energy (jobs and idle), host CPU energy (jobs and idle), and the emissions of
    both including PUE, straight from the results (every job, in the ledger or not)."""
    gpu = {row[0]: row[1:] for row in con.execute(
        "SELECT f.cluster, count(DISTINCT (f.hostname, f.gpu, f.uuid)), sum(f.energy_j),"
        " coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NOT NULL), 0),"
        " coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NULL), 0),"
        " sum(f.energy_j * f.intensity_g_per_kwh) / 3600000.0, sum(f.emissions_g), max(f.pue),"
        " any_value(f.region), any_value(f.zone)"
        " FROM fct_job_gpu_hour f WHERE f.hour_ts >= ? AND f.hour_ts < ? GROUP BY 1",
        [o.window.start, o.window.end]).fetchall()}
    cpu = {row[0]: row[1:] for row in con.execute(
        "SELECT c.cluster, count(DISTINCT (c.hostname, c.socket)), sum(c.energy_j),"
        " coalesce(sum(c.energy_j) FILTER (WHERE c.job_id IS NOT NULL), 0),"
        " coalesce(sum(c.energy_j) FILTER (WHERE c.job_id IS NULL), 0),"
        " sum(c.energy_j * c.intensity_g_per_kwh) / 3600000.0, sum(c.emissions_g), max(c.pue),"
        " any_value(c.region), any_value(c.zone)"
        " FROM fct_job_cpu_hour c WHERE c.hour_ts >= ? AND c.hour_ts < ? GROUP BY 1",
        [o.window.start, o.window.end]).fetchall()}
    meta = {row[0]: row[1:] for row in con.execute("SELECT cluster, provider FROM clusters").fetchall()}
    out = []
    zero = (0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, None)
    for cluster in sorted(set(gpu) | set(cpu)):
        gpus, e, job_e, idle_e, g_nopue, g, pue, region, zone = gpu.get(cluster, zero)
        sockets, ce, cjob_e, cidle_e, cg_nopue, cg, cpue, cregion, czone = cpu.get(cluster, zero)
        provider = (meta.get(cluster) or ("onprem",))[0] or "onprem"
        out.append(ClusterRow(cluster=cluster, provider=provider, region=region or cregion or "",
                              zone=zone if zone is not None else czone,
                              pue=pue if pue is not None else (cpue or 1.0), gpus=int(gpus), energy_kwh=e / 3.6e6,
                              job_energy_kwh=job_e / 3.6e6, idle_energy_kwh=idle_e / 3.6e6,
                              idle_share=_fraction(idle_e, e), cpu_sockets=int(sockets), cpu_energy_kwh=ce / 3.6e6,
                              cpu_job_energy_kwh=cjob_e / 3.6e6, cpu_idle_energy_kwh=cidle_e / 3.6e6,
                              cpu_idle_share=_fraction(cidle_e, ce),
                              intensity_g_per_kwh=_share(g_nopue + cg_nopue, (e + ce) / 3.6e6),
                              emissions_kg=(g + cg) / 1000.0))
    return tuple(out)


def finite(report: Report | Mapping[str, Any]) -> bool:
    """True when no number in the report is NaN or infinite (checked before anything is written)."""
    def ok(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, Mapping):
            return all(ok(x) for x in v.values())
        if isinstance(v, list | tuple):
            return all(ok(x) for x in v)
        return True
    return ok(report.to_dict() if isinstance(report, Report) else report)


__all__ = ["ReportOptions", "Sums", "build_report", "cpu_name", "embodied_rate", "finite"]
