"""The live stack end to end (scripts/e2e.py, `make e2e`), short: 2 replay exporters x 2 GPUs, serve-intensity and
a real Prometheus scraping them every second for 30 s, then the real `wattprint jobs import`, `ingest` and
`report`. The project energy in the reports must equal the exporters' per-job counters over the window within
1 %, and jobs + idle must equal GPU energy (exactly in mJ at the exporter, within 1e-6 in the DuckDB results).

The same stack is ingested again with a ledger that gives one job to the wrong project, and with a config whose
idle and GPU metrics match nothing: each must fail exactly the checks it breaks, so the checks can fail. Without the
idle series alone, the GPU counters still hold that energy: every check passes and the report says so.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO, require_tool

SCRIPT = REPO / "scripts" / "e2e.py"


def load_e2e() -> ModuleType:
    if "wattprint_e2e" in sys.modules:
        return sys.modules["wattprint_e2e"]
    spec = importlib.util.spec_from_file_location("wattprint_e2e", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


e2e = load_e2e()


# -- the plan and the flags (no servers) -------------------------------------------------------------------


def test_default_plan_has_every_role():
    plan = e2e.make_plan(3, 4)
    assert [(n.name, n.cluster) for n in plan.nodes] == [
        ("node-1", "jean-zay"), ("node-2", "jean-zay"), ("node-3", "aws-usw2")]
    assert len({n.epoch for n in plan.nodes}) == 3, "nodes must draw different power"
    busy = {(j.node, g) for j in plan.jobs for g in j.gpus}
    assert 0 < len(busy) < 12, "some GPUs idle"
    on_gpu: dict[tuple[str, str], list[str]] = {}
    for j in plan.jobs:
        if j.when != "starts":
            for g in j.gpus:
                on_gpu.setdefault((j.node, g), []).append(j.job_id)
    assert any(len(ids) == 2 for ids in on_gpu.values()), "one GPU shared by two jobs"
    assert {j.when for j in plan.jobs} == {"whole", "ends", "starts"}
    assert any(j.project is None for j in plan.jobs), "a job missing from the ledger"
    assert any(len(j.gpus) > 1 for j in plan.jobs), "a multi-GPU job"
    assert plan.projects == ["bloom", "idefics", "starcoder"]
    assert any(len({j.cluster for j in plan.jobs if j.project == p}) == 2 for p in plan.projects)
    small = e2e.make_plan(2, 2)  # the test's stack: each project on both clusters
    for p in small.projects:
        assert {j.cluster for j in small.jobs if j.project == p} == {"jean-zay", "aws-usw2"}, p
    # the switch: before, between (the GPU idles) and after
    (ends,) = [j for j in plan.jobs if j.when == "ends"]
    (starts,) = [j for j in plan.jobs if j.when == "starts"]
    assert ends.gpus == starts.gpus and ends.node == starts.node
    g = ends.gpus[0]
    assert plan.mapping(ends.node, "before")[g] == [ends.job_id]
    assert g not in plan.mapping(ends.node, "between")
    assert plan.mapping(ends.node, "after")[g] == [starts.job_id]


def test_bad_flags_exit_2(capsys):
    for argv in (["--nodes", "1", "--gpus-per-node", "2"], ["--seconds", "3"], ["--scrape-interval", "0"]):
        with pytest.raises(SystemExit) as exc:
            e2e.main(argv)
        assert exc.value.code == 2, argv
    assert "at least 4 GPUs" in capsys.readouterr().err


# -- the live stack ----------------------------------------------------------------------------------------

SECONDS = 30


@dataclass
class Live:
    plan: Any
    stack: Any
    ref: Any
    work: Path

    def pipeline(self, name: str, **kw: Any) -> tuple[Any, Any]:
        out = e2e.run_pipeline(self.work / name, self.stack.prometheus_url, self.plan, self.stack.window, **kw)
        return out, e2e.check(self.plan, self.ref, out)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_tool("prometheus")
    work = tmp_path_factory.mktemp("e2e")
    plan = e2e.make_plan(2, 2)
    with e2e.Stack(plan, work, seconds=SECONDS, scrape_interval=1.0, log=print) as stack:
        ref = stack.run()
        yield Live(plan, stack, ref, work)  # Prometheus stays up: the pipeline runs against it


def failed(verdict: Any) -> set[str]:
    return {c.name for c in verdict.failures}


@pytest.mark.slow
def test_reports_equal_the_exporters_counters(live):
    out, verdict = live.pipeline("ok")
    assert not verdict.failures, "\n".join(f"{c.name}: {c.detail}" for c in verdict.failures)
    w = live.stack.window
    assert w.end - w.start == SECONDS and w.start % 5 == 0
    assert out.samples >= out.series * (SECONDS // 5) > 0

    # exporter side: pages read directly, every one conserving in mJ, and what Prometheus stored is what they served
    assert live.ref.pages_checked >= 2 * SECONDS // 2
    assert live.ref.conservation_errors == [] and live.ref.prometheus_mismatches == []

    # per project: the report's GPU energy against the exporters' per-job counters, 1 %
    assert set(verdict.projects) == {"idefics", "bloom"}
    for project, (report_j, exporter_j) in verdict.projects.items():
        assert exporter_j > SECONDS * 50, project  # an H100 draws well over 50 W
        assert abs(report_j - exporter_j) <= 0.01 * exporter_j, project
    for job, (fct_j, exporter_j) in verdict.jobs.items():
        assert abs(fct_j - exporter_j) <= 0.01 * exporter_j, job

    # the switch: the job that ended stopped counting, the one that started began at 0 inside the window
    (ends,) = [j for j in live.plan.jobs if j.when == "ends"]
    (starts,) = [j for j in live.plan.jobs if j.when == "starts"]
    start_keys = {(k[1], k[5]) for k in live.ref.at_start if k[0] == "job"}
    assert (ends.cluster, ends.job_id) in start_keys and (starts.cluster, starts.job_id) not in start_keys
    assert verdict.jobs[(starts.cluster, starts.job_id)][1] > 0

    # conservation: per GPU, jobs + idle == GPU energy in fct_job_gpu_hour (1e-6) and in the DuckDB GPU counter
    assert len(verdict.gpus) == 4
    for gpu, (fct_j, db_gpu_j, exporter_gpu_j) in verdict.gpus.items():
        assert fct_j == pytest.approx(exporter_gpu_j, rel=1e-6), gpu
        assert db_gpu_j == pytest.approx(exporter_gpu_j, rel=1e-6), gpu
    idle_gpu = [g for g in verdict.gpus if (g[1], g[2]) not in {(j.node, x) for j in live.plan.jobs for x in j.gpus}]
    assert len(idle_gpu) == 1

    # the fleet reconciles to the exporters' GPU counters
    f = verdict.fleet
    parts = f["projects_energy_kwh"] + f["not_in_ledger_kwh"] + f["idle_apportioned_kwh"] + f["idle_unapportioned_kwh"]
    assert parts == pytest.approx(f["fleet_energy_kwh"], rel=1e-6)
    assert f["fleet_energy_kwh"] == pytest.approx(f["exporters_gpu_j"], rel=0.01)
    assert f["not_in_ledger_kwh"] == pytest.approx(f["exporters_not_in_ledger_j"], rel=0.01)
    assert f["not_in_ledger_kwh"] > 0
    assert f["idle_apportioned_kwh"] > 0

    # host energy: every node's two sockets (package, DRAM) through RAPL with wraps, split by cgroup CPU time;
    # per project the report's CPU energy and CPU hours equal the exporters' per-job counters (checked above, 1 %)
    cpu = verdict.cpu
    assert len(cpu["sockets_j"]) == 2 * 2 * 2
    assert all(v > 0 for v in cpu["sockets_j"].values())
    assert set(cpu["projects"]) == {"idefics", "bloom"}
    for project, (report_j, exporter_j) in cpu["projects"].items():
        assert exporter_j > 0 and abs(report_j - exporter_j) <= 0.01 * exporter_j, project
    assert all(s > 0 for s in cpu["jobs_s"].values())
    assert live.ref.rapl_wraps > 0    # the counters wrapped during the run, and every check above still held

    # the reports were written in both formats
    names = sorted(p.name for p in out.files)
    assert names == sorted(f"{n}.{x}" for n in ("idefics", "bloom", "all-projects") for x in ("json", "md"))
    assert "idefics" in (live.work / "ok" / "reports" / "idefics.md").read_text()


@pytest.mark.slow
def test_a_job_given_to_the_wrong_project_fails(live):
    (job,) = [j for j in live.plan.jobs if j.project == "idefics" and j.when == "whole"]
    ledger = e2e.ledger_csv(live.plan, live.stack.window, project_of={job.job_id: "bloom"})
    _, verdict = live.pipeline("misassigned", ledger_text=ledger, formats=("json",))
    assert failed(verdict) == {
        "project idefics: report energy == exporters' job counters (1 %)",
        "project bloom: report energy == exporters' job counters (1 %)",
        "project idefics: report CPU energy and CPU hours == exporters' job counters (1 %)",
        "project bloom: report CPU energy and CPU hours == exporters' job counters (1 %)",
    }
    got, expected = verdict.projects["idefics"]
    assert got < 0.99 * expected


@pytest.mark.slow
def test_dropping_the_idle_and_gpu_series_fails(live):
    config = e2e.config_yaml(live.plan, idle_metric="wattprint_no_such_metric_total",
                             gpu_metric="wattprint_no_such_gpu_metric_total")
    _, verdict = live.pipeline("no-idle", config_text=config, formats=("json",))
    assert failed(verdict) == {
        "fct_job_gpu_hour: per GPU, jobs + idle == GPU energy (1e-6)",
        "all-projects report: fleet == exporters' GPU counters (1 %)",
    }


@pytest.mark.slow
def test_without_the_idle_series_the_gpu_counters_keep_every_joule(live):
    """The GPU counter holds what no job or idle counter does: it is priced (unallocated) and said, never lost."""
    config = e2e.config_yaml(live.plan, idle_metric="wattprint_no_such_metric_total")
    out, verdict = live.pipeline("no-idle-only", config_text=config, formats=("json",))
    assert failed(verdict) == set()
    counters = out.fleet["data_quality"]["gpu_counters"]
    assert counters["residual_kwh"] > 0 and counters["difference_gpu_hours"] == 0
    assert any("in no job or idle counter" in w for w in out.fleet["data_quality"]["warnings"])
