"""Turn fct_job_gpu_hour into a report: one dict (the JSON contract in docs/reports.md) that every format renders.

Every number here is a sum over rows of the scope (rpt_scope.sql) or a ratio of two such sums, so each one
traces back to (job, GPU, hour) rows and from there to samples, ledger rows and intensity hours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from .window import Window

SCHEMA_VERSION = 1
LAYER_TITLES = {
    "gpu": "GPU energy of the jobs (measured)",
    "idle": "share of idle and unallocated GPU energy",
    "pue": "data-centre overhead (PUE)",
    "embodied": "embodied emissions of the GPUs (amortised)",
}
PROVIDER_NAMES = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure", "onprem": "on-premises"}
COUNTER_QUALITIES = ("counter", "counter_reset", "first_sample")
INTENSITY_QUALITIES = ("hourly", "nearest_hour", "monthly_mean", "annual_default", "world_default", "declared")
# thresholds of the data-quality banner (docs/reports.md)
MIN_COUNTER_SHARE = 0.9
MIN_HOURLY_SHARE = 0.9
POOR_SHARE = 0.8

_SUMS = ("sum(energy_j), sum(gpu_g), sum(idle_j), sum(idle_g), sum(pue_gpu_j), sum(pue_gpu_g), sum(pue_idle_j),"
         " sum(pue_idle_g), sum(emb_g), sum(gpu_seconds)")


@dataclass(frozen=True)
class ReportOptions:
    window: Window
    project: str | None = None
    phases: tuple[str, ...] = ()
    layers: tuple[str, ...] = ("gpu", "idle", "pue")
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


@dataclass
class Sums:
    """Joules and grams of every layer over some rows (see rpt_scope.sql for each column)."""

    energy_j: float = 0.0
    gpu_g: float = 0.0
    idle_j: float = 0.0
    idle_g: float = 0.0
    pue_gpu_j: float = 0.0
    pue_gpu_g: float = 0.0
    pue_idle_j: float = 0.0
    pue_idle_g: float = 0.0
    emb_g: float = 0.0
    gpu_s: float = 0.0

    @classmethod
    def of(cls, row: Sequence[Any]) -> Sums:
        return cls(*(float(v or 0.0) for v in row))

    def add(self, other: Sums) -> Sums:
        return Sums(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[float, ...]:
        return (self.energy_j, self.gpu_g, self.idle_j, self.idle_g, self.pue_gpu_j, self.pue_gpu_g,
                self.pue_idle_j, self.pue_idle_g, self.emb_g, self.gpu_s)

    def layers(self, o: ReportOptions) -> dict[str, dict[str, float | None]]:
        k = 1.0 if o.inc_idle else 0.0
        return {
            "gpu": {"energy_kwh": self.energy_j / 3.6e6, "emissions_kg": self.gpu_g / 1000.0},
            "idle": {"energy_kwh": self.idle_j / 3.6e6, "emissions_kg": self.idle_g / 1000.0},
            "pue": {"energy_kwh": (self.pue_gpu_j + k * self.pue_idle_j) / 3.6e6,
                    "emissions_kg": (self.pue_gpu_g + k * self.pue_idle_g) / 1000.0},
            "embodied": {"energy_kwh": None, "emissions_kg": self.emb_g / 1000.0, "gpu_hours": self.gpu_s / 3600.0},
        }

    def headline_kg(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(layers[name]["emissions_kg"] or 0.0) for name in _included(o))

    def operational_g(self, o: ReportOptions) -> float:
        """Headline without embodied: what moving the work to another region changes."""
        k = 1.0 if o.inc_idle else 0.0
        p = 1.0 if "pue" in o.layers else 0.0
        return self.gpu_g + k * self.idle_g + p * (self.pue_gpu_g + k * self.pue_idle_g)

    def facility_kwh(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(layers[n]["energy_kwh"] or 0.0) for n in ("gpu", "idle", "pue") if n in _included(o))


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

def _rates(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> list[dict[str, Any]]:
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
                        [[r["cluster"], r["model"], r["kg_per_gpu_hour"]] for r in out])
    return out


def embodied_rate(settings: Settings, cluster: str | None, model: str, o: ReportOptions) -> dict[str, Any]:
    spec = settings.config.cluster(cluster).hardware_for(model) if cluster else None
    if spec is not None and spec.embodied_kgco2eq is not None:
        per_gpu, source = spec.embodied_kgco2eq, f"config clusters.{cluster}.hardware[{model!r}]"
    else:
        per_gpu, source = hardware.embodied_kgco2eq_per_gpu(hardware.lookup(model) if model else None)
    rate = per_gpu / (o.lifetime_years * hardware.HOURS_PER_YEAR * o.utilisation)
    return {"cluster": cluster, "model": model or "unknown model", "kgco2eq_per_gpu": per_gpu,
            "lifetime_years": o.lifetime_years, "utilisation": o.utilisation, "kg_per_gpu_hour": rate,
            "source": source}


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
            raise InputError("--project", f"unknown project {o.project!r}{suggest(o.project, known)}",
                             "known projects: " + (", ".join(known[:20]) or "none (import a job ledger first)"))
    for phase in o.phases:
        phases = {r[0] for r in con.execute("SELECT DISTINCT phase FROM jobs").fetchall()} | set(PHASES)
        if phase not in phases:
            raise InputError("--phase", f"unknown phase {phase!r}{suggest(phase, sorted(phases))}",
                             f"phases: {', '.join(sorted(phases))}")


def _span(con: duckdb.DuckDBPyConnection, project: str | None) -> str:
    row = con.execute("SELECT min(hour_ts), max(hour_ts) FROM fct_job_gpu_hour"
                      " WHERE job_id IS NOT NULL AND (? IS NULL OR project = ?)", [project, project]).fetchall()[0]
    if row[0] is None:
        return "no measured job energy is stored" + (f" for project {project!r}" if project else "")
    return f"stored results span {iso(_ts(row[0]))} .. {iso(_ts(row[1]) + timedelta(hours=1))}"


# -- the report ----------------------------------------------------------------------------------------

def build_report(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> dict[str, Any]:
    stale = con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE gpu_seconds IS NULL").fetchall()[0][0]
    if stale:
        raise InputError("database", "its results were built by an older wattprint (no GPU-seconds)",
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

    phases = _phase_blocks(con, settings, o, estimates)
    total = Sums()
    for p in phases:
        total = total.add(p["_sums"])
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": o.kind,
        "title": _title(o),
        "project": o.project,
        "generated_at": iso((o.generated_at or datetime.now(UTC)).replace(microsecond=0)),
        "window": o.window.as_dict(),
        "method": _method(o, rates),
        "phases": [{k: v for k, v in p.items() if not k.startswith("_")} for p in phases],
        "total": {
            "energy_kwh": total.energy_j / 3.6e6,
            "emissions_kg": total.headline_kg(o),
            "gpu_hours": total.gpu_s / 3600.0,
            "intensity_g_per_kwh": _share(total.gpu_g, total.energy_j / 3.6e6),
            "facility_energy_kwh": total.facility_kwh(o),
            "hardware": _hardware_total(con, phases),
        },
        "layers": _layers(total, o),
        "equivalences": _equivalences(total.headline_kg(o)),
        "data_quality": _quality(con, o, estimates, total),
        "whatif": _whatif(con, settings, o, total, bool(estimates)),
        "daily": _daily(con, o, estimates),
        "hourly": _hourly(con),
    }
    if o.kind == "fleet":
        report.update(_fleet(con, o, total, previous or {}))
    return report


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
                  estimates: list[ManualPhase]) -> list[dict[str, Any]]:
    sums = {r[0]: Sums.of(r[1:]) for r in con.execute(f"SELECT phase, {_SUMS} FROM rpt_rows GROUP BY 1").fetchall()}
    jobs = dict(con.execute("SELECT phase, count(DISTINCT (cluster, job_id)) FROM rpt_rows GROUP BY 1").fetchall())
    hw: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for phase, model, gpus, secs in con.execute(
            "SELECT phase, gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)), sum(gpu_seconds)"
            " FROM rpt_rows GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2").fetchall():
        hw[phase].append({"model": model or "unknown model", "gpus": int(gpus), "gpu_hours": float(secs) / 3600})
    cl: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for phase, cluster, provider, region, zone, pue, pue_known, e, g in con.execute(
            "SELECT r.phase, r.cluster, coalesce(c.provider, 'onprem'), coalesce(r.region, ''), r.zone, max(r.pue),"
            " coalesce(bool_and(c.pue_known), false), sum(r.energy_j), sum(r.gpu_g)"
            " FROM rpt_rows r LEFT JOIN clusters c USING (cluster) GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 8 DESC, 2"
    ).fetchall():
        cl[phase].append({"cluster": cluster, "provider": provider, "region": region, "zone": zone, "pue": pue,
                          "pue_known": bool(pue_known), "energy_kwh": e / 3.6e6,
                          "intensity_g_per_kwh": _share(g, e / 3.6e6)})
    wall = _wall_clock(con, o.window)

    blocks: list[dict[str, Any]] = []
    for phase in sorted(sums, key=_phase_order):
        s = sums[phase]
        blocks.append(_block(o, phase, "measured", s, hw[phase], cl[phase], wall.get(phase, 0.0),
                             int(jobs.get(phase, 0))))
    for key, group in _group_estimates(estimates).items():
        s, hw_e, cl_e, hours = _estimate_sums(settings, o, group)
        blocks.append(_block(o, key[0], "estimated (TDP)", s, hw_e, cl_e, hours, 0, group))
    blocks.sort(key=lambda b: (_phase_order(b["phase"]), b["label"] != "measured"))
    return blocks


def _block(o: ReportOptions, phase: str, label: str, s: Sums, hw: list[dict[str, Any]],
           clusters: list[dict[str, Any]], wall_h: float | None, jobs: int,
           estimates: Sequence[ManualPhase] = ()) -> dict[str, Any]:
    energy_kwh = s.energy_j / 3.6e6
    title = f"{o.project} {phase}" if o.project else phase
    if estimates and estimates[0].name:
        title = f"{o.project or estimates[0].project} {estimates[0].name}"
    return {
        "phase": phase,
        "label": label,
        "title": title,
        "hardware": hw,
        "hardware_text": ", ".join(f"{h['gpus']:,} {h['model']} GPUs" if h["gpus"] else f"{h['model']} GPUs"
                                   for h in hw) or "no GPU measured",
        "gpu_hours": s.gpu_s / 3600.0,
        "wall_clock_hours": wall_h,
        "jobs": jobs,
        "clusters": clusters,
        "provider_text": "; ".join(
            f"{PROVIDER_NAMES.get(c['provider'], c['provider'])} (cluster {c['cluster']})" if c["cluster"]
            else PROVIDER_NAMES.get(c["provider"], c["provider"]) for c in clusters),
        "region_text": "; ".join(_region_text(c) for c in clusters),
        "energy_kwh": energy_kwh,
        "intensity_g_per_kwh": _share(s.gpu_g, energy_kwh),
        "emissions_kg": s.headline_kg(o),
        "layers": s.layers(o),
        "sources": [e.origin for e in estimates],
        "_sums": s,
    }


def _hardware_total(con: duckdb.DuckDBPyConnection, phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct measured GPUs per model over the whole scope (a GPU used by two phases counts once), then
    the estimated phases' declared GPUs."""
    out = [{"model": m or "unknown model", "gpus": int(n), "measured": True} for m, n in con.execute(
        "SELECT gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)) FROM rpt_rows GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()]
    for p in phases:
        if p["label"] != "measured":
            out += [{"model": h["model"], "gpus": h["gpus"], "measured": False} for h in p["hardware"]]
    return out


def _region_text(c: Mapping[str, Any]) -> str:
    where = c["region"] or c["cluster"] or "unknown region"
    zone = f"zone {c['zone']}, " if c.get("zone") else "zone unknown, "
    return f"{where} ({zone}{c['intensity_g_per_kwh']:,.0f} gCO2eq/kWh)"


def _wall_clock(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, float]:
    """Hours during which at least one job of the phase ran (ledger start/end, else the hours with energy)."""
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for phase, first, last, start, end in con.execute(
            "SELECT r.phase, min(r.hour_ts), max(r.hour_ts), any_value(j.start_ts), any_value(j.end_ts)"
            " FROM rpt_rows r LEFT JOIN jobs j USING (cluster, job_id) GROUP BY r.phase, r.cluster, r.job_id"
    ).fetchall():
        s = max(_ts(start) if start is not None else _ts(first), w.start)
        e = min(_ts(end) if end is not None else _ts(last) + timedelta(hours=1), w.end)
        if e > s:
            spans[phase].append((s, e))
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
                   ) -> tuple[Sums, list[dict[str, Any]], list[dict[str, Any]], float | None]:
    s = Sums()
    hw: dict[str, dict[str, Any]] = {}
    clusters: list[dict[str, Any]] = []
    hours: float | None = 0.0
    for e in group:
        r = e.estimate
        gpu_j = r.gpu_hours * r.tdp_watts * 3600.0
        gpu_g = gpu_j / 3.6e6 * r.intensity_g_per_kwh
        rate = embodied_rate(settings, e.cluster, r.gpu_model or "", o)["kg_per_gpu_hour"]
        s = s.add(Sums(energy_j=gpu_j, gpu_g=gpu_g, pue_gpu_j=(r.pue - 1) * gpu_j, pue_gpu_g=(r.pue - 1) * gpu_g,
                       emb_g=r.gpu_hours * rate * 1000.0, gpu_s=r.gpu_hours * 3600.0))
        model = r.gpu_model or "unknown model"
        entry = hw.setdefault(model, {"model": model, "gpus": 0, "gpu_hours": 0.0})
        entry["gpus"] += int(r.gpus or 0)
        entry["gpu_hours"] += r.gpu_hours
        hours = None if hours is None or r.hours is None else max(hours, r.hours)
        clusters.append({"cluster": e.cluster or "", "provider": e.provider or "onprem", "region": e.region or "",
                         "zone": r.region, "pue": r.pue, "pue_known": True, "energy_kwh": gpu_j / 3.6e6,
                         "intensity_g_per_kwh": r.intensity_g_per_kwh})
    return s, list(hw.values()), clusters, hours


# -- sections ------------------------------------------------------------------------------------------

def _method(o: ReportOptions, rates: list[dict[str, Any]]) -> dict[str, Any]:
    inc = _included(o)
    idle = ("each cluster-hour's idle and unallocated GPU energy is shared among the jobs that ran in it, "
            "pro rata by GPU-hours" if o.idle_policy == "pro-rata"
            else "idle and unallocated GPU energy is reported per cluster, not charged to projects")
    statement = (
        "Headline = " + " + ".join(LAYER_TITLES[n] for n in inc) + ". "
        "GPU energy comes from the GPUs' hardware energy counters (power gauges integrated only where no counter "
        "exists) and is priced hour by hour with the grid carbon intensity of the cluster's zone; " + idle + "; "
        "the data-centre overhead is (PUE - 1) x that energy; embodied emissions are each GPU model's "
        f"manufacturing footprint over {o.lifetime_years:g} years at {o.utilisation:.0%} utilisation, "
        "per GPU-hour." + ("" if "embodied" in inc else " Embodied emissions are shown but not in the headline.")
    )
    return {"layers_selected": list(inc), "idle_policy": o.idle_policy, "statement": statement,
            "embodied": {"lifetime_years": o.lifetime_years, "utilisation": o.utilisation,
                         "default_kgco2eq_per_gpu": hardware.DEFAULT_EMBODIED_KGCO2EQ_PER_GPU,
                         "source": hardware.EMBODIED_DEFAULT_SOURCE, "rates": rates}}


def _layers(total: Sums, o: ReportOptions) -> list[dict[str, Any]]:
    values = total.layers(o)
    inc = _included(o)
    methods = {
        "gpu": "sum over the jobs' (job, GPU, hour) rows of energy x that hour's intensity",
        "idle": ("pro rata by GPU-hours within each cluster-hour" if o.idle_policy == "pro-rata"
                 else "reported separately per cluster (idle policy 'separate'): not charged"),
        "pue": "(PUE - 1) x the GPU energy in the headline, at the same hours' intensity",
        "embodied": "GPU-hours x per-GPU kgCO2eq / (lifetime hours x utilisation)",
    }
    return [{"layer": n, "title": LAYER_TITLES[n], "energy_kwh": values[n]["energy_kwh"],
             "emissions_kg": values[n]["emissions_kg"], "included": n in inc, "method": methods[n]} for n in LAYERS]


def _equivalences(kg: float) -> dict[str, Any]:
    e = equivalences.equivalents(kg)
    return {"miles_driven": e["miles_driven"], "homes_energy_years": e["homes_energy_years"],
            "kg_per_mile": e["kg_per_mile"], "kg_per_home_year": e["kg_per_home_year"],
            "source": f"{e['edition']}, {e['date']}, {e['url']}",
            "edition": e["edition"], "sentence": equivalences.sentence(kg)}


def _quality(con: duckdb.DuckDBPyConnection, o: ReportOptions, estimates: list[ManualPhase],
             total: Sums) -> dict[str, Any]:
    est_j = sum(e.estimate.gpu_hours * e.estimate.tdp_watts * 3600.0 for e in estimates)
    whole = total.energy_j
    by_energy = dict(con.execute("SELECT energy_quality, sum(energy_j) FROM rpt_rows GROUP BY 1").fetchall())
    energy = {
        "counter": _fraction(sum(by_energy.get(q, 0.0) for q in COUNTER_QUALITIES), whole),
        "counter_across_gap": _fraction(by_energy.get("gap", 0.0), whole),
        "power_integrated": _fraction(by_energy.get("power_integrated", 0.0), whole),
        "estimated": _fraction(est_j, whole),
    }
    by_int = dict(con.execute("SELECT intensity_quality, sum(energy_j) FROM rpt_rows GROUP BY 1").fetchall())
    by_int["declared"] = est_j
    intensity = {q: _fraction(by_int.get(q, 0.0), whole) for q in INTENSITY_QUALITIES}
    gaps = con.execute(
        "SELECT count(*), coalesce(sum(epoch(least(g.end_ts, ?::TIMESTAMPTZ)) - epoch(greatest(g.start_ts,"
        " ?::TIMESTAMPTZ))), 0) / 3600.0 FROM energy_gaps g JOIN streams s USING (stream_id)"
        " WHERE g.start_ts < ? AND g.end_ts > ? AND EXISTS (SELECT 1 FROM rpt_rows r WHERE r.cluster = s.cluster"
        " AND r.hostname = s.hostname AND r.gpu = s.gpu AND r.uuid = s.uuid AND r.hour_ts < g.end_ts"
        " AND r.hour_ts + INTERVAL 1 HOUR > g.start_ts)",
        [o.window.end, o.window.start, o.window.end, o.window.start]).fetchall()[0]
    silent = con.execute(
        "SELECT count(*) FROM jobs j WHERE (? IS NULL OR j.project = ?)"
        " AND (len(CAST(? AS VARCHAR[])) = 0 OR list_contains(CAST(? AS VARCHAR[]), j.phase))"
        " AND j.start_ts < ? AND coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) > ?"
        " AND NOT EXISTS (SELECT 1 FROM rpt_rows r WHERE r.cluster = j.cluster AND r.job_id = j.job_id)",
        [o.project, o.project, list(o.phases), list(o.phases), o.window.end, o.window.start]).fetchall()[0][0]
    unknown_pue = [r[0] for r in con.execute(
        "SELECT DISTINCT r.cluster FROM rpt_rows r LEFT JOIN clusters c USING (cluster)"
        " WHERE NOT coalesce(c.pue_known, false) ORDER BY 1").fetchall()]
    measured = energy["counter"] + energy["counter_across_gap"] + energy["power_integrated"]
    counter_share = _fraction(energy["counter"] + energy["counter_across_gap"], measured)
    hourly_share = _fraction(intensity["hourly"] + intensity["nearest_hour"], measured)
    warnings = []
    if measured > 0 and counter_share < MIN_COUNTER_SHARE:
        warnings.append(f"only {counter_share:.1%} of the measured GPU energy comes from hardware energy counters; "
                        "the rest is integrated from power gauges, which can miss 5-30 % on bursty jobs")
    if measured > 0 and hourly_share < MIN_HOURLY_SHARE:
        fallbacks = ", ".join(f"{q.replace('_', ' ')} {intensity[q]:.1%}" for q in
                              ("monthly_mean", "annual_default", "world_default") if intensity[q] > 0)
        warnings.append(f"only {hourly_share:.1%} of the measured energy is priced with hourly grid intensity "
                        f"(fallbacks: {fallbacks}); import hourly intensity for these zones")
    if intensity["world_default"] > 0:
        warnings.append(f"{intensity['world_default']:.1%} of the energy is priced at the world-average intensity "
                        "because its cluster has no known zone; set clusters.<name>.zone in the config")
    if energy["estimated"] > 0:
        warnings.append(f"{energy['estimated']:.1%} of the energy is estimated from TDP, not measured")
    if gaps[0]:
        warnings.append(f"{gaps[0]} telemetry gaps ({gaps[1]:,.1f} GPU-hours) on this report's GPUs: energy across "
                        "a counter gap is kept, power-gauge gaps are not filled")
    if silent:
        warnings.append(f"{silent} jobs of the ledger ran in this window but have no measured energy")
    if unknown_pue and "pue" in o.layers:
        warnings.append(f"PUE unknown for cluster {', '.join(unknown_pue)}: 1.0 applied; set clusters.<name>.pue")
    poor = measured > 0 and (counter_share < POOR_SHARE or hourly_share < POOR_SHARE
                             or intensity["world_default"] > 0 or silent > 0)
    return {"energy": energy, "intensity": intensity, "gaps": {"count": int(gaps[0]), "hours": float(gaps[1])},
            "jobs_without_telemetry": int(silent), "clusters_without_pue": unknown_pue, "warnings": warnings,
            "poor": bool(poor)}


def _whatif(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions, total: Sums,
            has_estimates: bool) -> dict[str, Any]:
    """The scope's hourly energy priced in each configured zone (the same fallback chain as the model)."""
    candidates = con.execute(
        "SELECT cluster, provider, coalesce(region, ''), zone, pue FROM clusters WHERE zone IS NOT NULL ORDER BY 1"
    ).fetchall()
    k = 1.0 if o.inc_idle else 0.0
    measured = con.execute("SELECT " + _SUMS + " FROM rpt_rows").fetchall()[0]
    actual_g = Sums.of(measured).operational_g(o)
    note = ("the measured hours' GPU energy" + (" and idle share" if o.inc_idle else "") +
            (", times each cluster's PUE," if "pue" in o.layers else "") +
            " priced with each zone's intensity at the same hours; embodied emissions do not move with the work")
    if has_estimates:
        note += "; estimated phases have no hourly profile and are left out"
    out: dict[str, Any] = {"actual_kg": actual_g / 1000.0, "options": [], "best": None, "saving_kg": 0.0,
                           "saving_pct": 0.0, "note": note}
    if not candidates or Sums.of(measured).energy_j <= 0:
        out["note"] += "; no cluster with a zone is configured" if not candidates else ""
        return out
    con.execute("CREATE OR REPLACE TEMP TABLE rpt_profile AS SELECT epoch(hour_ts)::BIGINT // 3600 AS hour_idx,"
                " sum(energy_j + ? * idle_j) AS energy_j FROM rpt_rows GROUP BY 1", [k])
    zones = sorted({c[3] for c in candidates})
    con.execute("CREATE OR REPLACE TEMP TABLE intensity_needed AS SELECT z.zone, p.hour_idx FROM rpt_profile p"
                " CROSS JOIN (SELECT unnest(CAST(? AS VARCHAR[])) AS zone) z", [zones])
    b = settings.build_settings()
    run_sql(con, "int_intensity_resolved", {"bound_h": b.nearest_hour_bound_h, "world_g_per_kwh": b.world_g_per_kwh})
    priced = {z: (g, e, h) for z, g, e, h in con.execute(
        "SELECT r.zone, sum(p.energy_j * r.g_per_kwh) / 3600000.0, sum(p.energy_j),"
        " coalesce(sum(p.energy_j) FILTER (WHERE r.quality = 'hourly'), 0)"
        " FROM rpt_profile p JOIN intensity_resolved r USING (hour_idx) GROUP BY 1").fetchall()}
    for cluster, provider, region, zone, pue in candidates:
        g, e, h = priced.get(zone, (0.0, 0.0, 0.0))
        factor = pue if "pue" in o.layers else 1.0
        kg = g * factor / 1000.0
        out["options"].append({"cluster": cluster, "provider": provider, "region": region, "zone": zone,
                               "pue": pue, "emissions_kg": kg, "intensity_g_per_kwh": _share(g, e / 3.6e6),
                               "hourly_share": _fraction(h, e), "delta_kg": kg - out["actual_kg"]})
    best = min(out["options"], key=lambda x: x["emissions_kg"])
    out["best"] = best
    out["saving_kg"] = max(0.0, out["actual_kg"] - best["emissions_kg"])
    out["saving_pct"] = _fraction(out["saving_kg"], out["actual_kg"])
    for t in ("rpt_profile", "intensity_needed", "intensity_resolved"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return out


def _daily(con: duckdb.DuckDBPyConnection, o: ReportOptions, estimates: list[ManualPhase]) -> list[dict[str, Any]]:
    rows = con.execute(f"SELECT epoch(hour_ts)::BIGINT // 86400, {_SUMS} FROM rpt_rows GROUP BY 1 ORDER BY 1"
                       ).fetchall()
    out = []
    for day, *rest in rows:
        s = Sums.of(rest)
        out.append({"date": (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(day))).date().isoformat(),
                    "energy_kwh": s.energy_j / 3.6e6, "emissions_kg": s.headline_kg(o)})
    return out


def _hourly(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT hour_ts, cluster, coalesce(zone, ''), sum(energy_j) / 3600.0,"
        " CASE WHEN sum(energy_j) > 0 THEN sum(gpu_g) / sum(energy_j) * 3600000.0 ELSE max(intensity_g_per_kwh) END"
        " FROM rpt_rows GROUP BY 1, 2, 3 ORDER BY 1, 2").fetchall()
    return [{"hour": iso(_ts(h)), "cluster": c, "zone": z, "power_w": float(p), "intensity_g_per_kwh": float(i)}
            for h, c, z, p, i in rows]


# -- fleet (monthly) -----------------------------------------------------------------------------------

def _previous(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> dict[str, Sums]:
    """Per project, the sums of the window before (run before this window's scope is built)."""
    _scope(con, o, o.window.previous())
    return {(r[0] or "(not in the job ledger)"): Sums.of(r[1:]) for r in con.execute(
        f"SELECT coalesce(project, ''), {_SUMS} FROM rpt_rows GROUP BY 1").fetchall()}


def _fleet(con: duckdb.DuckDBPyConnection, o: ReportOptions, total: Sums, prev: dict[str, Sums]) -> dict[str, Any]:
    projects: dict[str, dict[str, Any]] = {}
    for project, phase, *rest in con.execute(
            f"SELECT coalesce(project, ''), phase, {_SUMS} FROM rpt_rows GROUP BY 1, 2 ORDER BY 1, 2").fetchall():
        s = Sums.of(rest)
        name = project or "(not in the job ledger)"
        p = projects.setdefault(name, {"project": name, "_s": Sums(), "phases": []})
        p["_s"] = p["_s"].add(s)
        p["phases"].append({"phase": phase, "energy_kwh": s.energy_j / 3.6e6, "emissions_kg": s.headline_kg(o),
                            "gpu_hours": s.gpu_s / 3600.0})
    for p in projects.values():
        p["phases"].sort(key=lambda x: _phase_order(x["phase"]))

    prev_w = o.window.previous()
    prev_total = Sums()
    for s in prev.values():
        prev_total = prev_total.add(s)

    plist = []
    for name, p in sorted(projects.items(), key=lambda kv: -kv[1]["_s"].headline_kg(o)):
        s = p.pop("_s")
        before = prev[name].headline_kg(o) if name in prev else None
        now = s.headline_kg(o)
        plist.append({"project": name, "energy_kwh": s.energy_j / 3.6e6, "emissions_kg": now,
                      "gpu_hours": s.gpu_s / 3600.0, "previous_emissions_kg": before,
                      "change_pct": (now - before) / before if before else None, "phases": p["phases"]})

    clusters = []
    for row in con.execute(
            "SELECT f.cluster, coalesce(c.provider, 'onprem'), coalesce(f.region, ''), f.zone, max(f.pue),"
            " count(DISTINCT (f.hostname, f.gpu, f.uuid)), sum(f.energy_j),"
            " coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NOT NULL), 0),"
            " coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NULL), 0),"
            " sum(f.energy_j * f.intensity_g_per_kwh) / 3600000.0, sum(f.emissions_g)"
            " FROM fct_job_gpu_hour f LEFT JOIN clusters c USING (cluster)"
            " WHERE f.hour_ts >= ? AND f.hour_ts < ? GROUP BY 1, 2, 3, 4 ORDER BY 1",
            [o.window.start, o.window.end]).fetchall():
        cluster, provider, region, zone, pue, gpus, e, job_e, idle_e, g_nopue, g = row
        clusters.append({"cluster": cluster, "provider": provider, "region": region, "zone": zone, "pue": pue,
                         "gpus": int(gpus), "energy_kwh": e / 3.6e6, "job_energy_kwh": job_e / 3.6e6,
                         "idle_energy_kwh": idle_e / 3.6e6, "idle_share": _fraction(idle_e, e),
                         "intensity_g_per_kwh": _share(g_nopue, e / 3.6e6), "emissions_kg": g / 1000.0})

    inc_idle = 1.0 if o.inc_idle else 0.0
    inc_pue = 1.0 if "pue" in o.layers else 0.0
    inc_emb = 1.0 if "embodied" in o.layers else 0.0
    top = con.execute(
        "SELECT cluster, job_id, coalesce(project, ''), phase, coalesce(any_value(user_name), ''),"
        " sum(gpu_seconds) / 3600.0, sum(energy_j) / 3600000.0,"
        " sum(gpu_g + ? * idle_g + ? * (pue_gpu_g + ? * pue_idle_g) + ? * emb_g) / 1000.0 AS kg"
        " FROM rpt_rows GROUP BY 1, 2, 3, 4 ORDER BY kg DESC, 1, 2 LIMIT ?",
        [inc_idle, inc_pue, inc_idle, inc_emb, o.top_jobs]).fetchall()
    top_jobs = [{"cluster": c, "job_id": j, "project": p or "(not in the job ledger)", "phase": ph, "user": u,
                 "gpu_hours": gh, "energy_kwh": e, "emissions_kg": kg} for c, j, p, ph, u, gh, e, kg in top]

    fleet_j, unapportioned_j, not_in_ledger_j = con.execute(
        "WITH f AS (SELECT * FROM fct_job_gpu_hour WHERE hour_ts >= ? AND hour_ts < ?),"
        " ch AS (SELECT cluster, hour_ts, coalesce(sum(gpu_seconds) FILTER (WHERE job_id IS NOT NULL), 0) AS job_s"
        "        FROM f GROUP BY ALL)"
        " SELECT coalesce(sum(energy_j), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NULL AND (ch.job_s = 0 OR NOT ?)), 0),"
        " coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NOT NULL AND NOT f.in_ledger), 0)"
        " FROM f JOIN ch USING (cluster, hour_ts)",
        [o.window.start, o.window.end, o.idle_policy == "pro-rata"]).fetchall()[0]
    in_ledger_j = con.execute("SELECT coalesce(sum(energy_j), 0) FROM rpt_rows WHERE in_ledger").fetchall()[0][0]
    return {
        "projects": plist,
        "clusters": clusters,
        "top_jobs": top_jobs,
        "previous": {**prev_w.as_dict(), "energy_kwh": prev_total.energy_j / 3.6e6,
                     "emissions_kg": prev_total.headline_kg(o)} if prev else None,
        "change": {"energy_pct": _share(total.energy_j - prev_total.energy_j, prev_total.energy_j),
                   "emissions_pct": _share(total.headline_kg(o) - prev_total.headline_kg(o),
                                           prev_total.headline_kg(o))} if prev else None,
        "reconciliation": {
            "fleet_energy_kwh": fleet_j / 3.6e6,
            "projects_energy_kwh": in_ledger_j / 3.6e6,
            "not_in_ledger_kwh": not_in_ledger_j / 3.6e6,
            "idle_apportioned_kwh": total.idle_j / 3.6e6,
            "idle_unapportioned_kwh": unapportioned_j / 3.6e6,
            "note": "fleet GPU energy = projects' jobs + jobs not in the ledger + idle apportioned to jobs + idle "
                    "not apportioned (no job ran in that cluster-hour, or the idle policy is 'separate')",
        },
    }


def finite(report: Mapping[str, Any]) -> bool:
    """True when no number in the report is NaN or infinite (checked before anything is written)."""
    def ok(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, Mapping):
            return all(ok(x) for x in v.values())
        if isinstance(v, list | tuple):
            return all(ok(x) for x in v)
        return True
    return ok(report)


__all__ = ["ReportOptions", "Sums", "build_report", "embodied_rate", "finite", "field"]
