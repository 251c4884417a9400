"""`wattprint run`: a month (or window) end to end, as the chart's CronJob and the Slurm timer run it.

The step order, flags, exit statuses and messages with recording stand-ins for the step verbs (and for sacct);
then the whole run for real, on the demo's simulated month (its fleet answers the ingest's queries in-process,
its ledger and intensity files are imported), against the reports the demo builds from the same data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.monthkit import record_steps, single_verb_request
from wattprint.pipeline.cli import main
from wattprint.pipeline.errors import DatabaseLocked, InputError, UpstreamError
from wattprint.pipeline.month import previous_month

PROM = ["--prometheus", "http://prometheus:9090"]


def run(tmp_path: Path, *extra: str) -> int:
    return main(["run", *PROM, "--db", str(tmp_path / "w.duckdb"), "--out-dir", str(tmp_path / "reports"), *extra])


def test_previous_utc_month() -> None:
    utc = dt.UTC
    assert previous_month(dt.datetime(2024, 3, 1, 6, 0, tzinfo=utc)) == "2024-02"   # leap February
    assert previous_month(dt.datetime(2024, 1, 1, 0, 30, tzinfo=utc)) == "2023-12"  # across the year
    # 00:30 on March 1st in Paris is still February 29th in UTC: the month before that is January.
    paris = dt.timezone(dt.timedelta(hours=1))
    assert previous_month(dt.datetime(2024, 3, 1, 0, 30, tzinfo=paris)) == "2024-01"
    assert previous_month(dt.datetime(2024, 3, 31, 23, 59, tzinfo=utc)) == "2024-02"


def test_default_is_the_previous_month_and_steps_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    calls = record_steps(monkeypatch)
    assert run(tmp_path) == 0
    month = previous_month(dt.datetime.now(dt.UTC))
    assert [v for v, _ in calls] == ["ingest", "report", "report"]  # no ledger, no intensity unless asked
    ingest = calls[0][1]
    start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    assert ingest.start == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [(r.month, r.format, r.out) for _, r in calls[1:]] == [
        (month, fmt, str(tmp_path / "reports" / month / f"wattprint-{month}.{fmt}")) for fmt in ("html", "json")]
    out = capsys.readouterr().out
    assert f"wattprint run: reports for {month} in {tmp_path / 'reports' / month}" in out


def test_every_source_in_order_with_the_single_verbs_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_steps(monkeypatch)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sacct = bindir / "sacct"
    sacct.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                     "print(json.dumps({'jobs': [], 'argv': sys.argv[1:], 'tz': os.environ.get('TZ')}))\n")
    sacct.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    token = tmp_path / "token"
    token.write_text("t\n")
    ledger = tmp_path / "jobs.csv"
    ledger.write_text("job_id\n")
    intensity = tmp_path / "intensity.csv"
    intensity.write_text("zone\n")
    rc = run(tmp_path, "--month", "2024-02", "--prometheus-tenant", "hpc", "--prometheus-token-file", str(token),
             "--step", "30", "--match", "cluster=a", "--sync-kubernetes", "k8s-a", "--sacct",
             "--sacct-args=--clusters=jean-zay", "--jobs-file", str(ledger), "--jobs-format", "csv",
             "--intensity-source", "electricitymaps", "--intensity-zone", "FR", "--intensity-token-file", str(token),
             "--intensity-file", str(intensity), "--intensity-format", "csv", "--format", "md", "--format", "csv",
             "--layers", "all", "--top-jobs", "3", "--keep-samples-days", "120")
    assert rc == 0
    assert [v for v, _ in calls] == ["ingest", "jobs sync-kubernetes", "jobs import", "jobs import",
                                     "intensity fetch", "intensity import", "report", "report", "compact"]
    # each step is the call its single verb's command line makes, with the run's flags
    window = ["--start", "2024-02-01T00:00:00Z", "--end", "2024-03-01T00:00:00Z"]
    where = ["--db", str(tmp_path / "w.duckdb")]
    prom = [*PROM, "--prometheus-tenant", "hpc", "--prometheus-token-file", str(token)]
    ingest, k8s, sacct_import, ledger_import, fetch, imp, md, csv, compact = (f for _, f in calls)
    assert ingest == single_verb_request(["ingest", *prom, *window, "--step", "30", "--match", "cluster=a", *where])
    assert k8s == single_verb_request(["jobs", "sync-kubernetes", *prom, *window, "--cluster", "k8s-a", *where])
    assert sacct_import == single_verb_request(["jobs", "import", sacct_import.path, "--format", "sacct-json",
                                                *where])
    assert ledger_import == single_verb_request(["jobs", "import", str(ledger), "--format", "csv", *where])
    assert fetch == single_verb_request(["intensity", "fetch", "--source", "electricitymaps", "--zone", "FR",
                                         *window, "--token-file", str(token), *where])
    assert imp == single_verb_request(["intensity", "import", str(intensity), "--format", "csv", *where])
    for report in (md, csv):
        assert report == single_verb_request(["report", "--month", "2024-02", "--format", report.format, "--out",
                                              report.out, "--layers", "all", "--top-jobs", "3", *where])
    assert [r.format for r in (md, csv)] == ["md", "csv"]
    assert compact == single_verb_request(["compact", "--keep-samples-days", "120", *where])
    # sacct over the month in UTC (it reads its times as local ones), every user's jobs, the extra flags
    content = calls.sacct_output[sacct_import.path]
    assert content["tz"] == "UTC"
    assert content["argv"] == ["--allusers", "--json", "--starttime", "2024-02-01T00:00:00", "--endtime",
                               "2024-03-01T00:00:00", "--clusters=jean-zay"]
    assert not Path(sacct_import.path).exists()  # the temp file is removed


def test_a_window_names_its_reports_by_start_and_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_steps(monkeypatch)
    assert run(tmp_path, "--start", "2024-03-04T00:00:00Z", "--end", "2024-03-11T00:00:00Z", "--format", "json") == 0
    ingest, report = (f for _, f in calls)
    assert (ingest.start, ingest.end) == ("2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z")
    assert (report.month, report.start, report.end) == (None, "2024-03-04T00:00:00Z", "2024-03-11T00:00:00Z")
    label = "20240304T0000Z--20240311T0000Z"
    assert report.out == str(tmp_path / "reports" / label / f"wattprint-{label}.json")


@pytest.mark.parametrize(("extra", "where"), [
    (["--month", "2023-13"], "--month"),
    (["--month", "2024-03", "--start", "2024-03-01T00:00:00Z"], "--month"),
    (["--start", "2024-03-01T00:30:00Z", "--end", "2024-03-02T00:00:00Z"], "--start"),
    (["--intensity-source", "uk"], "--intensity-zone"),
    (["--jobs-file", "jobs.csv"], "--jobs-format"),
    (["--layers", "gpu,nope"], "--layers"),
    (["--estimates", "/nonexistent.yaml"], "--estimates"),
    (["--keep-samples-days", "0"], "--keep-samples-days"),
])
def test_bad_flags_exit_2_before_any_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], extra: list[str], where: str) -> None:
    calls = record_steps(monkeypatch)
    assert run(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wattprint run: error: {where}"), err
    assert calls == [] and not (tmp_path / "reports").exists()


def test_empty_prometheus_url_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    calls = record_steps(monkeypatch)
    assert main(["run", "--prometheus", "", "--db", str(tmp_path / "w.duckdb")]) == 2  # PROMETHEUS_URL unset
    assert "--prometheus: empty URL" in capsys.readouterr().err and calls == []


@pytest.mark.parametrize(("failing", "error", "rc", "ran"), [
    ("ingest", UpstreamError("http://prometheus:9090", "connection refused"), 1, ["ingest"]),
    ("ingest", DatabaseLocked("w.duckdb", "locked by another process"), 1, ["ingest"]),
    ("intensity fetch", InputError("--token-file", "no file"), 2, ["ingest", "intensity fetch"]),
    ("report", InputError("--db", "schema too old"), 2, ["ingest", "intensity fetch", "report"]),
])
def test_the_first_failing_step_stops_the_run_and_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        failing: str, error: Exception, rc: int, ran: list[str]) -> None:
    calls = record_steps(monkeypatch, fail={failing: error})
    assert run(tmp_path, "--month", "2024-03", "--intensity-source", "uk", "--intensity-zone", "GB") == rc
    assert [v for v, _ in calls] == ran
    err = capsys.readouterr().err.strip().splitlines()
    n = len(ran)
    assert err == [f"wattprint run: step {n}/3 ({ran[-1]}{' (html, json)' if failing == 'report' else ''}) failed: "
                   f"{error}; the steps before it are kept, re-run to complete"]
    # reports only after every step before them worked (an empty month is not published)
    assert (tmp_path / "reports").exists() == (failing == "report")


def test_sacct_failure_is_an_upstream_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    calls = record_steps(monkeypatch)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sacct").write_text("#!/bin/sh\necho 'sacct: error: slurmdbd unreachable' >&2\nexit 1\n")
    (bindir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    assert run(tmp_path, "--month", "2024-03", "--sacct") == 1
    assert [v for v, _ in calls] == ["ingest"]
    err = capsys.readouterr().err
    assert "step 2/3 (sacct + jobs import) failed: sacct: exit status 1 sacct: error: slurmdbd unreachable" in err
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert run(tmp_path, "--month", "2024-03", "--sacct") == 2
    assert "sacct is not on the PATH" in capsys.readouterr().err


# -- the whole run, for real, on the demo's month -------------------------------------------------------------------


def close(a: Any, b: Any) -> bool:
    """Equal, numbers to 1e-9 relative (DuckDB may sum in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return bool(a == b)


class FleetClient:
    """The demo fleet's in-process Prometheus, as the client the ingest opens (a context manager)."""

    def __init__(self, fleet: Any) -> None:
        from wattprint.pipeline.demo_fleet import FleetPrometheus

        self.api = FleetPrometheus(fleet)

    def query_range(self, *args: Any, **kwargs: Any) -> Any:
        return self.api.query_range(*args, **kwargs)

    def series(self, *args: Any) -> Any:
        return self.api.series(*args)

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wattprint.pipeline.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    assert run_demo(out=str(out), quiet=True) == 0
    return out


def test_the_demo_month_end_to_end_gives_the_demos_reports(demo: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.pipeline import verbs
    from wattprint.pipeline.demo_fleet import MONTH, generate

    fleet = generate(0)
    monkeypatch.setattr(verbs, "_prom_client", lambda args: FleetClient(fleet))
    monkeypatch.delenv("WATTPRINT_DB", raising=False)
    argv = ["run", *PROM, "--month", MONTH, "--config", str(demo / "wattprint.yaml"), "--db",
            str(tmp_path / "w.duckdb"), "--out-dir", str(tmp_path / "reports"), "--step", "60", "-q",
            "--jobs-file", str(demo / "jobs.csv"), "--jobs-format", "csv",
            "--intensity-file", str(demo / "intensity.csv"), "--intensity-format", "csv",
            "--format", "json", "--format", "csv"]
    assert main(argv) == 0
    out = tmp_path / "reports" / MONTH
    assert sorted(p.name for p in out.iterdir()) == [f"wattprint-{MONTH}.csv", f"wattprint-{MONTH}.json"]
    got = json.loads((out / f"wattprint-{MONTH}.json").read_text())
    want = json.loads((demo / f"report-all-{MONTH}.json").read_text())
    for key in ("window", "total", "projects", "clusters", "layers", "top_jobs", "reconciliation", "data_quality"):
        assert close(got[key], want[key]), key

