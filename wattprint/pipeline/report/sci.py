"""SCI-style intensity per functional unit (GSF SCI, SCI = (E x I + M) per R), in the project report and, per
project, in the all-projects report (`sci`).

For each project, phase and unit name, the emissions of the jobs whose ledger row carries units, over their units.
E x I: their operational emissions as the headline counts them (its layers, location-based: the SCI admits no
market-based instruments); M: their GPUs' embodied emissions, always (the SCI formula has M), whether or not the
headline adds the embodied layer. Jobs without units are in neither the numerator nor R; energy_share says how much
of the phase that leaves out. A row `all` per project and unit name that spans several of its phases. Never a row
across projects: two projects' tokens are two models' tokens, not one functional unit.

The two reports differ only in the energy each share is taken of (`whole`): a project report's phase blocks
(measured and manual), and in the all-projects report each project's phases (measured rows and its manual phases).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import duckdb

from ..estimate import ManualPhase
from ..settings import Settings
from .disclosure import energy_included
from .layers import Sums, fraction, included, share
from .phases import estimate_sums, phase_order
from .query import rows as sql_rows
from .scope import ReportOptions
from .types import NOT_IN_LEDGER, Phase
from .types.disclosure import Sci, SciRow


def sci(con: duckdb.DuckDBPyConnection, blocks: Sequence[tuple[Phase, Sums]], o: ReportOptions) -> Sci:
    """A project report's SCI rows. A phase's energy is every block of it (manual phases carry no units)."""
    whole: dict[tuple[str, str], float] = defaultdict(float)
    for p, s in blocks:
        whole[(o.project or "", p.phase)] += s.facility_kwh(o)
    return _sci(con, whole, o, per_project=False)


def fleet_sci(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions,
              estimates: Sequence[ManualPhase]) -> Sci:
    """The all-projects report's SCI rows, per project: each share of that project's phase (its measured rows and
    its manual phases in the window), as the project's own report would give it."""
    whole: dict[tuple[str, str], float] = defaultdict(float)
    for r in sql_rows(con, "rpt_sums_by_project_phase"):
        whole[(r["project"], r["phase"])] += Sums.of(r).facility_kwh(o)
    for e in estimates:
        whole[(e.project, e.phase)] += estimate_sums(settings, o, e).facility_kwh(o)
    return _sci(con, whole, o, per_project=True)


def _row(project: str | None, phase: str, unit_name: str, s: Sums, units: float, jobs: int, whole_kwh: float,
         o: ReportOptions) -> SciRow:
    operational, embodied = s.operational_g(o), s.emb_g
    g = operational + embodied
    per = share(g, units)
    return SciRow(project=project, phase=phase, unit_name=unit_name, units=units, jobs=jobs,
                  energy_kwh=s.facility_kwh(o), energy_share=fraction(s.facility_kwh(o), whole_kwh),
                  operational_g=operational, embodied_g=embodied, sci_g=g, g_per_unit=per,
                  g_per_thousand_units=per * 1e3, g_per_million_units=per * 1e6)


def _sci(con: duckdb.DuckDBPyConnection, whole: Mapping[tuple[str, str], float], o: ReportOptions, *,
         per_project: bool) -> Sci:
    """Per project (in name order), its phase rows, then its `all` rows per unit name that spans several phases."""
    found = sorted(sql_rows(con, "rpt_sums_by_unit", {"start": o.window.start, "end": o.window.end}),
                   key=lambda r: (r["project"], phase_order(r["phase"]), r["unit_name"]))
    out: list[SciRow] = []
    for project in dict.fromkeys(r["project"] for r in found):
        name = (project or NOT_IN_LEDGER) if per_project else None
        by_name: dict[str, list[tuple[Sums, float, int]]] = defaultdict(list)
        for r in (r for r in found if r["project"] == project):
            s, units, jobs = Sums.of(r), float(r["units"] or 0.0), int(r["jobs"])
            if units <= 0:          # every unit-carrying job of the phase lies outside the window's hours
                continue
            out.append(_row(name, r["phase"], r["unit_name"], s, units, jobs, whole[(project, r["phase"])], o))
            by_name[r["unit_name"]].append((s, units, jobs))
        project_kwh = sum((v for (p, _), v in whole.items() if p == project), 0.0)
        for unit_name, parts in sorted(by_name.items()):
            if len(parts) > 1:
                total = Sums()
                for s, _, _ in parts:
                    total = total.add(s)
                out.append(_row(name, "all", unit_name, total, sum(u for _, u, _ in parts),
                                sum(j for _, _, j in parts), project_kwh, o))
    return Sci(rows=tuple(out), embodied_in_headline="embodied" in included(o), method=_method(o, per_project))


def _method(o: ReportOptions, per_project: bool) -> str:
    embodied_in = "embodied" in included(o)
    text = ("SCI = (E x I + M) / R per the Green Software Foundation's Software Carbon Intensity specification "
            "(ISO/IEC 21031:2024), over the jobs whose ledger row gives units: E x I their operational emissions "
            f"as the headline counts them ({energy_included(o)}; location-based intensity, as the SCI requires), "
            "M their GPUs' embodied emissions amortised per GPU-hour"
            + (" (in the headline too)" if embodied_in else " (counted here though the headline leaves the "
               "embodied layer out)")
            + ", R their units, each job's pro rata to its run inside the window; jobs without units (and "
            "running jobs) are in neither, energy_share says how much of the phase they leave out")
    if per_project:    # the all-projects report: appended, so the project report's sentence stays as it was
        text += ("; per project: each share is of that project's phase (all: of the project), and no row adds "
                 "projects together, since two projects' units are two models' units, not one functional unit")
    return text
