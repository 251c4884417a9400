"""`wattprint compact` closes the months older than the retention: their samples go, their numbers stay.

The fleet of tests/test_model_incremental.py (wattprint split counters, dcgm counters with and without a job label,
power gauges), moved to straddle February 29 -> March 1 2024, with telemetry gaps, a counter stepback and a host's
RAPL readability in both months. Closing February must change no number of any report, before or after a full
rebuild; later imports must give the open hours exactly what they give a database that was never compacted, and
leave the closed month's rows as they were.
"""

from __future__ import annotations

import random
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.modelkit import T0
from tests.test_model_incremental import _config, _fleet, _intensity_csv, _iso, _jobs_csv, db_rows
from wattprint.pipeline import db
from wattprint.pipeline.cli import main
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.model import DERIVED, RESULT_TABLES
from wattprint.pipeline.report.run import ReportRequest
from wattprint.pipeline.report.run import run as report
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.verbs import (
    BuildRequest,
    CompactRequest,
    IngestRequest,
    IntensityImportRequest,
    JobsImportRequest,
    PromSource,
    build,
    compact,
    ingest,
    intensity_import,
    jobs_import,
)

MARCH = datetime(2024, 3, 1, tzinfo=UTC)
GENERATED = re.compile(rb'Generated [0-9T:Z-]+|"generated_at": "[0-9T:Z-]+"')
NOW = datetime(2024, 4, 20, tzinfo=UTC)       # 30 days before: March 21 -> February is closed, March open


@pytest.fixture(scope="module")
def straddling(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ret") / "fleet.duckdb"
    _fleet(path)
    con = db.connect(path)
    con.execute("UPDATE samples SET ts = ts - INTERVAL 12 HOUR")     # minute 0 = February 29, 12:00 UTC
    con.execute("UPDATE ingest_coverage SET start_ts = start_ts - INTERVAL 12 HOUR, end_ts = end_ts - INTERVAL 12 HOUR")
    # telemetry gaps: a wattprint GPU counter in February, a power gauge in February and March (T0 is March 1)
    con.execute("DELETE FROM samples WHERE series_id = 1 AND ts > ?::TIMESTAMPTZ - INTERVAL 200 MINUTE"
                " AND ts < ?::TIMESTAMPTZ - INTERVAL 160 MINUTE", [T0, T0])
    power = con.execute("SELECT min(series_id) FROM series WHERE kind = 'gpu_power'").fetchall()[0][0]
    for lo, hi in ((-400, -380), (300, 330)):
        con.execute("DELETE FROM samples WHERE series_id = ? AND ts > ?::TIMESTAMPTZ + to_minutes(?)"
                    " AND ts < ?::TIMESTAMPTZ + to_minutes(?)", [power, T0, lo, T0, hi])
    # a counter stepback in February: one sample reads its predecessor's predecessor
    con.execute("UPDATE samples SET value = (SELECT value FROM samples WHERE series_id = 5"
                " AND ts = ?::TIMESTAMPTZ - INTERVAL 252 MINUTE) WHERE series_id = 4"
                " AND ts = ?::TIMESTAMPTZ - INTERVAL 250 MINUTE", [T0, T0])
    # a host's RAPL readability, unreadable for a while in each month
    sid = con.execute("SELECT max(series_id) + 1 FROM series").fetchall()[0][0]
    con.execute("INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, labels)"
                " VALUES (?, 'wattprint', 'cpu_rapl_up', 'qrapl', 'rapl', 'c1', 'n0', '{}')", [sid])
    con.execute("INSERT INTO samples SELECT ?, ?::TIMESTAMPTZ - INTERVAL 12 HOUR + to_minutes(m),"
                " CASE WHEN m % 500 < 30 THEN 0 ELSE 1 END FROM range(36 * 60) t(m)", [sid, T0])
    con.close()
    return path


def _tables(path: Path) -> dict[str, list[tuple]]:
    return {t: db_rows(path, t) for t in RESULT_TABLES}


def _reports(path: Path, settings, out: Path) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    got = {}
    for month in ("2024-02", "2024-03"):
        for fmt in ("json", "md"):
            target = out / f"{month}.{fmt}"
            report(ReportRequest(month=month, format=fmt, out=str(target), db=str(path), quiet=True), settings)
            got[target.name] = GENERATED.sub(b"", target.read_bytes())    # the clock's time, nothing else
    return got


def _samples(path: Path) -> int:
    return int(db_rows(path, "samples").__len__())


def test_closing_a_month_changes_no_number(straddling: Path, tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(straddling, path)
    settings = load_settings(_config(tmp_path / "wattprint.yaml", 1.2))
    jobs_import(JobsImportRequest(str(_jobs_csv(random.Random(3), tmp_path / "j.csv", 7, j0=True)), "csv",
                                  db=str(path), quiet=True), settings)
    before, reports = _tables(path), _reports(path, settings, tmp_path)
    feb = [r for r in before["fct_job_gpu_hour"] if r[0] < MARCH]
    assert feb and len(feb) < len(before["fct_job_gpu_hour"])
    n = _samples(path)

    compact(CompactRequest(30, db=str(path), quiet=True, now=NOW), settings)

    assert [r[0] for r in db_rows(path, "closed_months")] == [datetime(2024, 2, 1, tzinfo=UTC)]
    assert _samples(path) < n * 0.8          # February is 12 hours of the 36, less the hours March reads before it
    con = db.connect(path, read_only=True)
    try:
        (oldest,) = con.execute("SELECT count(*) FROM samples WHERE ts < ?::TIMESTAMPTZ - INTERVAL 6 HOUR",
                                [MARCH]).fetchall()[0]
        series = con.execute("SELECT count(*) FROM series").fetchall()[0][0]
        kept = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("closed_gpu_gaps", "closed_gpu_stepbacks", "closed_node_rapl_hour")}
    finally:
        con.close()
    assert oldest <= series                  # at most each series' last sample before the hours March reads
    assert all(kept.values()), kept          # February's gaps, stepback and RAPL hours are kept
    assert _tables(path) == before
    assert _reports(path, settings, tmp_path) == reports

    build(BuildRequest(db=str(path), quiet=True), settings)       # a full build: February stays as it was
    assert _tables(path) == before
    assert _reports(path, settings, tmp_path) == reports

    compact(CompactRequest(30, db=str(path), quiet=True, now=datetime(2024, 5, 20, tzinfo=UTC)), settings)
    assert len(db_rows(path, "closed_months")) == 2                 # then March: every number still the same
    assert _samples(path) <= len(db_rows(path, "series"))
    assert _tables(path) == before
    assert _reports(path, settings, tmp_path) == reports


@pytest.mark.parametrize("seed", range(3))
def test_later_imports_give_the_open_months_what_they_give_an_uncompacted_database(
        straddling: Path, tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    settings = load_settings(_config(tmp_path / "wattprint.yaml", 1.2))
    closed, whole = tmp_path / "closed.duckdb", tmp_path / "whole.duckdb"
    shutil.copy(straddling, closed)
    jobs_import(JobsImportRequest(str(_jobs_csv(rnd, tmp_path / "j0.csv", 5, j0=True)), "csv", db=str(closed),
                                  quiet=True), settings)
    shutil.copy(closed, whole)
    compact(CompactRequest(30, db=str(closed), quiet=True, now=NOW), settings)
    frozen = {t: [r for r in rows if r[0] < MARCH] for t, rows in _tables(closed).items()}
    for step in range(4):
        if rnd.random() < 0.6:
            f = _jobs_csv(rnd, tmp_path / f"j{step}.csv", rnd.randint(1, 4))
            for target in (closed, whole):
                jobs_import(JobsImportRequest(str(f), "csv", db=str(target), quiet=True), settings)
        else:
            f = _intensity_csv(rnd, tmp_path / f"i{step}.csv")
            for target in (closed, whole):
                intensity_import(IntensityImportRequest(str(f), "csv", db=str(target), quiet=True), settings)
        a, b = _tables(closed), _tables(whole)
        for t in RESULT_TABLES:
            assert [r for r in a[t] if r[0] >= MARCH] == [r for r in b[t] if r[0] >= MARCH], (step, t)
            assert [r for r in a[t] if r[0] < MARCH] == frozen[t], (step, t)


def test_an_import_into_a_closed_month_is_stored_and_said(straddling: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(straddling, path)
    settings = load_settings(_config(tmp_path / "wattprint.yaml", 1.2))
    compact(CompactRequest(30, db=str(path), quiet=True, now=NOW), settings)
    frozen = _tables(path)
    f = tmp_path / "late.csv"
    f.write_text("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
                 f"LATE,p9,finetuning,c1,u,{_iso(-300)},{_iso(-100)},n1,4\n")     # in February
    capsys.readouterr()
    jobs_import(JobsImportRequest(str(f), "csv", db=str(path)), settings)
    out = capsys.readouterr().out
    assert "in closed months (before 2024-03-01T00:00:00Z)" in out
    assert _tables(path) == frozen                               # nothing rebuilt: February's rows as they were
    assert ("c1", "LATE") in {(r[0], r[1]) for r in db_rows(path, "jobs")}   # but the ledger row is stored


def test_ingest_refuses_a_window_that_starts_in_a_closed_month(straddling: Path, tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(straddling, path)
    settings = load_settings(_config(tmp_path / "wattprint.yaml", 1.2))
    compact(CompactRequest(30, db=str(path), quiet=True, now=NOW), settings)
    n = _samples(path)
    request = IngestRequest(PromSource("http://127.0.0.1:9"), "2024-02-29T00:00:00Z", "2024-03-02T00:00:00Z",
                            db=str(path), quiet=True)
    with pytest.raises(InputError) as e:
        ingest(request, settings)
    assert e.value.where == "--start" and "closed month" in str(e.value) and "2024-03-01T00:00:00Z" in str(e.value)
    assert _samples(path) == n


def test_compact_on_the_command_line(straddling: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.duckdb"
    shutil.copy(straddling, path)
    config = _config(tmp_path / "wattprint.yaml", 1.2)
    assert main(["compact", "--db", str(path), "--config", config, "--keep-samples-days", "0"]) == 2
    assert "--keep-samples-days" in capsys.readouterr().err
    # today is years after the fleet's two days: both months close (the retention is counted from the clock)
    assert main(["compact", "--db", str(path), "--config", config, "--keep-samples-days", "90"]) == 0
    out = capsys.readouterr().out
    assert "closed 2 month(s), 2024-02 .. 2024-03" in out
    assert main(["compact", "--db", str(path), "--config", config]) == 0
    assert "nothing to close" in capsys.readouterr().out
    # --rewrite: the file shrinks; what it holds, its schema and its sequences come through the copy
    seq = "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'series_id_seq'"
    con = db.connect(path)
    con.execute("SELECT nextval('series_id_seq') FROM range(3)").fetchall()    # as an ingest's new series would
    jobs, counter = con.execute("SELECT * FROM jobs ORDER BY ALL").fetchall(), con.execute(seq).fetchall()
    con.close()
    series = _sorted(path, "series")
    size = path.stat().st_size
    assert main(["compact", "--db", str(path), "--config", config, "--rewrite"]) == 0
    assert "rewrote the database" in capsys.readouterr().out
    assert path.stat().st_size < size and not path.with_name(path.name + ".compact-tmp").exists()
    con = db.connect(path)
    try:
        assert con.execute("SELECT * FROM jobs ORDER BY ALL").fetchall() == jobs
        assert set(DERIVED) <= db.tables(con)
        assert con.execute(seq).fetchall() == counter == [(3,)]
        assert con.execute("SELECT nextval('series_id_seq')").fetchall() == [(4,)]    # no series id given twice
    finally:
        con.close()
    assert _sorted(path, "series") == series


def _sorted(path: Path, table: str) -> list[tuple]:
    return sorted(db_rows(path, table), key=repr)
