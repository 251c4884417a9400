"""What a report covers: its options (window, project, phases, layers, idle policy), the checks that refuse an
unknown project or phase, the embodied rates, and the scope itself, the temp table rpt_rows (rpt_scope.sql) that
every figure of the report sums over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from .. import hardware
from ..db import run_sql
from ..errors import InputError
from ..estimate import ManualPhase
from ..records import PHASES
from ..settings import Settings
from ..sources.jobs.common import suggest
from ..timeutil import iso
from .names import clean
from .query import inline, one, rows
from .types import EmbodiedRate
from .window import Window


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
    time_shift_slack_hours: int = 24
    generated_at: datetime | None = None
    scope2_basis: str = "location"       # the headline's Scope 2 method: location | market
    # whether the store has node (BMC) data in the window: then the node layer is listed, selected or not (set by
    # compute.build_report, not by the caller)
    node_data: bool = False

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

    @property
    def inc_node(self) -> bool:
        """The node layer is selected and there is node data: then the idle share covers node idle and the PUE
        overhead the node residual. Without node data a selected node layer is no layer at all, so a report of a
        site without BMC power reads as before whatever its layers say (`--layers all` included)."""
        return "node" in self.layers and self.node_data


def ts(x: Any) -> datetime:
    """A timestamp from DuckDB, as an aware UTC datetime."""
    return x if x.tzinfo is not None else x.replace(tzinfo=UTC)


def title(o: ReportOptions) -> str:
    when = o.window.label or f"{iso(o.window.start)} .. {iso(o.window.end)}"
    scope = f"project {o.project}" if o.project else "all projects"
    if o.phases:
        scope += f" ({', '.join(o.phases)})"
    return f"Carbon report: {scope}, {when}"


# -- embodied rates --------------------------------------------------------------------------------------

def rates(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> list[EmbodiedRate]:
    """Embodied kgCO2eq per GPU-hour for each (cluster, GPU model) in the window, with where the figure came from,
    also written to the temp table rpt_rates that rpt_scope.sql joins."""
    pairs = rows(con, "rpt_rate_pairs", {"start": o.window.previous().start, "end": o.window.end})
    out = [embodied_rate(settings, p["cluster"], p["gpu_model"], o) for p in pairs]
    run_sql(con, "rpt_rates")
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


# -- the scope -------------------------------------------------------------------------------------------

def build_scope(con: duckdb.DuckDBPyConnection, o: ReportOptions, w: Window) -> None:
    """(Re)create rpt_rows: the rows of the project's (or every project's) jobs in window `w`."""
    run_sql(con, "macros")              # the model's rules the report's queries share (emissions_g, exact_sum)
    run_sql(con, "rpt_scope", {"start": w.start, "end": w.end, "project": o.project, "phases": list(o.phases),
                               "pro_rata": o.idle_policy == "pro-rata"})
    run_sql(con, "rpt_layer_sums")      # the one list of layer sums the rpt_sums*.sql queries group
    run_sql(con, "rpt_telemetry")       # gaps, stepbacks and RAPL hours of open and closed months alike


def check_scope(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> None:
    """Unknown project or phase, or nothing to report: a clear error, never a report of zeros."""
    if o.project is not None:
        known = [r["project"] for r in rows(con, "rpt_known_projects")]
        known += sorted({e.project for e in o.estimates} - set(known))
        if o.project not in known:
            # the hint lists the ledger's names on the user's terminal: cleaned (the asked-for name is repr'd)
            raise InputError("--project", f"unknown project {o.project!r}{suggest(o.project, known)}",
                             "known projects: " + (", ".join(clean(k) for k in known[:20])
                                                   or "none (import a job ledger first)"))
    for phase in o.phases:
        phases = {r["phase"] for r in inline(con, "SELECT DISTINCT phase FROM jobs")} | set(PHASES)
        if phase not in phases:
            raise InputError("--phase", f"unknown phase {phase!r}{suggest(phase, sorted(phases))}",
                             f"phases: {', '.join(clean(p) for p in sorted(phases))}")


def span(con: duckdb.DuckDBPyConnection, project: str | None) -> str:
    """Where the stored job energy is, for the error of an empty report."""
    row = one(con, "rpt_span", {"project": project})
    if row["first_hour"] is None:
        return "no measured job energy is stored" + (f" for project {project!r}" if project else "")
    return f"stored results span {iso(ts(row['first_hour']))} .. {iso(ts(row['last_hour']) + timedelta(hours=1))}"


def estimate_in_scope(e: ManualPhase, o: ReportOptions) -> bool:
    if o.project is not None and e.project != o.project:
        return False
    if o.phases and e.phase not in o.phases:
        return False
    if e.start is None and e.end is None:
        return o.kind == "project"        # undated history belongs to its project's report, not to a month
    start = e.start or datetime.min.replace(tzinfo=UTC)
    end = e.end or datetime.max.replace(tzinfo=UTC)
    return start < o.window.end and end > o.window.start
