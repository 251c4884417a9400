"""The sections of the all-projects (fleet) report: projects, clusters, top jobs and the reconciliation."""

from __future__ import annotations

from ..types import ClusterRow, ProjectRow, Report, TopJob
from .common import CO2, DASH, _e, _num, _qty, fmt
from .sections import _counters_row, _table, _tr


def _node_table(clusters: tuple[ClusterRow, ...]) -> str:
    """The node residual per cluster (jobs and node idle), where there is BMC data."""
    rows = [_tr([(f"<b>{_e(c.cluster)}</b>", False), (fmt(c.node_energy_kwh), True), (fmt(c.node_job_energy_kwh), True),
                 (fmt(c.node_idle_energy_kwh), True), (fmt(c.node_idle_share, "share"), True)])
            for c in clusters if c.node_energy_kwh is not None]
    if not rows:
        return ""
    return ("<h3>Node residual (BMC node energy less GPU boards and RAPL)</h3>"
            + _table([("Cluster", False), ("Node residual (kWh)", True), ("Jobs (kWh)", True),
                      ("Node idle (kWh)", True), ("Node idle (%)", True)], rows, "clusters compact"))


def _fleet(report: Report) -> str:
    f = report.fleet
    if f is None:
        return ""
    market = report.market_based       # projects and top jobs market-based, with their location-based figure beside
    emitted = ([(f"Emissions, market-based (kg {CO2})", True), ("Location-based (kg)", True)] if market
               else [(f"Emissions (kg {CO2})", True)])

    def kg(x: ProjectRow | TopJob) -> list[tuple[str, bool]]:
        return [(fmt(x.emissions_kg), True)] + ([(fmt(x.location_kg), True)] if market else [])
    out = []
    rows = []
    for p in f.projects:
        ph = " \u00b7 ".join(f"{_e(x.phase)} {fmt(x.emissions_kg)}&nbsp;kg" for x in p.phases)
        rows.append(_tr([(f"<b>{_e(p.project)}</b>", False), (ph, False), (fmt(p.gpu_hours), True),
                         (fmt(p.cpu_hours), True), (fmt(p.energy_kwh), True),
                         (fmt(p.cpu_energy_kwh), True), *kg(p),
                         (fmt(p.previous_emissions_kg), True),
                         (_qty(p.change_pct, "%", "share", signed=True) if _num(p.change_pct) is not None
                          else DASH, True)]))
    out.append('<section id="projects"><h2>Projects</h2>' + (_table(
        [("Project", False), (f"Phases (kg {CO2})", False), ("GPU-hours", True), ("CPU core-hours", True),
         ("GPU energy (kWh)", True), ("CPU energy (kWh)", True), *emitted,
         ("Previous, market-based (kg)" if market else "Previous (kg)", True), ("Change", True)], rows, "projects")
        if rows else "<p>No projects.</p>") + "</section>")
    rows = [_tr([(f"<b>{_e(c.cluster)}</b>", False), (_e(c.provider), False),
                 (f"{_e(c.region)} ({_e(c.zone)})", False), (fmt(c.pue, "pue"), True),
                 (fmt(c.gpus, "int"), True), (fmt(c.energy_kwh), True),
                 (fmt(c.job_energy_kwh), True), (fmt(c.idle_energy_kwh), True),
                 (fmt(c.idle_share, "share"), True), (fmt(c.cpu_sockets, "int"), True),
                 (fmt(c.cpu_energy_kwh), True), (fmt(c.cpu_idle_energy_kwh), True),
                 (fmt(c.cpu_idle_share, "share"), True), (fmt(c.intensity_g_per_kwh, "intensity"), True),
                 (fmt(c.emissions_kg), True)]) for c in f.clusters]
    if rows:
        out.append('<section id="clusters"><h2>Clusters</h2>' + _table(
            [("Cluster", False), ("Provider", False), ("Region (zone)", False), ("PUE", True), ("GPUs", True),
             ("GPU energy (kWh)", True), ("Jobs (kWh)", True), ("Idle (kWh)", True), ("Idle (%)", True),
             ("CPU sockets", True), ("CPU energy (kWh)", True), ("Host idle (kWh)", True), ("Host idle (%)", True),
             ("Intensity (g/kWh)", True),
             (f"Emissions, location-based (kg {CO2})" if market else f"Emissions (kg {CO2})", True)], rows,
            "clusters") + _node_table(f.clusters) + "</section>")
    rows = [_tr([(_e(j.cluster), False), (f"<code>{_e(j.job_id)}</code>", False),
                 (_e(j.project), False), (_e(j.phase), False), (_e(j.user) or DASH, False),
                 (fmt(j.gpu_hours), True), (fmt(j.cpu_hours), True), (fmt(j.energy_kwh), True),
                 (fmt(j.cpu_energy_kwh), True), *kg(j)])
            for j in f.top_jobs]
    if rows:
        out.append('<section id="top-jobs"><h2>Top jobs</h2>' + _table(
            [("Cluster", False), ("Job", False), ("Project", False), ("Phase", False), ("User", False),
             ("GPU-hours", True), ("CPU core-hours", True), ("GPU energy (kWh)", True), ("CPU energy (kWh)", True),
             *emitted], rows, "jobs")
            + "</section>")
    rec = f.reconciliation
    parts = (("projects_energy_kwh", "projects' jobs"), ("not_in_ledger_kwh", "jobs not in the ledger"),
             ("idle_apportioned_kwh", "idle, apportioned to jobs"),
             ("idle_unapportioned_kwh", "idle, not apportioned"))
    rows = [_tr([("<b>whole fleet (GPU energy)</b>", False), (f"<b>{fmt(rec.fleet_energy_kwh)}</b>", True)])]
    rows += [_tr([(label, False), (fmt(getattr(rec, k)), True)]) for k, label in parts]
    values = [_num(getattr(rec, k)) for k, _ in parts]
    if all(v is not None for v in values):
        rows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in values)), True)], "sum"))
    note = f'<p class="source">{_e(rec.note)}</p>' if rec.note else ""
    host = rec.cpu
    if host is not None:
        hrows = [_tr([("<b>whole fleet (host CPU energy)</b>", False),
                      (f"<b>{fmt(host.fleet_energy_kwh)}</b>", True)])]
        hrows += [_tr([(label.replace("idle", "host idle"), False), (fmt(getattr(host, k)), True)])
                  for k, label in parts]
        hvalues = [_num(getattr(host, k)) for k, _ in parts]
        if all(v is not None for v in hvalues):
            hrows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in hvalues)), True)], "sum"))
        note += (_table([("Host CPU energy (RAPL)", False), ("kWh", True)], hrows, "reconciliation host")
                 + (f'<p class="source">{_e(host.note)}</p>' if host.note else ""))
    counters = rec.gpu_counters
    note += _table([("GPU energy against the GPUs' hardware counters", False), ("", True)],
                   [_counters_row(counters)], "reconciliation counters")
    if counters.differences:
        note += _table([("Hour", False), ("Cluster", False), ("Node", False), ("GPU", False),
                        ("Priced kWh", True), ("Counter kWh", True), ("Cause", False)],
                       [_tr([(_e(d.hour), False), (_e(d.cluster), False), (_e(d.hostname), False), (_e(d.gpu), False),
                             (fmt(d.priced_kwh), True), (fmt(d.counter_kwh), True), (_e(d.cause), False)])
                        for d in counters.differences],
                       "reconciliation differences")
    out.append('<section id="reconciliation"><h2>Reconciliation</h2>'
               + _table([("GPU energy", False), ("kWh", True)], rows, "reconciliation") + note + "</section>")
    return "".join(out)
