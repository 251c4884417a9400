"""The checks: the reports and DuckDB results against the exporters' counters."""


from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb

from wattprint.pipeline.db import duckdb_config

from .checks_node import check_node
from .checks_shared import check_shared
from .pages import Reference, mj, pct, rel, uj
from .pipeline import Outcome
from .plan import CONSERVATION_TOLERANCE, TOLERANCE, GpuKey, Plan

# -- the checks --------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    checks: list[Check]
    projects: dict[str, tuple[float, float]]       # project -> (report J, exporter J)
    jobs: dict[tuple[str, str], tuple[float, float]]  # (cluster, job) -> (fct J, exporter J)
    gpus: dict[GpuKey, tuple[float, float, float]]  # GPU -> (fct jobs + idle J, DB GPU counter J, exporter GPU J)
    fleet: dict[str, float]
    cpu: dict[str, Any] = field(default_factory=dict)   # host energy: exporters' per-job and per-socket figures
    shared: dict[str, Any] = field(default_factory=dict)  # the MIG instances, the pods, the held-idle alert
    node: dict[str, Any] = field(default_factory=dict)    # the BMC nodes: their residual and its shares

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]



def check(plan: Plan, ref: Reference, out: Outcome) -> Verdict:
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    # exporter side: the counters as served
    add("exporter pages: jobs + idle == GPU, in mJ", ref.pages_checked > 0 and not ref.conservation_errors,
        f"{ref.pages_checked} pages read directly"
        + (": " + "; ".join(ref.conservation_errors[:5]) if ref.conservation_errors else ""))
    add("Prometheus holds what the exporters served", not ref.prometheus_mismatches,
        "; ".join(ref.prometheus_mismatches[:5]) or "every series equal at S and E")
    win: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])
    for key in ref.keys("gpu") + ref.keys("idle") + ref.keys("job"):
        win[key[1:5]][0 if key[0] == "gpu" else 1] += mj(ref.at_end[key]) - mj(ref.at_start.get(key, 0.0))
    bad = [f"GPU {g}: jobs + idle {b} mJ, GPU {a} mJ" for g, (a, b) in sorted(win.items()) if a != b]
    add("exporter counters over [S, E]: jobs + idle == GPU, in mJ", not bad, "; ".join(bad) or f"{len(win)} GPUs")

    job_ref: dict[tuple[str, str], float] = defaultdict(float)
    for key in ref.keys("job"):
        job_ref[(key[1], key[5])] += ref.increase(key)
    planned = {(j.cluster, j.job_id) for j in plan.jobs}
    add("every planned job has a counter", set(job_ref) == planned,
        f"unexpected {sorted(set(job_ref) - planned)}, missing {sorted(planned - set(job_ref))}")

    # per project: report (layer gpu) vs the exporters' per-job counters
    projects: dict[str, tuple[float, float]] = {}
    for p in plan.projects:
        exp = sum(job_ref[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p)
        rep = out.reports.get(p)
        got = rep["total"]["energy_kwh"] * 3.6e6 if rep else 0.0
        layer = sum(ph["layers"]["gpu"]["energy_kwh"] for ph in rep["phases"]) * 3.6e6 if rep else 0.0
        projects[p] = (got, exp)
        add(f"project {p}: report energy == exporters' job counters (1 %)",
            rep is not None and rel(got, exp) <= TOLERANCE and rel(layer, got) <= CONSERVATION_TOLERANCE,
            f"report {got:.3f} J (layer gpu {layer:.3f} J), exporters {exp:.3f} J, {pct(got, exp)}"
            if rep else "no report")

    with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
        fct_jobs = {(c, j): e for c, j, e in con.execute(
            "SELECT cluster, job_id, sum(energy_j) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL GROUP BY ALL"
        ).fetchall()}
        fct_gpus = {(c, h, g, u): e for c, h, g, u, e in con.execute(
            "SELECT cluster, hostname, gpu, uuid, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL").fetchall()}
        db_gpus = {(c, h, g, u): e for c, h, g, u, e in con.execute(
            "SELECT s.cluster, s.hostname, s.gpu, s.uuid, sum(i.energy_j) FROM energy_intervals i"
            " JOIN streams s USING (stream_id) WHERE s.source = 'wattprint' AND s.kind = 'gpu' GROUP BY ALL"
        ).fetchall()}
        attribution = dict(con.execute("SELECT attribution, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL")
                           .fetchall())
        reconciled = con.execute(
            "SELECT count(*) FILTER (WHERE counter_j IS NOT NULL), count(cause), string_agg(hostname || ' GPU ' || gpu"
            " || ' ' || strftime(hour_ts, '%H:%M') || ': ' || cause, '; ') FROM fct_gpu_hour").fetchall()[0]

    # per job, from the DuckDB results
    jobs = {k: (fct_jobs.get(k, 0.0), v) for k, v in sorted(job_ref.items())}
    off = [f"{c}/{j}: fct {a:.3f} J, exporter {b:.3f} J ({pct(a, b)})" for (c, j), (a, b) in jobs.items()
           if rel(a, b) > TOLERANCE]
    extra = sorted(set(fct_jobs) - set(job_ref))
    add("per job: fct_job_gpu_hour == exporters' job counters (1 %)", not off and not extra,
        "; ".join(off + [f"unexpected job {k} in fct" for k in extra]) or f"{len(jobs)} jobs")

    # conservation in DuckDB: per GPU, jobs + idle rows == the GPU counter's energy
    gpus: dict[GpuKey, tuple[float, float, float]] = {}
    for key in ref.keys("gpu"):
        g = key[1:5]
        gpus[g] = (fct_gpus.get(g, 0.0), db_gpus.get(g, 0.0), ref.increase(key))
    off = [f"{g[1]} GPU {g[2]}: fct jobs + idle {a:.3f} J, GPU counter {c:.3f} J ({pct(a, c)})"
           for g, (a, _, c) in gpus.items() if rel(a, c) > CONSERVATION_TOLERANCE]
    off += [f"{g[1]} GPU {g[2]}: GPU counter in DuckDB {b:.3f} J, exporter {c:.3f} J ({pct(b, c)})"
            for g, (_, b, c) in gpus.items() if rel(b, c) > CONSERVATION_TOLERANCE]
    add("fct_job_gpu_hour: per GPU, jobs + idle == GPU energy (1e-6)", not off,
        "; ".join(off) or f"{len(gpus)} GPUs; attribution " + ", ".join(
            f"{k} {v:.0f} J" for k, v in sorted(attribution.items())))

    # the model's own reconciliation: every GPU-hour's priced energy against that GPU's counter in DuckDB
    add("fct_gpu_hour: no GPU-hour's priced energy differs from its GPU counter", reconciled[1] == 0,
        reconciled[2] or f"{reconciled[0]} GPU-hours checked")

    cpu = check_cpu(plan, ref, out, add)
    shared = check_shared(plan, ref, out, add)
    node = check_node(plan, ref, out, add)

    # the all-projects report's reconciliation
    fleet: dict[str, float] = {}
    rc = out.fleet.get("reconciliation") if out.fleet else None
    if rc is None:
        add("all-projects report: reconciliation", False, "no all-projects JSON report")
    else:
        fleet = {k: v * 3.6e6 for k, v in rc.items() if k.endswith("_kwh")}
        fleet_j = fleet["fleet_energy_kwh"]
        parts = (fleet["projects_energy_kwh"] + fleet["not_in_ledger_kwh"] + fleet["idle_apportioned_kwh"]
                 + fleet["idle_unapportioned_kwh"])
        gpu_total = sum(c for _, _, c in gpus.values())
        stray = sum(job_ref[(j.cluster, j.job_id)] for j in plan.jobs if j.project is None)
        in_ledger = sum(e for _, e in projects.values())
        fleet.update(exporters_gpu_j=gpu_total, exporters_not_in_ledger_j=stray, exporters_projects_j=in_ledger)
        add("all-projects report: fleet == projects + not in ledger + idle (1e-6)",
            rel(parts, fleet_j) <= CONSERVATION_TOLERANCE, f"fleet {fleet_j:.3f} J, parts {parts:.3f} J")
        add("all-projects report: fleet == exporters' GPU counters (1 %)", rel(fleet_j, gpu_total) <= TOLERANCE,
            f"fleet {fleet_j:.3f} J, exporters {gpu_total:.3f} J, {pct(fleet_j, gpu_total)}")
        add("all-projects report: projects and not-in-ledger == exporters' job counters (1 %)",
            rel(fleet["projects_energy_kwh"], in_ledger) <= TOLERANCE
            and rel(fleet["not_in_ledger_kwh"], stray) <= TOLERANCE,
            f"projects {fleet['projects_energy_kwh']:.3f} J vs {in_ledger:.3f} J "
            f"({pct(fleet['projects_energy_kwh'], in_ledger)}); not in ledger {fleet['not_in_ledger_kwh']:.3f} J "
            f"vs {stray:.3f} J ({pct(fleet['not_in_ledger_kwh'], stray)})")
        by_project = {p["project"]: p["energy_kwh"] * 3.6e6 for p in out.fleet.get("projects", [])}
        off = [f"{p}: all-projects {by_project.get(p, 0.0):.3f} J, project report {got:.3f} J"
               for p, (got, _) in projects.items() if rel(by_project.get(p, 0.0), got) > CONSERVATION_TOLERANCE]
        add("all-projects report: per project == the project reports (1e-6)", not off, "; ".join(off) or "equal")
        # no hourly intensity was imported: the report prices at the shipped annual values, as serve-intensity
        # --source annual serves them live
        applied = {c["zone"]: c["intensity_g_per_kwh"] for c in out.fleet.get("clusters", [])}
        off = [f"{z}: report {v}, serve-intensity {ref.intensity.get(z)}" for z, v in sorted(applied.items())
               if ref.intensity.get(z) is None or rel(v, ref.intensity[z]) > CONSERVATION_TOLERANCE]
        add("intensity: the report's annual values == serve-intensity's, per zone", bool(applied) and not off,
            "; ".join(off) or ", ".join(f"{z} {v:g} g/kWh" for z, v in sorted(applied.items())))
    return Verdict(checks, projects, jobs, gpus, fleet, cpu, shared, node)


def check_cpu(plan: Plan, ref: Reference, out: Outcome, add: Any) -> dict[str, Any]:
    """Host energy: the exporters' RAPL accounts, DuckDB's CPU results and the reports against each other."""
    win: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])
    for key in ref.keys("cpu") + ref.keys("cpu_idle") + ref.keys("cpu_job"):
        win[key[1:5]][0 if key[0] == "cpu" else 1] += uj(ref.at_end[key]) - uj(ref.at_start.get(key, 0.0))
    bad = [f"{c[1]} socket {c[2]} {c[3]}: jobs + idle {b} µJ, socket {a} µJ" for c, (a, b) in sorted(win.items())
           if a != b]
    add("exporter counters over [S, E]: per socket and domain, CPU jobs + idle == RAPL energy, in µJ",
        bool(win) and not bad, "; ".join(bad) or f"{len(win)} (host, socket, domain) counters")
    want = {(n.name, s, d) for n in plan.nodes for s in ("0", "1") for d in ("package", "dram")}
    got_keys = {k[1:4] for k in win}
    add("every node exports package and DRAM energy of both sockets", got_keys == want,
        f"missing {sorted(want - got_keys)}, unexpected {sorted(got_keys - want)}")

    job_j: dict[tuple[str, str], float] = defaultdict(float)
    job_s: dict[tuple[str, str], float] = defaultdict(float)
    for key in ref.keys("cpu_job"):
        job_j[(key[1], key[5])] += ref.increase(key)
    for key in ref.keys("cpu_seconds"):
        job_s[(key[1], key[5])] += ref.increase(key)
    planned = {(j.cluster, j.job_id) for j in plan.jobs}
    add("every planned job has CPU energy and CPU-time counters", set(job_j) == planned == set(job_s),
        f"energy: missing {sorted(planned - set(job_j))}; CPU time: missing {sorted(planned - set(job_s))}")

    with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
        fct_jobs = {(c, j): e for c, j, e in con.execute(
            "SELECT cluster, job_id, sum(energy_j) FROM fct_job_cpu_hour WHERE job_id IS NOT NULL GROUP BY ALL"
        ).fetchall()}
        fct_socket = {(c, h, s, d): e for c, h, s, d, e in con.execute(
            "SELECT cluster, hostname, socket, domain, sum(energy_j) FROM fct_job_cpu_hour GROUP BY ALL").fetchall()}
        fct_secs = {(c, j): s for c, j, s in con.execute(
            "SELECT cluster, job_id, sum(cpu_seconds) FROM fct_job_cpu_time_hour GROUP BY ALL").fetchall()}
    off = [f"{c}/{j}: fct {fct_jobs.get((c, j), 0.0):.3f} J, exporter {v:.3f} J" for (c, j), v in sorted(job_j.items())
           if rel(fct_jobs.get((c, j), 0.0), v) > TOLERANCE]
    add("per job: fct_job_cpu_hour == exporters' job CPU energy counters (1 %)", bool(job_j) and not off,
        "; ".join(off) or f"{len(job_j)} jobs")
    off = [f"{c}/{j}: fct {fct_secs.get((c, j), 0.0):.3f} s, exporter {v:.3f} s" for (c, j), v in sorted(job_s.items())
           if rel(fct_secs.get((c, j), 0.0), v) > TOLERANCE]
    add("per job: fct_job_cpu_time_hour == exporters' job CPU-seconds counters (1 %)", bool(job_s) and not off,
        "; ".join(off) or f"{len(job_s)} jobs, {sum(job_s.values()):.1f} CPU-seconds")
    sockets = {k[1:5]: ref.increase(k) for k in ref.keys("cpu")}
    off = [f"{h} socket {s} {d}: fct jobs + idle {fct_socket.get((c, h, s, d), 0.0):.3f} J, exporter {v:.3f} J"
           for (c, h, s, d), v in sorted(sockets.items()) if rel(fct_socket.get((c, h, s, d), 0.0), v)
           > CONSERVATION_TOLERANCE]
    add("fct_job_cpu_hour: per socket and domain, jobs + host idle == RAPL energy (1e-6)", bool(sockets) and not off,
        "; ".join(off) or f"{len(sockets)} counters, {sum(sockets.values()):.1f} J")

    # the reports: each project's host energy and CPU hours against the exporters' per-job counters
    projects: dict[str, tuple[float, float]] = {}
    for p in plan.projects:
        exp_j = sum(job_j[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p)
        exp_h = sum(job_s[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p) / 3600.0
        rep = out.reports.get(p)
        got_j = rep["total"].get("cpu_energy_kwh", 0.0) * 3.6e6 if rep else 0.0
        got_h = rep["total"].get("cpu_hours", 0.0) if rep else 0.0
        layer = sum(ph["layers"]["cpu"]["energy_kwh"] for ph in rep["phases"]) * 3.6e6 if rep else 0.0
        projects[p] = (got_j, exp_j)
        add(f"project {p}: report CPU energy and CPU hours == exporters' job counters (1 %)",
            rep is not None and exp_j > 0 and rel(got_j, exp_j) <= TOLERANCE and rel(got_h, exp_h) <= TOLERANCE
            and rel(layer, got_j) <= CONSERVATION_TOLERANCE,
            f"CPU energy {got_j:.3f} J (layer cpu {layer:.3f} J), exporters {exp_j:.3f} J, {pct(got_j, exp_j)}; "
            f"CPU hours {got_h:.5f}, exporters {exp_h:.5f}, {pct(got_h, exp_h)}" if rep else "no report")
    rc = (out.fleet.get("reconciliation") or {}).get("cpu") if out.fleet else None
    if rc is None:
        add("all-projects report: host CPU reconciliation", False, "no reconciliation.cpu in the all-projects report")
    else:
        f = {k: v * 3.6e6 for k, v in rc.items() if k.endswith("_kwh")}
        parts = f["projects_energy_kwh"] + f["not_in_ledger_kwh"] + f["idle_apportioned_kwh"] + \
            f["idle_unapportioned_kwh"]
        total = sum(sockets.values())
        add("all-projects report: host CPU energy == projects + not in ledger + host idle (1e-6), "
            "== exporters' RAPL counters (1 %)",
            rel(parts, f["fleet_energy_kwh"]) <= CONSERVATION_TOLERANCE
            and rel(f["fleet_energy_kwh"], total) <= TOLERANCE,
            f"fleet {f['fleet_energy_kwh']:.3f} J, parts {parts:.3f} J, exporters {total:.3f} J "
            f"({pct(f['fleet_energy_kwh'], total)})")
    return {"jobs_j": dict(job_j), "jobs_s": dict(job_s), "sockets_j": sockets, "projects": projects}
