"""The sections only the all-projects (fleet) report has: projects (with the window before), clusters, top jobs,
and the reconciliation of the fleet's GPU and host energy with what the projects were charged.

Under a market-based headline (`adj`, report/basis.py) the projects, their phases, the top jobs (ranked by it) and
the window before are market-based, each with its location-based figure beside it; clusters stay location-based."""

from __future__ import annotations

import duckdb

from ..timeutil import iso
from .basis import Adjustments
from .layers import Sums, fraction, share
from .phases import phase_order
from .query import inline, one, rows
from .scope import ReportOptions, build_scope
from .types import (
    NOT_IN_LEDGER,
    Change,
    ClusterRow,
    CpuReconciliation,
    FleetSections,
    GpuCounters,
    Previous,
    ProjectPhase,
    ProjectRow,
    Reconciliation,
    TopJob,
)


def previous(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> dict[str, Sums]:
    """Per project, the sums of the window before (run before this window's scope is built)."""
    build_scope(con, o, o.window.previous())
    return {(r["project"] or NOT_IN_LEDGER): Sums.of(r) for r in rows(con, "rpt_sums_by_project")}


def fleet(con: duckdb.DuckDBPyConnection, o: ReportOptions, total: Sums, prev: dict[str, Sums],
          counters: GpuCounters, adj: Adjustments | None = None,
          prev_adj: dict[str, float] | None = None) -> FleetSections:
    """`adj`: the market adjustments of a market-based headline, `prev_adj` those of the window before (per project);
    None: location-based."""
    def kg(s: Sums, adjustment: float | None) -> float:
        return s.headline_kg(o) if adj is None else adj.kg(s.headline_kg(o), adjustment)

    def location(s: Sums) -> float | None:
        return None if adj is None else s.headline_kg(o)

    sums: dict[str, Sums] = {}
    phases: dict[str, list[ProjectPhase]] = {}
    for r in rows(con, "rpt_sums_by_project_phase"):
        s = Sums.of(r)
        name = r["project"] or NOT_IN_LEDGER
        sums[name] = sums.get(name, Sums()).add(s)
        phases.setdefault(name, []).append(ProjectPhase(
            phase=r["phase"], energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6,
            emissions_kg=kg(s, adj.project_phases.get((name, r["phase"])) if adj else None),
            location_kg=location(s),
            gpu_hours=s.gpu_s / 3600.0, cpu_hours=s.cpu_s / 3600.0))
    for p in phases.values():
        p.sort(key=lambda x: phase_order(x.phase))

    prev_w = o.window.previous()
    prev_total = Sums()
    for s in prev.values():
        prev_total = prev_total.add(s)
    prev_adj = prev_adj or {}
    prev_kg = kg(prev_total, sum(prev_adj.values(), 0.0))
    total_kg = kg(total, adj.total if adj else None)

    projects = []
    for name, s in sorted(sums.items(), key=lambda kv: -kg(kv[1], adj.projects.get(kv[0]) if adj else None)):
        before = kg(prev[name], prev_adj.get(name)) if name in prev else None
        now = kg(s, adj.projects.get(name) if adj else None)
        projects.append(ProjectRow(project=name, energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6,
                                   emissions_kg=now, location_kg=location(s), gpu_hours=s.gpu_s / 3600.0,
                                   cpu_hours=s.cpu_s / 3600.0,
                                   previous_emissions_kg=before,
                                   change_pct=(now - before) / before if before else None,
                                   phases=tuple(phases[name])))

    cluster_rows = clusters(con, o)
    jobs = [(Sums.of(r), r) for r in rows(con, "rpt_sums_by_job")]
    job_kg = [kg(s, adj.jobs.get((r["cluster"], r["job_id"], r["project"], r["phase"])) if adj else None)
              for s, r in jobs]
    ranked = sorted(zip(job_kg, jobs, strict=True), key=lambda x: (-x[0], x[1][1]["cluster"], x[1][1]["job_id"]))
    top_jobs = tuple(TopJob(cluster=r["cluster"], job_id=r["job_id"], project=r["project"] or NOT_IN_LEDGER,
                            phase=r["phase"], user=r["user_name"], gpu_hours=s.gpu_s / 3600.0,
                            cpu_hours=s.cpu_s / 3600.0, energy_kwh=s.energy_j / 3.6e6,
                            cpu_energy_kwh=s.cpu_j / 3.6e6, emissions_kg=now, location_kg=location(s))
                     for now, (s, r) in ranked[:o.top_jobs])

    window = {"start": o.window.start, "end": o.window.end, "pro_rata": o.idle_policy == "pro-rata"}
    gpu = one(con, "rpt_fleet_gpu_energy", window)
    cpu = one(con, "rpt_fleet_cpu_energy", window)
    ledger = one(con, "rpt_in_ledger")
    return FleetSections(
        projects=tuple(projects),
        clusters=cluster_rows,
        top_jobs=top_jobs,
        previous=Previous(start=iso(prev_w.start), end=iso(prev_w.end), label=prev_w.label, hours=prev_w.hours,
                          energy_kwh=prev_total.energy_j / 3.6e6, cpu_energy_kwh=prev_total.cpu_j / 3.6e6,
                          emissions_kg=prev_kg, location_kg=location(prev_total)) if prev else None,
        change=Change(energy_pct=share(total.energy_j - prev_total.energy_j, prev_total.energy_j),
                      emissions_pct=share(total_kg - prev_kg, prev_kg)) if prev else None,
        reconciliation=Reconciliation(
            fleet_energy_kwh=gpu["fleet_j"] / 3.6e6,
            projects_energy_kwh=ledger["energy_j"] / 3.6e6,
            not_in_ledger_kwh=gpu["not_in_ledger_j"] / 3.6e6,
            idle_apportioned_kwh=total.idle_j / 3.6e6,
            idle_unapportioned_kwh=gpu["unapportioned_j"] / 3.6e6,
            note="fleet GPU energy = projects' jobs + jobs not in the ledger + idle apportioned to jobs + idle "
                 "not apportioned (no job ran in that cluster-hour, or the idle policy is 'separate')",
            cpu=CpuReconciliation(
                fleet_energy_kwh=cpu["fleet_j"] / 3.6e6,
                projects_energy_kwh=ledger["cpu_j"] / 3.6e6,
                not_in_ledger_kwh=cpu["not_in_ledger_j"] / 3.6e6,
                idle_apportioned_kwh=total.cpu_idle_j / 3.6e6,
                idle_unapportioned_kwh=cpu["unapportioned_j"] / 3.6e6,
                note="fleet host CPU energy (RAPL package + DRAM) = projects' jobs + jobs not in the ledger + "
                     "host idle apportioned to jobs (by CPU-seconds) + host idle not apportioned (no job had CPU "
                     "time in that cluster-hour, or the idle policy is 'separate')",
            ),
            # every GPU-hour of the window against its hardware counter: the data-quality check, fleet-wide
            gpu_counters=counters,
        ),
    )


def clusters(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> tuple[ClusterRow, ...]:
    """Per cluster: GPUs and their energy (jobs and idle), host CPU energy (jobs and idle), and the emissions of
    both including PUE, straight from the results (every job, in the ledger or not)."""
    window = {"start": o.window.start, "end": o.window.end}
    gpu = {r["cluster"]: r for r in rows(con, "rpt_cluster_gpus", window)}
    cpu = {r["cluster"]: r for r in rows(con, "rpt_cluster_cpus", window)}
    node = {r["cluster"]: r for r in rows(con, "rpt_cluster_nodes", window)} if o.node_data else {}
    provider_of = {r["cluster"]: r["provider"] for r in inline(con, "SELECT cluster, provider FROM clusters")}
    none = {"gpus": 0, "sockets": 0, "energy_j": 0.0, "job_j": 0.0, "idle_j": 0.0, "grams_before_pue": 0.0,
            "grams": 0.0, "pue": None, "region": None, "zone": None}
    out = []
    for cluster in sorted(set(gpu) | set(cpu)):
        g, c = gpu.get(cluster, none), cpu.get(cluster, none)
        n = node.get(cluster)           # None: no node residual in the cluster (no BMC data there)
        e, ce = g["energy_j"], c["energy_j"]
        out.append(ClusterRow(
            cluster=cluster, provider=provider_of.get(cluster) or "onprem", region=g["region"] or c["region"] or "",
            zone=g["zone"] if g["zone"] is not None else c["zone"],
            pue=g["pue"] if g["pue"] is not None else (c["pue"] or 1.0), gpus=int(g["gpus"]), energy_kwh=e / 3.6e6,
            job_energy_kwh=g["job_j"] / 3.6e6, idle_energy_kwh=g["idle_j"] / 3.6e6, idle_share=fraction(g["idle_j"], e),
            cpu_sockets=int(c["sockets"]), cpu_energy_kwh=ce / 3.6e6, cpu_job_energy_kwh=c["job_j"] / 3.6e6,
            cpu_idle_energy_kwh=c["idle_j"] / 3.6e6, cpu_idle_share=fraction(c["idle_j"], ce),
            node_energy_kwh=n["energy_j"] / 3.6e6 if n else None,
            node_job_energy_kwh=n["job_j"] / 3.6e6 if n else None,
            node_idle_energy_kwh=n["idle_j"] / 3.6e6 if n else None,
            node_idle_share=fraction(n["idle_j"], n["energy_j"]) if n else None,
            intensity_g_per_kwh=share(g["grams_before_pue"] + c["grams_before_pue"], (e + ce) / 3.6e6),
            emissions_kg=(g["grams"] + c["grams"]) / 1000.0))
    return tuple(out)
