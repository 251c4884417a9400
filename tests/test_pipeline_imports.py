"""`wattprint jobs import`, `jobs sync-kubernetes` and `intensity import` end to end: results joined to
energy, strange values kept verbatim, and bad files refused whole with nothing stored changed."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from tests.modelkit import add_series, at
from tests.promstack import start_prometheus_with_history
from wattprint.pipeline import db

HOSTILE_PROJECT = "'); DROP TABLE jobs; -- é漢 \"q\" \\ ;"
HEADER = "job_id,project,phase,cluster,user,start,end,nodes,gpus\n"


def wattprint(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def snapshot(dbfile: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(dbfile), read_only=True)
    try:
        return {t: con.execute(f"SELECT * EXCLUDE (imported_at) FROM {t} ORDER BY ALL").fetchall()
                for t in ("jobs", "intensity_hourly", "intensity_points")} | {
            "job_nodes": con.execute("SELECT * FROM job_nodes ORDER BY ALL").fetchall(),
            "fct": con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall()}
    finally:
        con.close()


@pytest.fixture
def dbfile(tmp_path) -> Path:
    """A database holding an hour of exporter energy for job 42 and job 43 on cluster c1, host gpu01."""
    path = tmp_path / "w.duckdb"
    con = db.connect(path)
    base = {"cluster": "c1", "hostname": "gpu01", "uuid": "GPU-x"}
    add_series(con, "wattprint", "job_energy", {**base, "gpu": "0", "job_id": "42"}, [(0, 0), (60, 3.6e6)])
    add_series(con, "wattprint", "job_energy", {**base, "gpu": "1", "job_id": "43"}, [(0, 0), (60, 7.2e6)])
    con.close()
    return path


def test_ledger_joins_energy_and_keeps_hostile_names_verbatim(dbfile, tmp_path):
    ledger = tmp_path / "jobs.csv"
    ledger.write_text(HEADER + f'42,"{HOSTILE_PROJECT.replace(chr(34), chr(34) * 2)}",pretraining,c1,ana,'
                      "2024-03-01T00:00:00Z,2024-03-01T01:00:00+00:00,gpu[01-02],4\n"
                      "43,vision,finetuning,c1,bo,2024-03-01T01:00:00+01:00,,gpu01,\n", encoding="utf-8")
    res = wattprint("jobs", "import", str(ledger), "--format", "csv", "--db", str(dbfile))
    assert res.returncode == 0, res.stderr
    assert "imported 2 jobs" in res.stdout
    con = duckdb.connect(str(dbfile), read_only=True)
    rows = con.execute("SELECT job_id, project, phase, in_ledger, sum(energy_j) FROM fct_job_gpu_hour "
                       "GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [("42", HOSTILE_PROJECT, "pretraining", True, 3.6e6), ("43", "vision", "finetuning", True, 7.2e6)]
    nodes = con.execute("SELECT job_id, node, gpus FROM job_nodes ORDER BY ALL").fetchall()
    assert nodes == [("42", "gpu01", 4), ("42", "gpu02", 4), ("43", "gpu01", None)]
    # no config: no zone known, priced at the world average and flagged
    assert {r[0] for r in con.execute("SELECT intensity_quality FROM fct_job_gpu_hour").fetchall()} == {
        "world_default"}
    con.close()


BAD_LEDGERS = {
    "unknown column": (HEADER.strip() + ",colour\n42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1,red\n",
                       ["jobs.csv:1", "colour"]),
    "naive timestamp": (HEADER + "42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1\n"
                                 "43,p,pretraining,c1,u,2024-03-01T00:00:00,,gpu01,1\n", ["jobs.csv:3", "timezone"]),
    "end before start": (HEADER + "42,p,pretraining,c1,u,2024-03-02T00:00:00Z,2024-03-01T00:00:00Z,gpu01,1\n",
                         ["jobs.csv:2", "before"]),
    "malformed row": (HEADER + "42,p,pretraining,c1,u,2024-03-01T00:00:00Z\n", ["jobs.csv:2"]),
    "conflicting duplicate": (HEADER + "42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1\n"
                                       "42,q,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1\n",
                              ["jobs.csv:2", "jobs.csv:3"]),
    "bad phase": (HEADER + "42,p,pre-training,c1,u,2024-03-01T00:00:00Z,,gpu01,1\n", ["jobs.csv:2", "phase"]),
    "units not positive": (HEADER.strip() + ",units,unit_name\n43,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1,"
                           "1e9,tokens\n42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1,0,tokens\n",
                           ["jobs.csv:3", "units 0 is not positive"]),
    "units without unit_name": (HEADER.strip() + ",units,unit_name\n42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,"
                                "gpu01,1,1e9,\n", ["jobs.csv:2", "without a unit_name"]),
}


def test_ledger_units_are_stored_and_other_sources_leave_them_null(dbfile, tmp_path):
    ledger = tmp_path / "jobs.csv"
    ledger.write_text(HEADER.strip() + ",units,unit_name\n42,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1,"
                      "2.5e9,tokens\n43,p,pretraining,c1,u,2024-03-01T00:00:00Z,,gpu01,1,,\n", encoding="utf-8")
    res = wattprint("jobs", "import", str(ledger), "--format", "csv", "--db", str(dbfile))
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(dbfile), read_only=True)
    assert con.execute("SELECT job_id, units, unit_name FROM jobs ORDER BY 1").fetchall() == [
        ("42", 2.5e9, "tokens"), ("43", None, None)]
    con.close()


def test_migration_9_adds_null_units_to_a_database_without_them(tmp_path):
    path = tmp_path / "v8.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version, name, sql in db.migrations():
        if version <= 8:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute("INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
                " VALUES ('c1', '42', 'p', 'pretraining', '2024-03-01T00:00:00Z', NULL, 'csv', 'old.csv:2')")
    before = con.execute("SELECT * FROM jobs").fetchall()
    con.close()
    con = db.connect(path)                                            # applies 0009
    assert con.execute("SELECT count(*) FROM schema_migrations WHERE version = 9").fetchall() == [(1,)]
    after = con.execute("SELECT * EXCLUDE (units, unit_name) FROM jobs").fetchall()
    assert after == before
    assert con.execute("SELECT units, unit_name FROM jobs").fetchall() == [(None, None)]
    con.close()


def assert_refused_whole(dbfile: Path, tmp_path: Path, verb: str, good: str, bad_name: str, bad: str,
                         needles: list[str]) -> None:
    """Import `good`, then `bad`: the bad file exits 2 naming where and what, and nothing stored changes."""
    (tmp_path / "good.csv").write_text(good, encoding="utf-8")
    assert wattprint(verb, "import", str(tmp_path / "good.csv"), "--format", "csv", "--db", str(dbfile)).returncode == 0
    before = snapshot(dbfile)
    (tmp_path / bad_name).write_text(bad, encoding="utf-8")
    res = wattprint(verb, "import", str(tmp_path / bad_name), "--format", "csv", "--db", str(dbfile))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr
    assert snapshot(dbfile) == before


@pytest.mark.parametrize("case", sorted(BAD_LEDGERS))
def test_bad_ledger_is_refused_whole_and_nothing_stored_changes(dbfile, tmp_path, case):
    text, needles = BAD_LEDGERS[case]
    good = HEADER + "42,kept,experimentation,c1,u,2024-03-01T00:00:00Z,,gpu01,1\n"
    assert_refused_whole(dbfile, tmp_path, "jobs", good, "jobs.csv", text, needles)


def test_sacct_json_import_joins_slurm_energy(tmp_path):
    dbfile = tmp_path / "w.duckdb"
    fixture = REPO / "tests/fixtures/slurm/clockwork_sacct_1.json"
    res = wattprint("jobs", "import", str(fixture), "--format", "sacct-json", "--db", str(dbfile))
    assert res.returncode == 0, res.stderr
    con = duckdb.connect(str(dbfile), read_only=True)
    assert con.execute("SELECT count(*) FROM jobs WHERE source = 'sacct-json'").fetchall()[0][0] >= 1
    con.close()


INTENSITY_CSV = "timestamp,zone,intensity_g_per_kwh\n"
BAD_INTENSITY = {
    "naive timestamp": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T01:00:00,FR,55\n",
                        ["intensity.csv:3", "timezone"]),
    "negative": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,-5\n", ["intensity.csv:2"]),
    "not a number": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,fifty\n", ["intensity.csv:2"]),
    "unknown column": ("timestamp,zone,intensity_g_per_kwh,source\n2024-03-01T00:00:00Z,FR,50,x\n",
                       ["intensity.csv", "source"]),
    "conflicting duplicate": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:00:00Z,FR,51\n",
                              ["intensity.csv:2", "intensity.csv:3"]),
    "overlap": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:30:00Z,FR,51\n",
                ["intensity.csv:2", "intensity.csv:3"]),
    "missing zone": ("timestamp,intensity_g_per_kwh\n2024-03-01T00:00:00Z,50\n", ["--zone"]),
    "one zone spelled two ways": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:00:00Z,fr,50\n",
                                  ["intensity.csv:2", "intensity.csv:3", "ambiguous duplicate"]),
    "sub-hourly rows": (INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:15:00Z,FR,51\n",
                        ["intensity.csv:2", "intensity.csv:3", "aggregate sub-hourly values"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INTENSITY))
def test_bad_intensity_file_is_refused_whole(dbfile, tmp_path, case):
    text, needles = BAD_INTENSITY[case]
    assert_refused_whole(dbfile, tmp_path, "intensity", INTENSITY_CSV + "2024-03-01T00:00:00Z,FR,42\n",
                         "intensity.csv", text, needles)


def test_hourly_intensity_prices_each_hour_and_config_sets_zone_and_pue(dbfile, tmp_path):
    cfg = tmp_path / "wattprint.yaml"
    cfg.write_text("clusters:\n  c1:\n    zone: FR\n    pue: 1.25\n")
    inten = tmp_path / "fr.csv"
    inten.write_text(INTENSITY_CSV + "".join(f"2024-03-01T{h:02d}:00:00Z,FR,{40 + h}\n" for h in range(2)))
    res = wattprint("intensity", "import", str(inten), "--format", "csv", "--db", str(dbfile), "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "intensity_quality: hourly 100.0 %" in res.stdout and "world average" not in res.stderr
    con = duckdb.connect(str(dbfile), read_only=True)
    rows = con.execute("SELECT job_id, intensity_quality, intensity_g_per_kwh, pue, emissions_g "
                       "FROM fct_job_gpu_hour ORDER BY 1").fetchall()
    # job 42: 1 kWh in hour 0 at 40 g/kWh x PUE 1.25 = 50 g; job 43: 2 kWh -> 100 g
    assert rows == [("42", "hourly", 40.0, 1.25, pytest.approx(50.0)), ("43", "hourly", 40.0, 1.25,
                                                                         pytest.approx(100.0))]
    con.close()


def test_uk_half_hours_become_time_weighted_hours(tmp_path):
    dbfile = tmp_path / "w.duckdb"
    fixture = REPO / "tests/fixtures/intensity/nmpowell_national_pt24h_2023-03-14T1201Z.json"
    res = wattprint("intensity", "import", str(fixture), "--format", "uk-json", "--db", str(dbfile))
    assert res.returncode == 0, res.stderr
    import json

    data = json.loads(fixture.read_text())["data"]
    first = [d for d in data if d["from"].endswith("T12:30Z") or d["from"].endswith("T13:00Z")]
    con = duckdb.connect(str(dbfile), read_only=True)
    hour = datetime.fromisoformat(data[0]["from"].replace("Z", "+00:00")).replace(minute=0)
    got = con.execute("SELECT g_per_kwh, covered_s FROM intensity_hourly WHERE zone = 'GB' AND hour_ts = ?",
                      [hour.astimezone(UTC)]).fetchall()
    con.close()
    in_hour = [d for d in data if d["from"][:13] == data[0]["from"][:13]]
    vals = [(d["intensity"]["actual"] if d["intensity"]["actual"] is not None else d["intensity"]["forecast"])
            for d in in_hour]
    assert got == [(pytest.approx(sum(vals) / len(vals)), 1800 * len(vals))]
    assert first  # the fixture has half-hours


def test_kubernetes_pods_become_jobs_joined_by_uid(tmp_path):
    t0 = at(0).timestamp()
    uid = "0b7c-é"  # label values survive escaping both ways
    hist = []
    for i in range(0, 121):
        t = t0 + 60 * i
        if i <= 60:
            hist.append(("kube_pod_info", {"namespace": "ml", "pod": "train-0", "uid": uid, "node": "gpu01",
                                           "host_ip": "10.0.0.1"}, t, 1.0))
            hist.append(("kube_pod_labels", {"namespace": "ml", "pod": "train-0", "uid": uid,
                                             "label_wattprint_io_project": HOSTILE_PROJECT,
                                             "label_wattprint_io_phase": "finetuning"}, t, 1.0))
        hist.append(("wattprint_job_energy_joules_total", {"cluster": "k8s", "hostname": "gpu01", "gpu": "0",
                                                          "uuid": "GPU-k", "job_id": uid}, t, 1000.0 * min(i, 60)))
    store = start_prometheus_with_history(tmp_path / "prom", hist)
    dbfile = tmp_path / "w.duckdb"
    try:
        window = ["--start", "2024-03-01T00:00:00Z", "--end", "2024-03-01T02:00:00Z", "--db", str(dbfile)]
        res = wattprint("jobs", "sync-kubernetes", "--prometheus", store.base_url, "--cluster", "k8s", "--step", "60",
                        *window)
        assert res.returncode == 0, res.stderr
        res = wattprint("ingest", "--prometheus", store.base_url, *window)
        assert res.returncode == 0, res.stderr
    finally:
        store.stop()
    con = duckdb.connect(str(dbfile), read_only=True)
    rows = con.execute("SELECT job_id, project, phase, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL").fetchall()
    assert rows == [(uid, HOSTILE_PROJECT, "finetuning", 60000.0)]
    job = con.execute("SELECT name, start_ts, end_ts FROM jobs").fetchall()
    assert job[0][0] == "ml/train-0" and job[0][1] == at(0)
    con.close()


class _Recorded(http.server.BaseHTTPRequestHandler):
    """Serves one recorded API response for every GET, and remembers the paths asked for."""

    body = b""
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_intensity_fetch_cli_stores_the_recorded_uk_response(tmp_path):
    fixture = REPO / "tests/fixtures/intensity/nmpowell_national_pt24h_2023-03-14T1201Z.json"
    _Recorded.body = fixture.read_bytes()
    _Recorded.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dbfile = tmp_path / "w.duckdb"
    try:
        res = wattprint("intensity", "fetch", "--source", "uk", "--zone", "GB", "--start", "2023-03-13T12:00:00Z",
                        "--end", "2023-03-14T12:00:00Z", "--base-url", f"http://127.0.0.1:{server.server_port}",
                        "--db", str(dbfile))
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stderr
    assert _Recorded.paths == ["/intensity/2023-03-13T12:00Z/2023-03-14T12:00Z"]
    con = duckdb.connect(str(dbfile), read_only=True)
    assert con.execute("SELECT count(*), min(hour_ts) FROM intensity_hourly WHERE zone = 'GB'").fetchall() == [
        (24, datetime(2023, 3, 13, 12, tzinfo=UTC))]
    con.close()


def test_unknown_zone_for_a_source_is_a_clear_error(tmp_path):
    res = wattprint("intensity", "fetch", "--source", "uk", "--zone", "FR", "--start", "2024-03-01T00:00:00Z",
                    "--end", "2024-03-02T00:00:00Z", "--base-url", "http://127.0.0.1:9", "--db", str(tmp_path / "w.db"))
    assert res.returncode == 2
    assert "--zone: 'FR' is not a UK Carbon Intensity zone" in res.stderr and "Traceback" not in res.stderr
