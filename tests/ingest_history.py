"""A known 4-hour history of exporter and dcgm-exporter series, with the energy each job truly used.

Scrapes every 15 s from 2024-03-01T00:00Z. Host n1 runs wattprint's exporter (cluster label c1):
GPU 0 runs job 1001 from 00:30:20 to 02:10:00 at 300 W (its counter first appears inside the window),
GPU 1 runs a job with a hostile id from before the window until 03:00 at 200 W; idle GPUs draw 70 W.
The exporter restarts at 02:30 (every counter starts again from 0) and is not scraped from 03:10 to
03:30 (a gap). Host n2 runs dcgm-exporter (millijoules since driver load): GPU 0 at 250 W labelled
hpc_job 77 until 02:00 then 78; GPU 1 at 100 W with no job label. `cpu_samples()`: n1's host (RAPL) series
from the same exporter.
"""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
END = T0 + 4 * 3600
SCRAPE = 15
WEIRD_JOB = 'we"ird\\job;DROP TABLE jobs;--é漢'
RESTART = T0 + 2.5 * 3600
GAP = (T0 + 3 * 3600 + 600, T0 + 3.5 * 3600)
IDLE_W = 70.0

JOB_1001 = (T0 + 1820, T0 + 2 * 3600 + 600, 300.0)        # start, end, watts on n1 GPU 0
JOB_WEIRD = (T0 - 25.0, T0 + 3 * 3600, 200.0)              # started 25 s before the window (5000 J at T0)

# Energy used inside [T0, END], from the definitions above (not from any counter)
TRUTH_J = {
    ("n1", "0", "1001"): JOB_1001[2] * (JOB_1001[1] - JOB_1001[0]),
    ("n1", "1", WEIRD_JOB): JOB_WEIRD[2] * (JOB_WEIRD[1] - T0),
    ("n1", "0", None): IDLE_W * ((JOB_1001[0] - T0) + (END - JOB_1001[1])),
    ("n1", "1", None): IDLE_W * (END - JOB_WEIRD[1]),
}
DCGM_TOTAL_J = {"0": 250.0 * 4 * 3600, "1": 100.0 * 4 * 3600}


def _energy(power_w: float, since: float, t: float, start: float, end: float) -> float:
    """Energy of a load drawing power_w over [start, end), counted from `since`, at time t."""
    lo, hi = max(start, since), min(end, t)
    return power_w * max(0.0, hi - lo)


def samples() -> list[tuple[str, dict[str, str], float, float]]:
    out: list[tuple[str, dict[str, str], float, float]] = []
    t = T0
    exporter_start = T0 - 1000.0
    while t <= END + 1e-9:
        scraped = not (GAP[0] < t < GAP[1])
        # the scrape at RESTART still reads the old process; the new one counts from RESTART
        since = exporter_start if t <= RESTART else RESTART
        if scraped:
            for gpu, job, (js, je, jw) in (("0", "1001", JOB_1001), ("1", WEIRD_JOB, JOB_WEIRD)):
                base = {"cluster": "c1", "hostname": "n1", "gpu": gpu, "uuid": f"GPU-n1-{gpu}", "model": "H100",
                        "instance": "n1:9835", "job": "wattprint"}
                job_j = _energy(jw, since, t, js, je)
                idle_j = _energy(IDLE_W, since, t, since, min(t, js)) + _energy(IDLE_W, since, t, je, END + 1)
                out.append(("wattprint_gpu_idle_energy_joules_total", base, t, idle_j))
                out.append(("wattprint_gpu_energy_joules_total", base, t, idle_j + job_j))
                # the exporter shows a job's counter once the job has been seen, until it restarts
                seen = js <= t and (t <= RESTART or js >= RESTART or je > RESTART)
                if seen and (t >= js + SCRAPE / 2 or js < T0):
                    out.append(("wattprint_job_energy_joules_total", {**base, "job_id": job}, t, job_j))
        for gpu, watts in (("0", 250.0), ("1", 100.0)):
            labels = {"Hostname": "n2", "gpu": gpu, "UUID": f"GPU-n2-{gpu}", "device": f"nvidia{gpu}",
                      "instance": "n2:9400", "job": "dcgm"}
            if gpu == "0":
                labels["hpc_job"] = "77" if t < T0 + 2 * 3600 else "78"
            mj = 7e9 + watts * (t - T0) * 1000
            out.append(("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", labels, t, mj))
            out.append(("DCGM_FI_DEV_POWER_USAGE", labels, t, watts))
        t += SCRAPE
    return out


# Host n1's RAPL and cgroup series from the same exporter (same scrapes, restart and gap): one socket, package at
# 150 W and DRAM at 20 W; job 1001 has 25 % of the node's CPU time while it runs, the hostile-id job 12.5 %.
CPU_W = {"package": 150.0, "dram": 20.0}
CPU_SHARE = {"1001": (JOB_1001, 0.25), WEIRD_JOB: (JOB_WEIRD, 0.125)}
NODE_CORES = 112
# inside [T0, END]: each job's share of each domain's energy, and its CPU seconds
CPU_TRUTH_J = {(job, domain): w * share * (min(je, END) - max(js, T0))
               for job, ((js, je, _), share) in CPU_SHARE.items() for domain, w in CPU_W.items()}
CPU_TRUTH_J.update({(None, domain): w * (END - T0) - sum(CPU_TRUTH_J[(j, domain)] for j in CPU_SHARE)
                    for domain, w in CPU_W.items()})
CPU_TRUTH_S = {job: NODE_CORES * share * (min(je, END) - max(js, T0))
               for job, ((js, je, _), share) in CPU_SHARE.items()}
CPU_MODEL = "Intel(R) Xeon(R) Platinum 8480+"


def cpu_samples() -> list[tuple[str, dict[str, str], float, float]]:
    out: list[tuple[str, dict[str, str], float, float]] = []
    t = T0
    exporter_start = T0 - 1000.0
    host = {"cluster": "c1", "hostname": "n1", "instance": "n1:9835", "job": "wattprint"}
    while t <= END + 1e-9:
        if not (GAP[0] < t < GAP[1]):
            since = exporter_start if t <= RESTART else RESTART
            out.append(("wattprint_cpu_rapl_up", host, t, 1.0))
            for domain, w in CPU_W.items():
                labels = {**host, "socket": "0", "domain": domain, "model": CPU_MODEL}
                total = w * (t - since)
                jobs = {job: share * _energy(w, since, t, js, je) for job, ((js, je, _), share) in CPU_SHARE.items()}
                out.append(("wattprint_cpu_energy_joules_total", labels, t, total))
                out.append(("wattprint_cpu_idle_energy_joules_total", labels, t, total - sum(jobs.values())))
                for job, ((js, je, _), _share) in CPU_SHARE.items():
                    seen = js <= t and (t <= RESTART or js >= RESTART or je > RESTART)
                    if seen and (t >= js + SCRAPE / 2 or js < T0):
                        out.append(("wattprint_job_cpu_energy_joules_total", {**labels, "job_id": job}, t, jobs[job]))
                        if domain == "package":
                            out.append(("wattprint_job_cpu_seconds_total", {**host, "job_id": job}, t,
                                        NODE_CORES * jobs[job] / w))
        t += SCRAPE
    return out
