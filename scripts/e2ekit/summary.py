"""The e2e's printed summary."""


from __future__ import annotations

from .checks import Verdict
from .pages import Reference, pct, rel
from .pipeline import Outcome
from .plan import HELD_IDLE_ALERT, Job, Plan, iso
from .stack import Stack


def kj(j: float) -> str:
    return f"{j / 1000:,.3f} kJ"


def summary(plan: Plan, stack: Stack, ref: Reference, out: Outcome, verdict: Verdict) -> str:
    w = stack.window
    assert w is not None
    lines = [
        "",
        f"stack: {len(plan.nodes)} replay exporters ({sum(n.gpus for n in plan.nodes)} virtual H100s), "
        f"serve-intensity, Prometheus {stack.prometheus_url} scraping every {stack.scrape:g} s",
        f"window: {iso(w.start)} .. {iso(w.end)} ({w.end - w.start} s), ingest step {stack.step} s; "
        f"report window {iso(w.report_start)} .. {iso(w.report_end)}",
        f"ingested: {out.samples} samples of {out.series} series; {ref.pages_checked} exporter pages read directly; "
        f"pipeline {out.seconds:.1f} s",
        "",
        f"{'project':<12} {'report (gpu layer)':>20} {'exporters':>16} {'difference':>26} {'wall-clock reads':>18}",
    ]

    def wall(job: Job) -> float:  # the job's counters read at wall-clock S and E instead of Prometheus' polls
        return sum(v - ref.wall_start.get(k, 0.0) for k, v in ref.wall_end.items()
                   if k[0] == "job" and (k[1], k[5]) == (job.cluster, job.job_id))

    for p, (got, exp) in verdict.projects.items():
        at_wall = sum(wall(j) for j in plan.jobs if j.project == p)
        lines.append(f"{p:<12} {kj(got):>20} {kj(exp):>16} {got - exp:>+12.3f} J {pct(got, exp):>11} "
                     f"{pct(at_wall, exp):>18}")
    lines.append("(wall-clock reads: the exporters' pages last read by S and by E, against the pages of the polls "
                 "Prometheus holds at S and E; shown for scale, not checked)")
    if verdict.fleet:
        f = verdict.fleet
        lines += [
            "",
            f"fleet GPU energy {kj(f['fleet_energy_kwh'])} (exporters' GPU counters {kj(f['exporters_gpu_j'])}, "
            f"{pct(f['fleet_energy_kwh'], f['exporters_gpu_j'])})",
            f"  = projects {kj(f['projects_energy_kwh'])} + not in ledger {kj(f['not_in_ledger_kwh'])}"
            f" + idle apportioned {kj(f['idle_apportioned_kwh'])} + idle not apportioned "
            f"{kj(f['idle_unapportioned_kwh'])}",
        ]
    if verdict.cpu.get("projects"):
        lines.append("")
        lines.append(f"host energy: {len(verdict.cpu['sockets_j'])} RAPL counters (package and DRAM of 2 sockets "
                     f"per node), {ref.rapl_wraps} counter wraps during the run")
        lines.append(f"{'project':<12} {'report CPU energy':>20} {'exporters':>16} {'difference':>26}")
        for p, (got, exp) in verdict.cpu["projects"].items():
            lines.append(f"{p:<12} {kj(got):>20} {kj(exp):>16} {got - exp:>+12.3f} J {pct(got, exp):>11}")
    if verdict.node.get("nodes"):
        lines += ["", f"node power: {len(verdict.node['nodes'])} BMCs (Redfish, sushy-static), {verdict.node['hours']} "
                  "node-hours; over [S, E], from the exporters' counters:",
                  f"{'node':<8} {'BMC':<8} {'node':>14} {'GPU boards':>14} {'RAPL':>12} {'residual':>14} "
                  f"{'jobs':>12} {'node idle':>12} {'BMC model overhead':>20}"]
        for name, r in verdict.node["nodes"].items():
            jobs = sum(r["shares_j"].values())
            lines.append(f"{name:<8} {r['bmc']:<8} {kj(r['node_j']):>14} {kj(r['gpu_j']):>14} {kj(r['rapl_j']):>12} "
                         f"{kj(r['residual_j']):>14} {kj(jobs):>12} {kj(r['idle_j']):>12} "
                         f"{kj(r['overhead_j']):>20}")
        lines.append("(BMC model overhead: what the BMC's model put in beside the GPUs and RAPL by the wall clock, the "
                     "fans' 450 W and the PSUs' losses; shown for scale, not checked)")
    for (node, gpu), b in verdict.shared.get("mig", {}).items():
        lines += ["", f"MIG board {node} GPU {gpu}: {kj(b['board_j'])} = instances + unpartitioned slice "
                  f"{kj(b['unpartitioned_j'])}; board idle {kj(b['idle_j'])}"]
        for gi, i in sorted(b["instances"].items()):
            jobs = ", ".join(f"job {j} {kj(v)}" for j, v in i["jobs_j"].items()) or "no job"
            lines.append(f"  instance {gi} {i['profile']:<8} {kj(i['energy_j']):>14}: {jobs}, "
                         f"idle {kj(i['idle_j'])}")
    if verdict.shared.get("pods"):
        lines += ["", "Kubernetes pods (PodResources allocations):"]
        for uid, p in verdict.shared["pods"].items():
            lines.append(f"  {p['pod']:<16} GPU {p['gpu']} ({p['device']:<4}) {kj(p['energy_j']):>12} of GPU "
                         f"{kj(p['gpu_j'])}; held idle {kj(p['held_idle_j'])}; "
                         f"held {p['seconds']:.1f} s, equal share {p['equal_share_seconds']:.1f} s  ({uid})")
    for a in verdict.shared.get("alerts", []):
        lines.append(f"{HELD_IDLE_ALERT} firing for pod {a['job_id']} {a['after_s']:.0f} s after it was allocated; "
                     f"also firing for: {', '.join(j for j in verdict.shared['firing'] if j != a['job_id']) or 'none'}")
    worst = max((rel(a, c) for a, _, c in verdict.gpus.values()), default=0.0)
    lines.append(f"conservation: {len(verdict.gpus)} GPUs, worst |fct jobs + idle - GPU| / GPU = {worst:.2e}")
    lines.append("")
    lines += [f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in verdict.checks]
    lines += [f"note: {n}" for n in ref.notes]
    return "\n".join(lines)
