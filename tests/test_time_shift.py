"""The time-shift what-if (report/timeshift.py) on the known fleet of tests/reportkit.py: each phase's and top job's
hourly energy started 0-24 h later in its own zone, priced with the model's intensity rule, the cleanest start among
those priced from measured intensity. Expected values come from the generator's parameters alone (reportkit's
intensity shape, its two missing hours, its three days of data), not from SQL."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from tests import reportkit
from wattprint.pipeline.report.scope import ReportOptions, build_scope, rates
from wattprint.pipeline.report.timeshift import time_shift
from wattprint.pipeline.report.window import month
from wattprint.pipeline.settings import load_settings

HOURS = reportkit.END_MIN // 60        # the hours with stored intensity: 0 .. 71 after T0


def _scope(fleet, **kw) -> tuple[duckdb.DuckDBPyConnection, object, ReportOptions]:
    path, cfg = fleet
    con = duckdb.connect(str(path), read_only=True)
    settings = load_settings(str(cfg))
    o = ReportOptions(window=month("2024-03"), generated_at=datetime(2024, 4, 1), **kw)
    rates(con, settings, o)
    build_scope(con, o, o.window)
    return con, settings, o


def measured_intensity(zone: str, hour: int) -> tuple[float, bool]:
    """What the model's rule gives a moved hour: stored (or the nearest within 3 h) inside the data, else a
    fallback (not measured)."""
    if 0 <= hour < HOURS:
        g, _ = reportkit.resolved_intensity(zone, hour)
        return g, True
    for d in (1, 2, 3):                 # the nearest stored hour within the bound, past the end of the data
        for cand in (hour - d, hour + d):
            if 0 <= cand < HOURS and cand not in reportkit.MISSING_HOURS.get(zone, ()):
                return reportkit.intensity(zone, cand), True
    return float("nan"), False


def test_a_gpu_only_job_moved_to_its_cleanest_start(report_fleet) -> None:
    """p1 (pretraining, all four GPUs of ip-10-0-0-1): GPU energy only (no cpu, no idle layer), times PUE."""
    con, settings, o = _scope(report_fleet, project="idefics", phases=("pretraining",), layers=("gpu", "pue"))
    ts = time_shift(con, settings, o, slack_hours=24)
    job = next(j for j in reportkit.JOBS if j.job_id == "p1")
    zone, pue = reportkit.ZONE[job.cluster], reportkit.PUE[job.cluster]
    hourly: dict[int, float] = {}
    for m in range(job.start_min, job.end_min, reportkit.STEP_MIN):
        hourly[m // 60] = hourly.get(m // 60, 0.0) + job.watts * reportkit.STEP_MIN * 60 * len(job.gpus)
    grams = {}
    for s in range(0, 25):
        priced = [measured_intensity(zone, h + s) for h in hourly]
        if all(ok for _, ok in priced):
            grams[s] = sum(e * pue / 3.6e6 * g for (e, (g, _)) in zip(hourly.values(), priced, strict=True))
    best = min(grams, key=lambda s: (grams[s], s))
    (opt,) = [j for j in ts.jobs if j.job_id == "p1"]
    assert opt.actual_kg == pytest.approx(grams[0] / 1000, rel=1e-9)
    assert opt.best_shift_hours == best and best > 0
    assert opt.best_kg == pytest.approx(grams[best] / 1000, rel=1e-9)
    assert opt.saving_kg == pytest.approx((grams[0] - grams[best]) / 1000, rel=1e-9)
    assert opt.shifts_measured == len([s for s in grams if s > 0])
    assert opt.project == "idefics" and opt.cluster == job.cluster
    # the phase is that one job: the same numbers
    (phase,) = ts.phases
    assert phase.phase == "pretraining" and phase.best_shift_hours == best and phase.job_id is None
    assert phase.actual_kg == pytest.approx(opt.actual_kg, rel=1e-12)
    assert ts.saving_kg == pytest.approx(phase.saving_kg, rel=1e-12)


def test_shift_zero_is_what_the_report_prices(report_fleet, capsys) -> None:
    """At shift 0 the what-if prices the phase as the report's headline does (same layers, same rule)."""
    from wattprint.pipeline.report.compute import build_report

    con, settings, o = _scope(report_fleet, project="idefics")
    ts = time_shift(con, settings, o)
    report = build_report(con, settings, o)
    for p in report.phases:
        if p.label != "measured":
            continue
        (opt,) = [x for x in ts.phases if x.phase == p.phase]
        embodied = p.layers.embodied.emissions_kg if "embodied" in o.layers else 0.0
        assert opt.actual_kg == pytest.approx(p.emissions_kg - embodied, rel=1e-9)
        assert 0.0 <= opt.saving_kg <= opt.actual_kg and opt.best_kg <= opt.actual_kg


def test_no_measured_later_start_keeps_the_actual_hours(report_fleet) -> None:
    """With no slack there is nothing to move: best is the start it had, no saving."""
    con, settings, o = _scope(report_fleet, project="idefics")
    ts = time_shift(con, settings, o, slack_hours=0)
    assert ts.phases and all(p.best_shift_hours == 0 and p.saving_kg == 0 and p.shifts_measured == 0
                             for p in ts.phases + ts.jobs)


def test_top_jobs_are_the_reports_top_jobs(report_fleet) -> None:
    con, settings, o = _scope(report_fleet, top_jobs=2)
    ts = time_shift(con, settings, o)
    assert len(ts.jobs) == 2 and len({(j.cluster, j.job_id) for j in ts.jobs}) == 2
    assert all(j.kind == "job" for j in ts.jobs) and all(p.kind == "phase" for p in ts.phases)


def _cli(fleet, capsys, *args: str) -> tuple[int, str, str]:
    from wattprint.pipeline.cli import main

    db_path, cfg = fleet
    code = main(["report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_slack_flag(report_fleet, capsys) -> None:
    """--time-shift-slack sets the slack, 0 leaves the section out, out of range is a clear error."""
    import json

    code, out, err = _cli(report_fleet, capsys, "--format", "json", "--time-shift-slack", "6")
    assert code == 0, err
    t = json.loads(out)["time_shift"]
    assert t["slack_hours"] == 6 and all(0 <= p["best_shift_hours"] <= 6 for p in t["phases"] + t["jobs"])
    code, out, err = _cli(report_fleet, capsys, "--format", "json", "--time-shift-slack", "0")
    assert code == 0 and "time_shift" not in json.loads(out)
    code, out, err = _cli(report_fleet, capsys, "--time-shift-slack", "200")
    assert code != 0 and "--time-shift-slack" in err and "Traceback" not in err
