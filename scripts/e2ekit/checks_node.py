"""The checks of the node layer (the BMC nodes, bmc.py): the node energy in DuckDB against the exporter's BMC counter,
the residual against the exporters' GPU and RAPL counters, the exact identity per node-hour, the jobs' shares by the
documented rule (docs/methodology.md, "The node layer"), and the reports' node layer and data quality."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import duckdb

from wattprint.pipeline.db import duckdb_config

from .pages import Reference, rel
from .pipeline import Outcome
from .plan import CONSERVATION_TOLERANCE, TOLERANCE, Plan

# Per BMC node-hour, in exact decimals (DECIMAL(38, 9), as the model keeps them): every layer's rows on the node —
# the GPU boards' (jobs, idle, unallocated), the RAPL domains' (jobs, host idle), the node residual's (jobs, node
# idle) — against the BMC's node energy. node_j + deficit_j: the BMC's reading where it is at least the GPUs and
# RAPL; where it read less, the deficit is counted and shown, never attributed.
NODE_HOURS = """
WITH
g AS (SELECT cluster, hostname, hour_ts, sum(CAST(energy_j AS DECIMAL(38, 9))) AS j
      FROM fct_job_gpu_hour GROUP BY ALL),
c AS (SELECT cluster, hostname, hour_ts, sum(CAST(energy_j AS DECIMAL(38, 9))) AS j
      FROM fct_job_cpu_hour GROUP BY ALL),
n AS (SELECT cluster, hostname, hour_ts, sum(energy_j) AS j, sum(energy_j) FILTER (WHERE job_id IS NULL) AS idle_j
      FROM fct_job_node_hour GROUP BY ALL)
SELECT f.hostname, f.hour_ts, f.node_j, f.gpu_j, f.rapl_j, f.residual_j, f.attributed_j, f.deficit_j, f.below_gpu,
       f.covered_s, f.basis,
       coalesce(g.j, 0) AS layer_gpu_j, coalesce(c.j, 0) AS layer_cpu_j, coalesce(n.j, 0) AS layer_node_j,
       coalesce(n.idle_j, 0) AS node_idle_j,
       f.node_j = f.gpu_j + f.rapl_j + f.residual_j AS identity,
       f.node_j + f.deficit_j = coalesce(g.j, 0) + coalesce(c.j, 0) + coalesce(n.j, 0) AS layers_sum,
       coalesce(n.j, 0) = f.attributed_j AS attributed
FROM fct_node_hour f
LEFT JOIN g ON g.cluster = f.cluster AND g.hostname = f.hostname AND g.hour_ts = f.hour_ts
LEFT JOIN c ON c.cluster = f.cluster AND c.hostname = f.hostname AND c.hour_ts = f.hour_ts
LEFT JOIN n ON n.cluster = f.cluster AND n.hostname = f.hostname AND n.hour_ts = f.hour_ts
WHERE f.node_j IS NOT NULL
ORDER BY f.hostname, f.hour_ts
"""


def node_reference(plan: Plan, ref: Reference, name: str) -> dict[str, Any]:
    """From the exporter's counters over [S, E]: the node's BMC energy, its GPU boards', its RAPL domains', the
    residual, and each job's share of it by the documented rule (allocated GPU-seconds against the node's GPUs x the
    window)."""
    start, end = ref.node_at[name]
    node_j = end - start
    gpu_j = sum(ref.increase(k) for k in ref.keys("gpu") if k[2] == name)
    rapl_j = sum(ref.increase(k) for k in ref.keys("cpu") if k[2] == name)
    residual = node_j - gpu_j - rapl_j
    # each job's GPU-seconds, a GPU allocated once: on a GPU whose jobs held it longer together than the window
    # (jobs sharing it in time), scaled down to the window's seconds pro rata
    on_gpu: dict[str, dict[str, float]] = defaultdict(dict)
    for k in ref.keys("job_seconds"):
        if k[2] == name:
            on_gpu[k[3]][k[5]] = ref.increase(k)
    held: dict[str, float] = defaultdict(float)
    for jobs in on_gpu.values():
        scale = min(1.0, ref.window_s / sum(jobs.values())) if sum(jobs.values()) else 0.0
        for job, s in jobs.items():
            held[job] += s * scale
    capacity = plan.node(name).gpus * ref.window_s
    total = sum(held.values())
    jobs_j = max(residual, 0.0) * min(1.0, total / capacity) if total else 0.0
    shares = {j: jobs_j * s / total for j, s in held.items()} if total else {}
    return {"node_j": node_j, "gpu_j": gpu_j, "rapl_j": rapl_j, "residual_j": residual, "shares_j": shares,
            "idle_j": max(residual, 0.0) - jobs_j, "held_s": dict(held), "capacity_s": capacity,
            "bmc": plan.node(name).bmc, "overhead_j": ref.bmc_overhead_j.get(name, 0.0)}


def check_node(plan: Plan, ref: Reference, out: Outcome, add: Any) -> dict[str, Any]:
    names = [n.name for n in plan.nodes if n.bmc]
    if not names:
        return {}
    refs = {n: node_reference(plan, ref, n) for n in names}
    with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
        cur = con.execute(NODE_HOURS)
        cols = [d[0] for d in cur.description]
        hours = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        job_node = {j: float(e) for j, e in con.execute(
            "SELECT job_id, sum(energy_j) FROM fct_job_node_hour WHERE job_id IS NOT NULL GROUP BY ALL").fetchall()}
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in hours:
        by_node[h["hostname"]].append(h)

    add("every BMC node has node-hours in fct_node_hour, no other node has", set(by_node) == set(names),
        f"BMC nodes {names}, node-hours for {sorted(by_node)}")
    off = []
    for n, r in refs.items():
        got = float(sum(h["node_j"] for h in by_node.get(n, [])))
        r["db_node_j"] = got
        if rel(got, r["node_j"]) > CONSERVATION_TOLERANCE:
            off.append(f"{n}: DuckDB {got:.3f} J, exporter's BMC counter {r['node_j']:.3f} J")
    add("node energy: per BMC node, fct_node_hour == the exporter's BMC counter over [S, E] (1e-6)", not off,
        "; ".join(off) or ", ".join(f"{n} {r['node_j']:.1f} J" for n, r in refs.items()))

    bad = [f"{h['hostname']} {h['hour_ts']:%H:%M}: node {h['node_j']} J, GPU {h['gpu_j']} + RAPL {h['rapl_j']} + "
           f"residual {h['residual_j']}" for h in hours if not h["identity"]]
    bad += [f"{h['hostname']} {h['hour_ts']:%H:%M}: node {h['node_j']} + deficit {h['deficit_j']} J, layers' rows "
            f"GPU {h['layer_gpu_j']} + CPU {h['layer_cpu_j']} + node {h['layer_node_j']}"
            for h in hours if not h["layers_sum"]]
    bad += [f"{h['hostname']} {h['hour_ts']:%H:%M}: jobs + node idle {h['layer_node_j']} J, residual attributed "
            f"{h['attributed_j']} J" for h in hours if not h["attributed"]]
    add("per node-hour, exactly: GPU + RAPL + residual == node energy, the layers' rows (GPU, CPU, node jobs + "
        "idle) == node energy less any deficit, node jobs + node idle == the attributed residual", bool(hours)
        and not bad, "; ".join(bad[:5]) or f"{len(hours)} node-hours, to the nanojoule")

    off = []
    for n, r in refs.items():
        got = float(sum(h["residual_j"] for h in by_node.get(n, [])))
        r["db_residual_j"] = got
        if abs(got - r["residual_j"]) > CONSERVATION_TOLERANCE * r["node_j"]:
            off.append(f"{n}: DuckDB residual {got:.3f} J, exporters' node - GPU - RAPL {r['residual_j']:.3f} J")
    add("node residual: per BMC node, fct_node_hour == the exporters' BMC - GPU - RAPL counters over [S, E] (1e-6 of "
        "the node)", not off, "; ".join(off) or ", ".join(f"{n} {r['residual_j']:+.1f} J" for n, r in refs.items()))

    # the BMC that reads the node: a positive residual shared by GPU-seconds; the one that reads one PSU: flagged
    whole = [n for n in names if plan.node(n).bmc == "whole"]
    low = [n for n in names if plan.node(n).bmc == "one-psu"]
    off = [f"{n} {h['hour_ts']:%H:%M}: deficit {h['deficit_j']} J" for n in whole for h in by_node.get(n, [])
           if h["deficit_j"] > 0]
    off += [f"{n} {h['hour_ts']:%H:%M}: not below its GPUs (node {h['node_j']} J, GPU {h['gpu_j']} J)"
            for n in low for h in by_node.get(n, []) if not (h["below_gpu"] and h["attributed_j"] == 0)]
    add("the whole-node BMC reads more than its GPUs and RAPL in every hour; the one-PSU BMC less than its GPUs, "
        "nothing attributed", not off, "; ".join(off) or "as built")
    off = []
    for n in whole:
        for job, want in refs[n]["shares_j"].items():
            got = job_node.get(job, 0.0)
            if rel(got, want) > TOLERANCE:
                off.append(f"{n} job {job}: fct_job_node_hour {got:.3f} J, rule on the exporters' counters "
                           f"{want:.3f} J")
    add("node residual per job: fct_job_node_hour == residual x min(1, allocated GPU-seconds / (GPUs x seconds)) by "
        "the jobs' allocated GPU-seconds, from the exporters' counters (1 %)", bool(whole) and not off,
        "; ".join(off) or ", ".join(f"job {j} {v:.1f} J" for n in whole for j, v in refs[n]["shares_j"].items()))

    projects: dict[str, tuple[float, float]] = {}
    for p in plan.projects:
        want = sum(job_node.get(j.job_id, 0.0) for j in plan.jobs if j.project == p)
        rep = out.reports.get(p) or {}
        got = sum(ph["layers"].get("node", {}).get("energy_kwh", 0.0) for ph in rep.get("phases", [])) * 3.6e6
        projects[p] = (got, want)
    off = [f"{p}: report {g:.3f} J, fct_job_node_hour {w:.3f} J" for p, (g, w) in projects.items()
           if rel(g, w) > CONSERVATION_TOLERANCE]
    add("project reports: the node layer == the project's jobs in fct_job_node_hour (1e-6), listed where a job ran "
        "on a BMC node", not off and any(w > 0 for _, w in projects.values()),
        "; ".join(off) or ", ".join(f"{p} {g:.1f} J" for p, (g, _) in projects.items()))

    dq = ((out.fleet or {}).get("data_quality") or {}).get("node") or {}
    flagged = {i["hostname"]: i for i in dq.get("issues", []) if i.get("deficit_hours")}
    want_hours = {n: len(by_node.get(n, [])) for n in low}
    off = [f"{n}: flagged in {flagged.get(n, {}).get('deficit_hours', 0)} of {h} node-hours"
           for n, h in want_hours.items()
           if flagged.get(n, {}).get("deficit_hours") != h or flagged.get(n, {}).get("below_gpu_hours") != h]
    off += [f"{n} flagged, its BMC reads the whole node" for n in flagged if n not in low]
    residual = sum(float(h["attributed_j"]) for h in hours)
    if rel(dq.get("residual_kwh", 0.0) * 3.6e6, residual) > CONSERVATION_TOLERANCE:
        off.append(f"residual {dq.get('residual_kwh', 0.0) * 3.6e6:.3f} J, fct_node_hour {residual:.3f} J")
    add("all-projects data quality: the one-PSU BMC's node-hours flagged below its GPUs, with their hours; the "
        "residual == fct_node_hour's", bool(dq) and not off, "; ".join(off) or
        ", ".join(f"{n}: {i['deficit_hours']} h from {i['deficit_at'][0] if i['deficit_at'] else '?'}"
                  for n, i in flagged.items()))
    return {"nodes": refs, "projects": projects, "hours": len(hours)}
