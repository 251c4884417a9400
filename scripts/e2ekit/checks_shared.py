"""The checks of the shared GPUs: the MIG board's instances, the Kubernetes pods, the held-idle alert."""


from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import duckdb

from wattprint.pipeline.db import duckdb_config

from .pages import Reference, mj, uj
from .pipeline import Outcome
from .plan import HELD_IDLE_ALERT, RULE_TIME_SCALE, GpuKey, Job, Plan, SeriesKey


def check_shared(plan: Plan, ref: Reference, out: Outcome, add: Any) -> dict[str, Any]:
    """The MIG node's instances and the Kubernetes node's pods over [S, E], from the exporters' counters (mJ and
    µs: exact), the pods in the ledger, and the held-idle alert."""
    def inc(key: SeriesKey) -> int:      # mJ
        return mj(ref.at_end.get(key, 0.0)) - mj(ref.at_start.get(key, 0.0))

    def inc_us(key: SeriesKey) -> int:
        return uj(ref.at_end.get(key, 0.0)) - uj(ref.at_start.get(key, 0.0))

    def job_key(job: Job) -> SeriesKey | None:
        return next((k for k in ref.keys("job") if (k[1], k[2], k[5]) == (job.cluster, job.node, job.job_id)), None)

    shared: dict[str, Any] = {"mig": {}, "pods": {}, "alerts": []}
    for node in (n for n in plan.nodes if n.kind == "mig"):
        add(f"{node.name} pages: per MIG instance jobs + idle == instance; board idle == instances' idle + "
            "unpartitioned part; instances <= board, in mJ", ref.mig_pages > 0 and not ref.mig_errors,
            f"{ref.mig_pages} pages" + (": " + "; ".join(ref.mig_errors[:5]) if ref.mig_errors else ""))
        mapping = plan.mapping(node.name, "before")
        for board in (k for k in ref.keys("gpu") if k[2] == node.name):
            g = board[1:5]
            inst = {k[5]: inc(k) for k in ref.keys("inst") if k[1:5] == g}
            idle = {gi: inc(("inst_idle", *g, gi)) for gi in inst}
            jobs = {gi: {j: inc(("job", *g, j)) for j in mapping.get(f"{g[2]}.{gi}", [])} for gi in inst}
            b, b_idle = inc(board), inc(("idle", *g, ""))
            unpartitioned = b - sum(inst.values())
            want = {str(k + 1) for k in range(len(node.mig))}
            bad = [] if set(inst) == want else [f"instances {sorted(inst)}, expected {sorted(want)}"]
            for gi, e in sorted(inst.items()):
                charged = sum(jobs[gi].values())
                if charged + idle[gi] != e:
                    bad.append(f"instance {gi}: jobs {charged} + idle {idle[gi]} mJ != {e} mJ")
                if jobs[gi] and (idle[gi] != 0 or len(jobs[gi]) != 1 or charged != e):
                    bad.append(f"instance {gi}: its one job {charged} mJ != its energy {e} mJ (idle {idle[gi]} mJ)")
                if not jobs[gi] and not (idle[gi] == e > 0):
                    bad.append(f"instance {gi} holds no job: idle {idle[gi]} mJ != its energy {e} mJ (> 0)")
            if not (0 < unpartitioned and b_idle == sum(idle.values()) + unpartitioned):
                bad.append(f"board {b} mJ, idle {b_idle} mJ: instances' idle {sum(idle.values())} mJ + unpartitioned "
                           f"{unpartitioned} mJ")
            add(f"{node.name} GPU {g[2]} over [S, E]: each instance == its job (or its idle, none on the 2g), the "
                "unpartitioned slice's part (board - instances) is in the board's idle, in mJ", not bad,
                "; ".join(bad) or ", ".join(f"{gi} {node.mig[int(gi) - 1]} {e / 1000:.3f} J" for gi, e in
                                             sorted(inst.items())) + f", unpartitioned {unpartitioned / 1000:.3f} J, "
                f"board {b / 1000:.3f} J")
            shared["mig"][(node.name, g[2])] = {
                "board_j": b / 1000, "idle_j": b_idle / 1000, "unpartitioned_j": unpartitioned / 1000,
                "instances": {gi: {"profile": node.mig[int(gi) - 1], "energy_j": e / 1000, "idle_j": idle[gi] / 1000,
                                   "jobs_j": {j: v / 1000 for j, v in jobs[gi].items()}} for gi, e in inst.items()}}

    # pods: a pod holding a whole GPU is charged all of it, held idle; replicas of one GPU split it equally
    by_gpu: dict[GpuKey, list[tuple[Job, SeriesKey]]] = defaultdict(list)
    missing = []
    for j in plan.pods:
        k = job_key(j)
        if k is None:
            missing.append(j.job_id)
        else:
            by_gpu[k[1:5]].append((j, k))
    for g, pods in sorted(by_gpu.items()):
        gpu_e, gpu_idle = inc(("gpu", *g, "")), inc(("idle", *g, ""))
        energy = {j.job_id: inc(k) for j, k in pods}
        seconds = {j.job_id: inc_us(("job_seconds", *k[1:])) for j, k in pods}
        bad = [] if gpu_idle == 0 and sum(energy.values()) == gpu_e > 0 else \
            [f"pods {sum(energy.values())} mJ, GPU {gpu_e} mJ, GPU idle {gpu_idle} mJ"]
        if len(pods) == 1:
            (j, k), = pods
            what = f"{g[1]} GPU {g[2]}, held by pod {'/'.join(j.pod or ())} with no process: it is charged the " \
                   "GPU's energy (idle 0), all of it held idle, in mJ and µs"
            held_e, held_s = inc(("held_idle", *k[1:])), inc_us(("held_idle_seconds", *k[1:]))
            if not (held_e == energy[j.job_id] and held_s == seconds[j.job_id] > 0):
                bad.append(f"held idle {held_e} mJ over {held_s} µs, charged {energy[j.job_id]} mJ over "
                           f"{seconds[j.job_id]} µs")
        else:
            s_polls, e_polls = ref.edge_polls.get(g[1], (0, 0))
            what = f"{g[1]} GPU {g[2]}, time-slicing replicas held by {len(pods)} pods: they split it equally " \
                   "(within 1 mJ per poll), every second of it counted as an equal share, idle 0"
            equal = {j.job_id: inc_us(("equal_seconds", *k[1:])) for j, k in pods}
            if max(energy.values()) - min(energy.values()) > e_polls - s_polls:
                bad.append(f"shares {sorted(energy.values())} mJ differ by more than 1 mJ per poll "
                           f"({e_polls - s_polls} polls)")
            if any(not (equal[j] == seconds[j] > 0) for j in equal):
                bad.append(f"equal-share µs {equal} != held µs {seconds}")
        add(what, not bad, "; ".join(bad) or ", ".join(f"{j} {v / 1000:.3f} J" for j, v in energy.items())
            + f" of GPU {gpu_e / 1000:.3f} J")
        for j, k in pods:
            shared["pods"][j.job_id] = {"pod": "/".join(j.pod or ()), "gpu": g[2], "device": j.device,
                                       "energy_j": energy[j.job_id] / 1000, "gpu_j": gpu_e / 1000,
                                       "held_idle_j": inc(("held_idle", *k[1:])) / 1000,
                                       "seconds": seconds[j.job_id] / 1e6,
                                       "equal_share_seconds": inc_us(("equal_seconds", *k[1:])) / 1e6}
    if plan.pods:
        add("every pod has a counter on the GPU the kubelet allocated it", not missing, f"missing {missing}")
        with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
            ledger = {(c, j): (p, ph) for c, j, p, ph in con.execute(
                "SELECT cluster, job_id, project, phase FROM jobs WHERE source = 'kubernetes'").fetchall()}
        want = {(j.cluster, j.job_id): (j.project, j.phase) for j in plan.pods}
        add("pods in the ledger from kube-state-metrics (`jobs sync-kubernetes`): UID, project, phase", ledger == want,
            f"ledger {sorted(ledger.items())}, expected {sorted(want.items())}" if ledger != want
            else f"{len(ledger)} pods")

    # WattprintJobHoldingIdleGpus, live: the real rules scaled in time fire for the pod holding an idle GPU
    firing = {a["labels"].get("job_id"): a for a in ref.alerts}
    for j in (p for p in plan.pods if "::" not in p.device):
        a = firing.get(j.job_id)
        labels = a["labels"] if a else {}
        desc = a["annotations"].get("description", "") if a else ""
        ok = bool(a) and labels.get("hostname") == j.node and labels.get("cluster") == j.cluster \
            and "project" not in labels and "no project in the ledger" in desc
        fired = a["firing_seen"] - ref.kube_started if a else math.nan
        add(f"{HELD_IDLE_ALERT} fires live for the idle-held pod (rules scaled 1/{RULE_TIME_SCALE} in time)", ok,
            f"firing {fired:.0f} s after the pod was allocated (the GPU-seconds threshold, then `for:`); "
            f"labels {labels}" if a else f"not firing; seen: {sorted(firing)}")
        if a:
            shared["alerts"].append({"job_id": j.job_id, "after_s": fired, "labels": labels, "description": desc})
    shared["firing"] = sorted(k for k in firing if k)
    return shared
