#!/usr/bin/env python3
"""The live stack, end to end: replay exporters → a real Prometheus → `wattprint ingest` → `wattprint report`.

    scripts/e2e.py [--seconds 120] [--nodes 3] [--gpus-per-node 4] [--scrape-interval 1] [--out DIR] [--keep]

What it does (docs/operations.md, "End to end"):

1. Writes a cluster config (clusters jean-zay, zone FR, PUE 1.2, and aws-usw2, zone aws:us-west-2, PUE 1.1) and
   one job-mapping directory per virtual node: a multi-GPU job per node, a GPU shared by a ledger job and a job
   missing from the ledger, a GPU whose job ends mid-run and another starts after a few idle seconds, idle GPUs.
   Two more nodes share GPUs: `mig-1`, one board in MIG mode (`--replay-mig 3g.40gb,2g.20gb,1g.10gb`) with jobs
   by `<gpu>.<GPU_I_ID>` files on the 3g and the 1g instance, none on the 2g; and `kube-1` (`--job-discovery
   kubernetes`), whose pods come from a real gRPC server of the kubelet's PodResources v1 API on a unix socket and
   the pod log directory, replaying the shipped trace's idle start: a pod holds GPU 0 and runs nothing on it, two
   pods hold time-slicing replicas of GPU 1.
   The first and the last node get a BMC: a real Redfish server (sushy-static) each, whose readings a thread keeps
   to the node's wall power (GPUs + RAPL + 450 W, through 94 %-efficient supplies); node-1's reads the whole node
   (an EnergyJoules counter), the last node's one of its four power supplies (a quarter: below its GPUs).
2. Starts one `wattprint-exporter --backend replay` per node (real H100 trace; each node its own `--hostname`, so
   its own GPU UUIDs, and its own `--replay-epoch`, so nodes draw different power), `wattprint serve-intensity
   --source annual`, a page of kube-state-metrics' pod series, and a real Prometheus scraping them all (own data
   dir, free loopback ports) and evaluating the real rule files scaled in time (1 h -> 1 min) every second.
3. Picks the window [S, E] on the ingest step grid once every target is up, changes the jobs on one GPU in the
   middle, and meanwhile reads every exporter's /metrics itself every 0.1 s.
4. Runs the real CLI: `wattprint jobs import` (the ledger CSV), `wattprint jobs sync-kubernetes` (the pods, from
   kube-state-metrics' series), `wattprint ingest --start S --end E`, and
   `wattprint report` (JSON and Markdown) for each project and for all projects, over the whole UTC hours
   around the window.
5. Checks, and exits 1 naming what failed:
   * per project, the report's GPU energy against the exporters' own per-job counters over [S, E], within 1 %
     (and per job, from the DuckDB results);
   * conservation: jobs + idle == GPU energy, exactly in millijoules on every exporter page read, and within
     1e-6 (relative) per GPU in `fct_job_gpu_hour` against the exporters' GPU counters; and no GPU-hour of the
     model's reconciliation (`fct_gpu_hour`) differs from its counter;
   * the all-projects report's reconciliation: fleet = projects + not in ledger + idle, and fleet = the
     exporters' GPU counters (1 %);
   * MIG, exactly in mJ on every page and over [S, E]: each instance = its jobs + its idle, the board's idle = the
     instances' idle + the unpartitioned slice's part; the 2g instance all idle, each job = its instance;
   * Kubernetes, exactly: the pod holding idle GPU 0 is charged all of it (idle 0), all of it held idle; the
     replica pods split GPU 1 equally (1 mJ per poll), all their held time counted as equal shares; the pods reach
     the ledger from kube-state-metrics; `WattprintJobHoldingIdleGpus` fires for the idle-held pod.
   * node power, exactly in decimals per node-hour: GPU + RAPL + residual == node energy, every layer's rows on
     the node == node energy less any deficit, node jobs + node idle == the residual; the node energy and the
     residual against the exporters' BMC, GPU and RAPL counters (1e-6); each job's share by allocated GPU-seconds
     (1 %); the one-PSU node flagged in the report's data quality in each of its hours.

The exporters' counters at S and E are the pages the exporters served at the polls Prometheus holds at S and E
(matched on `wattprint_exporter_polls_total`): reading them at wall-clock S and E instead would differ from
any scrape-based figure by up to one scrape interval of power at each end (a few % of a 30 s window).

Exit status: 0 every check passed, 1 a check failed, 2 the stack could not run (Prometheus missing, a process
that would not start, a CLI step that failed). After a failure the work directory (logs, Prometheus data, DuckDB
file, reports) is kept and named.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import requests

# e2ekit/ beside this file, and the repository (servers from tests/: the kubelet's PodResources, the BMCs)
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from e2ekit.checks import check  # noqa: E402
from e2ekit.pipeline import run_pipeline  # noqa: E402
from e2ekit.plan import StackError, Window, config_yaml, ledger_csv, make_plan  # noqa: E402
from e2ekit.procs import idle_trace, ksm_page, scaled_rules  # noqa: E402
from e2ekit.stack import Stack  # noqa: E402
from e2ekit.summary import summary  # noqa: E402

# the parts tests/test_e2e.py drives
__all__ = ["Stack", "Window", "check", "config_yaml", "idle_trace", "ksm_page", "ledger_csv", "main", "make_plan",
           "run_pipeline", "scaled_rules", "summary"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=120, help="length of the scraped window (default 120)")
    ap.add_argument("--nodes", type=int, default=3, help="virtual nodes, one exporter each (default 3)")
    ap.add_argument("--gpus-per-node", type=int, default=4, help="virtual GPUs per node (default 4)")
    ap.add_argument("--scrape-interval", type=float, default=1.0, help="Prometheus scrape interval, s (default 1)")
    ap.add_argument("--out", type=Path, help="work directory (kept); default: a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    a = ap.parse_args(argv)
    if a.seconds < 10 or a.scrape_interval <= 0 or a.scrape_interval > 5:
        ap.error("--seconds must be at least 10, --scrape-interval in (0, 5]")
    try:
        plan = make_plan(a.nodes, a.gpus_per_node)
    except ValueError as exc:
        ap.error(str(exc))
    if not shutil.which("prometheus"):
        print("e2e: prometheus not found on PATH: run `make e2e` as root (it installs Debian's prometheus), or "
              "apt-get install --no-install-recommends prometheus", file=sys.stderr)
        return 2
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        work = a.out.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="wattprint-e2e-"))
    print(f"e2e: work directory {work}", flush=True)
    try:
        with Stack(plan, work, seconds=a.seconds, scrape_interval=a.scrape_interval,
                   log=lambda m: print(m, flush=True)) as stack:
            print(f"stack up: exporters {', '.join(f'{n}={i}' for i, n in stack.exporters.items())}, "
                  f"Prometheus {stack.prometheus_url}", flush=True)
            ref = stack.run()
            assert stack.window is not None
            out = run_pipeline(work / "pipeline", stack.prometheus_url, plan, stack.window)
            ref.alerts = stack.held_idle_alerts()
        verdict = check(plan, ref, out)
    except (StackError, requests.RequestException) as exc:
        print(f"e2e: cannot run the stack: {exc}\ne2e: logs and data kept in {work}", file=sys.stderr)
        return 2
    print(summary(plan, stack, ref, out, verdict))
    if verdict.failures:
        print(f"\ne2e: FAILED: {len(verdict.failures)} check(s):", file=sys.stderr)
        for c in verdict.failures:
            print(f"  {c.name}: {c.detail}", file=sys.stderr)
        print(f"e2e: logs, database and reports kept in {work}", file=sys.stderr)
        return 1
    if a.out or a.keep:
        print(f"reports in {work / 'pipeline' / 'reports'}: " + ", ".join(p.name for p in out.files))
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ne2e: ok, {len(verdict.checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
