"""The sections of the all-projects (fleet) report: projects, clusters, top jobs and the reconciliation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import CO2, DASH, _e, _list, _num, _qty, fmt
from .sections import _counters_row, _table, _tr


def _fleet(report: Mapping[str, Any]) -> str:
    if report.get("kind") != "fleet":
        return ""
    out = []
    projects = _list(report.get("projects"))
    rows = []
    for p in projects:
        ph = " \u00b7 ".join(f"{_e(x.get('phase'))} {fmt(x.get('emissions_kg'))}&nbsp;kg"
                             for x in _list(p.get("phases")))
        rows.append(_tr([(f"<b>{_e(p.get('project'))}</b>", False), (ph, False), (fmt(p.get("gpu_hours")), True),
                         (fmt(p.get("cpu_hours")), True), (fmt(p.get("energy_kwh")), True),
                         (fmt(p.get("cpu_energy_kwh")), True), (fmt(p.get("emissions_kg")), True),
                         (fmt(p.get("previous_emissions_kg")), True),
                         (_qty(p.get("change_pct"), "%", "share", signed=True) if _num(p.get("change_pct")) is not None
                          else DASH, True)]))
    out.append('<section id="projects"><h2>Projects</h2>' + (_table(
        [("Project", False), (f"Phases (kg {CO2})", False), ("GPU-hours", True), ("CPU core-hours", True),
         ("GPU energy (kWh)", True), ("CPU energy (kWh)", True), (f"Emissions (kg {CO2})", True),
         ("Previous (kg)", True), ("Change", True)], rows, "projects")
        if rows else "<p>No projects.</p>") + "</section>")
    rows = [_tr([(f"<b>{_e(c.get('cluster'))}</b>", False), (_e(c.get("provider")), False),
                 (f"{_e(c.get('region'))} ({_e(c.get('zone'))})", False), (fmt(c.get("pue"), "pue"), True),
                 (fmt(c.get("gpus"), "int"), True), (fmt(c.get("energy_kwh")), True),
                 (fmt(c.get("job_energy_kwh")), True), (fmt(c.get("idle_energy_kwh")), True),
                 (fmt(c.get("idle_share"), "share"), True), (fmt(c.get("cpu_sockets"), "int"), True),
                 (fmt(c.get("cpu_energy_kwh")), True), (fmt(c.get("cpu_idle_energy_kwh")), True),
                 (fmt(c.get("cpu_idle_share"), "share"), True), (fmt(c.get("intensity_g_per_kwh"), "intensity"), True),
                 (fmt(c.get("emissions_kg")), True)]) for c in _list(report.get("clusters"))]
    if rows:
        out.append('<section id="clusters"><h2>Clusters</h2>' + _table(
            [("Cluster", False), ("Provider", False), ("Region (zone)", False), ("PUE", True), ("GPUs", True),
             ("GPU energy (kWh)", True), ("Jobs (kWh)", True), ("Idle (kWh)", True), ("Idle (%)", True),
             ("CPU sockets", True), ("CPU energy (kWh)", True), ("Host idle (kWh)", True), ("Host idle (%)", True),
             ("Intensity (g/kWh)", True), (f"Emissions (kg {CO2})", True)], rows, "clusters") + "</section>")
    rows = [_tr([(_e(j.get("cluster")), False), (f"<code>{_e(j.get('job_id'))}</code>", False),
                 (_e(j.get("project")), False), (_e(j.get("phase")), False), (_e(j.get("user")) or DASH, False),
                 (fmt(j.get("gpu_hours")), True), (fmt(j.get("cpu_hours")), True), (fmt(j.get("energy_kwh")), True),
                 (fmt(j.get("cpu_energy_kwh")), True), (fmt(j.get("emissions_kg")), True)])
            for j in _list(report.get("top_jobs"))]
    if rows:
        out.append('<section id="top-jobs"><h2>Top jobs</h2>' + _table(
            [("Cluster", False), ("Job", False), ("Project", False), ("Phase", False), ("User", False),
             ("GPU-hours", True), ("CPU core-hours", True), ("GPU energy (kWh)", True), ("CPU energy (kWh)", True),
             (f"Emissions (kg {CO2})", True)], rows, "jobs")
            + "</section>")
    rec = report.get("reconciliation")
    if isinstance(rec, Mapping):
        parts = (("projects_energy_kwh", "projects' jobs"), ("not_in_ledger_kwh", "jobs not in the ledger"),
                 ("idle_apportioned_kwh", "idle, apportioned to jobs"),
                 ("idle_unapportioned_kwh", "idle, not apportioned"))
        rows = [_tr([("<b>whole fleet (GPU energy)</b>", False), (f"<b>{fmt(rec.get('fleet_energy_kwh'))}</b>", True)])]
        rows += [_tr([(label, False), (fmt(rec.get(k)), True)]) for k, label in parts]
        values = [_num(rec.get(k)) for k, _ in parts]
        if all(v is not None for v in values):
            rows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in values)), True)], "sum"))
        note = f'<p class="source">{_e(rec.get("note"))}</p>' if rec.get("note") else ""
        host = rec.get("cpu")
        if isinstance(host, Mapping):
            hrows = [_tr([("<b>whole fleet (host CPU energy)</b>", False),
                          (f"<b>{fmt(host.get('fleet_energy_kwh'))}</b>", True)])]
            hrows += [_tr([(label.replace("idle", "host idle"), False), (fmt(host.get(k)), True)])
                      for k, label in parts]
            hvalues = [_num(host.get(k)) for k, _ in parts]
            if all(v is not None for v in hvalues):
                hrows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in hvalues)), True)], "sum"))
            note += (_table([("Host CPU energy (RAPL)", False), ("kWh", True)], hrows, "reconciliation host")
                     + (f'<p class="source">{_e(host.get("note"))}</p>' if host.get("note") else ""))
        counters = rec.get("gpu_counters") if isinstance(rec.get("gpu_counters"), Mapping) else None
        if counters is not None:
            crow = _counters_row(counters)
            diffs = counters.get("differences") or []
            note += _table([("GPU energy against the GPUs' hardware counters", False), ("", True)], [crow],
                           "reconciliation counters")
            if diffs:
                note += _table([("Hour", False), ("Cluster", False), ("Node", False), ("GPU", False),
                                ("Priced kWh", True), ("Counter kWh", True), ("Cause", False)],
                               [_tr([(_e(d.get("hour")), False), (_e(d.get("cluster")), False),
                                     (_e(d.get("hostname")), False), (_e(d.get("gpu")), False),
                                     (fmt(d.get("priced_kwh")), True), (fmt(d.get("counter_kwh")), True),
                                     (_e(d.get("cause")), False)]) for d in diffs if isinstance(d, Mapping)],
                               "reconciliation differences")
        out.append('<section id="reconciliation"><h2>Reconciliation</h2>'
                   + _table([("GPU energy", False), ("kWh", True)], rows, "reconciliation") + note + "</section>")
    return "".join(out)
