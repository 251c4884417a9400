"""Host (CPU package and DRAM) energy through the model: RAPL counters -> intervals -> (job, socket, domain, hour)
energy priced like GPU energy; the jobs' CPU time per hour; RAPL readability per host and hour.

One host, two sockets, package and DRAM, written as the exporter exports them (tests/modelkit.py, as ingest stores
them): the exporter was running before the window; job J1 (in the ledger) runs 00:30-01:30 with 25 % of the node's
CPU time, J2 (not in the ledger) 01:35-02:00 with 12.5 %; nothing was scraped between 00:55 and 01:05 (a gap across
the hour) and the exporter restarted at 01:40 (every counter starts again from 0). Expected figures come from those
definitions, not from the counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest

from tests.modelkit import T0, add_job, add_series, at, cover
from tests.test_model import settings
from wattprint.pipeline import db
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.ingest import CPU_METRICS, ingest
from wattprint.pipeline.model import DERIVED, build
from wattprint.pipeline.promapi import RangeChunk, range_chunks
from wattprint.pipeline.settings import load_settings

HOST = {"cluster": "c1", "hostname": "n1", "instance": "n1:9835"}
MODEL = "Intel(R) Xeon(R) Platinum 8480+"
RATE = {("0", "package"): 6000.0, ("1", "package"): 6600.0, ("0", "dram"): 600.0, ("1", "dram"): 660.0}  # J/min
NODE_S = 112 * 60                                    # CPU seconds a 112-core node has per minute
JOBS = {"J1": (30, 90, 0.25), "J2": (95, 120, 0.125)}  # start, end (minutes after T0), share of the node's CPU time
RESTART = 100                                        # exporter restart: counters count again from here
GAP = range(56, 65)                                  # minutes not scraped
STEPS = [m for m in range(0, 121) if m not in GAP]
FR_G = {0: 50.0, 1: 70.0}                            # hourly intensity of zone FR (cluster c1, PUE 1.2)


def _since(t: int) -> int:
    """When the exporter process that answered the scrape at minute t started (-1000: before the window)."""
    return -1000 if t <= RESTART else RESTART


def _overlap(a: int, b: int, c: int, d: int) -> int:
    return max(0, min(b, d) - max(a, c))


def _job_visible(job: str, t: int) -> bool:
    s, e, _ = JOBS[job]
    return s < t <= e and max(s, _since(t)) < t


def _job_value(job: str, rate: float, t: int) -> float:
    s, e, share = JOBS[job]
    return rate * share * _overlap(s, e, _since(t), t)


def add_host(con, *, rapl_up: Iterable[tuple[int, float]] | None = None) -> None:
    """The exporter's host series for n1 over minutes 0..120 (see the module docstring), with coverage."""
    for (socket, domain), rate in RATE.items():
        labels = {**HOST, "socket": socket, "domain": domain, "model": MODEL}
        total = {t: rate * (t - _since(t)) for t in STEPS}
        jobs = {j: {t: _job_value(j, rate, t) for t in STEPS if _job_visible(j, t)} for j in JOBS}
        # energy a job used stays attributed to it after its series is gone
        idle = {t: v - sum(_job_value(j, rate, t) for j in JOBS) for t, v in total.items()}
        add_series(con, "wattprint", "cpu_energy", labels, sorted(total.items()))
        add_series(con, "wattprint", "cpu_idle_energy", labels, sorted(idle.items()))
        for j, pts in jobs.items():
            add_series(con, "wattprint", "job_cpu_energy", {**labels, "job_id": j}, sorted(pts.items()))
    for j in JOBS:
        add_series(con, "wattprint", "job_cpu_seconds", {**HOST, "job_id": j},
                   [(t, _job_value(j, NODE_S, t)) for t in STEPS if _job_visible(j, t)])
    if rapl_up is not None:
        add_series(con, "wattprint", "cpu_rapl_up", HOST, list(rapl_up))
    for kind in ("cpu_energy", "cpu_idle_energy", "job_cpu_energy", "job_cpu_seconds", "cpu_rapl_up"):
        cover(con, kind, 0, 120)


def add_ledger(con) -> None:
    add_job(con, "c1", "J1", "proj-a", "pretraining", 30, 90, {"n1": 1})
    con.execute("UPDATE jobs SET user_name = 'ada' WHERE job_id = 'J1'")
    for h, g in FR_G.items():
        con.execute("INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s,"
                    " origin) VALUES ('FR', ?, ?, 'lifecycle', 't', false, 3600, 't')", [at(60 * h), g])


def add_gpus(con) -> None:
    """GPU series on the same host: wattprint's per-job and idle counters on GPU 0, dcgm's counter on GPU 1
    (shared by allocation: node_share), so both GPU paths run beside the host series."""
    gpu0 = {**HOST, "gpu": "0", "uuid": "GPU-0", "model": "H100"}
    add_series(con, "wattprint", "idle_energy", gpu0, [(t, 1e6 + 4200.0 * (t - _overlap(30, 90, 0, t)))
                                                       for t in STEPS])
    add_series(con, "wattprint", "job_energy", {**gpu0, "job_id": "J1"},
               [(t, 40000.0 * _overlap(30, 90, 0, t)) for t in STEPS if 30 < t <= 90])
    add_series(con, "dcgm", "gpu_energy", {"Hostname": "n1", "gpu": "1", "UUID": "GPU-1", "modelName": "H100"},
               [(t, 5e6 + 18000.0 * t) for t in STEPS], job_key="hpc_job")
    cover(con, "job_energy", 0, 120)


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "cpu.duckdb")
    yield c
    c.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Built once: the tests that use it only read."""
    c = db.connect(tmp_path_factory.mktemp("cpu") / "built.duckdb")
    add_host(c)
    # J1's package counter on socket 0 also seen by a second scrape (another instance label) for ten minutes:
    # one stream, each step counted once
    add_series(c, "wattprint", "job_cpu_energy", {**HOST, "instance": "n1:9999", "socket": "0", "domain": "package",
                                                   "model": MODEL, "job_id": "J1"},
               [(t, _job_value("J1", RATE[("0", "package")], t)) for t in range(40, 51)])
    add_ledger(c)
    add_gpus(c)
    build(c, settings())
    yield c
    c.close()


def test_every_socket_and_domain_conserves_its_energy(built):
    """jobs + host idle in fct_job_cpu_hour == the socket's own counter (the exporter's conservation survives the
    model), and both equal the energy the socket used in the window."""
    fct = dict(((s, d), e) for s, d, e in built.execute(
        "SELECT socket, domain, sum(energy_j) FROM fct_job_cpu_hour GROUP BY ALL").fetchall())
    counter = dict(((s, d), e) for s, d, e in built.execute(
        "SELECT st.socket, st.domain, sum(i.energy_j) FROM energy_intervals i JOIN streams st USING (stream_id)"
        " WHERE st.kind = 'cpu' GROUP BY ALL").fetchall())
    assert set(fct) == set(RATE)
    for key, rate in RATE.items():
        assert fct[key] == pytest.approx(counter[key], rel=1e-12)
        assert fct[key] == pytest.approx(rate * 120, rel=1e-12)


def test_jobs_get_their_share_per_socket_domain_and_hour(built):
    rows = built.execute(
        "SELECT job_id, socket, domain, hour(hour_ts), sum(energy_j) FROM fct_job_cpu_hour WHERE job_id IS NOT NULL"
        " GROUP BY ALL ORDER BY ALL").fetchall()
    got = {(j, s, d, h): e for j, s, d, h, e in rows}
    expected = {}
    for (socket, domain), rate in RATE.items():
        # J1 00:30-01:30: 30 minutes in each hour (the gap 00:55-01:05 is cut at 01:00 pro rata by time)
        expected[("J1", socket, domain, 0)] = rate * 0.25 * 30
        expected[("J1", socket, domain, 1)] = rate * 0.25 * 30
        expected[("J2", socket, domain, 1)] = rate * 0.125 * 25
    assert got.keys() == expected.keys()
    for key, joules in expected.items():
        assert got[key] == pytest.approx(joules, rel=1e-12), key


def test_counter_rules_are_those_of_gpu_counters(built):
    q = dict(built.execute("SELECT energy_quality, sum(energy_j) FROM fct_job_cpu_hour"
                           " WHERE job_id = 'J1' AND socket = '0' AND domain = 'package' GROUP BY 1").fetchall())
    # first seen at 00:31 inside the window: its first value (00:30-00:31) counts; the unscraped 00:55-01:05 is kept
    assert q == {"first_sample": pytest.approx(1500.0), "gap": pytest.approx(1500.0 * 10),
                 "counter": pytest.approx(1500.0 * 49)}
    q2 = dict(built.execute("SELECT energy_quality, sum(energy_j) FROM fct_job_cpu_hour"
                            " WHERE job_id = 'J2' AND socket = '0' AND domain = 'package' GROUP BY 1").fetchall())
    # the restart at 01:40: the value after the drop is the energy since the restart
    assert q2 == {"first_sample": pytest.approx(750.0), "counter_reset": pytest.approx(750.0),
                  "counter": pytest.approx(750.0 * 23)}
    idle = dict(built.execute("SELECT energy_quality, sum(energy_j) FROM fct_job_cpu_hour"
                              " WHERE job_id IS NULL GROUP BY 1").fetchall())
    assert set(idle) == {"counter", "counter_reset", "gap"}
    gaps = built.execute("SELECT count(*) FROM energy_gaps JOIN streams USING (stream_id)"
                         " WHERE kind IN ('cpu', 'cpu_idle', 'cpu_job')").fetchall()[0][0]
    assert gaps == 4 * (1 + 1 + 1)           # per socket-domain: the total, idle and J1 streams crossed it


def test_rows_are_priced_like_gpu_rows(built):
    rows = built.execute(
        "SELECT hour(hour_ts), cluster, hostname, attribution, intensity_quality, region, zone, pue,"
        " intensity_g_per_kwh, energy_j, emissions_g, cpu_model, job_id FROM fct_job_cpu_hour").fetchall()
    assert rows
    for h, cluster, host, attribution, iq, region, zone, pue, g, joules, grams, model, job in rows:
        assert (cluster, host, zone, region, pue, model) == ("c1", "n1", "FR", None, 1.2, MODEL)
        assert attribution == ("idle" if job is None else "exporter")
        if h in FR_G:
            assert (iq, g) == ("hourly", FR_G[h])
        assert grams == pytest.approx(joules / 3.6e6 * pue * g, rel=1e-12)
    # the same hour and cluster price GPU and CPU energy alike
    gpu = dict(built.execute("SELECT DISTINCT hour(hour_ts), intensity_g_per_kwh FROM fct_job_gpu_hour").fetchall())
    cpu = dict(built.execute("SELECT DISTINCT hour(hour_ts), intensity_g_per_kwh FROM fct_job_cpu_hour").fetchall())
    assert gpu == cpu


def test_ledger_facts_are_joined_on_cluster_and_job_id(built):
    rows = set(built.execute("SELECT job_id, project, phase, user_name, in_ledger FROM fct_job_cpu_hour").fetchall())
    assert rows == {("J1", "proj-a", "pretraining", "ada", True), ("J2", None, "unclassified", None, False),
                    (None, None, None, None, False)}
    rows = set(built.execute(
        "SELECT job_id, project, phase, user_name, in_ledger FROM fct_job_cpu_time_hour").fetchall())
    assert rows == {("J1", "proj-a", "pretraining", "ada", True), ("J2", None, "unclassified", None, False)}


def test_cpu_time_per_job_and_hour(built):
    rows = built.execute("SELECT job_id, hour(hour_ts), cluster, hostname, sum(cpu_seconds) FROM fct_job_cpu_time_hour"
                         " GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [("J1", 0, "c1", "n1", pytest.approx(0.25 * NODE_S * 30)),
                    ("J1", 1, "c1", "n1", pytest.approx(0.25 * NODE_S * 30)),
                    ("J2", 1, "c1", "n1", pytest.approx(0.125 * NODE_S * 25))]
    q = dict(built.execute("SELECT quality, sum(cpu_seconds) FROM fct_job_cpu_time_hour WHERE job_id = 'J2'"
                           " GROUP BY 1").fetchall())
    assert q == {"first_sample": pytest.approx(840.0), "counter_reset": pytest.approx(840.0),
                 "counter": pytest.approx(840.0 * 23)}
    # seconds never land in the energy tables
    assert built.execute("SELECT count(*) FROM energy_intervals JOIN streams USING (stream_id)"
                         " WHERE kind IN ('cpu_seconds', 'rapl_up')").fetchall()[0][0] == 0


def test_streams_carry_socket_domain_and_model(built):
    rows = set(built.execute("SELECT kind, socket, domain, gpu, model FROM streams WHERE hostname = 'n1'").fetchall())
    assert ("cpu_job", "1", "dram", "", MODEL) in rows and ("cpu_idle", "0", "package", "", MODEL) in rows
    assert ("cpu_seconds", "", "", "", None) in rows
    assert ("idle", "", "", "0", "H100") in rows and ("gpu", "", "", "1", "H100") in rows


def test_gpu_results_are_the_same_with_host_series_beside_them(tmp_path):
    out = []
    for with_host in (False, True):
        c = db.connect(tmp_path / f"g{with_host}.duckdb")
        add_gpus(c)
        add_ledger(c)
        if with_host:
            add_host(c, rapl_up=[(t, 1.0) for t in STEPS])
        s = build(c, settings())
        out.append((c.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall(), s.fct_rows, s.energy_j,
                    s.emissions_g))
        assert (c.execute("SELECT count(*) FROM fct_job_cpu_hour").fetchall()[0][0] > 0) is with_host
        c.close()
    assert out[0][:2] == out[1][:2]
    assert out[0][2:] == pytest.approx(out[1][2:], rel=1e-12)
    assert {r[11] for r in out[0][0]} == {"exporter", "idle", "node_share", "unallocated"}


def test_node_rapl_hour_counts_samples_and_readable_ones(con):
    # n1: readable except 00:10-00:14; a second series of n1 (another scrape) at the same steps counts once.
    # n2: RAPL never readable (no energy series at all). n3: no RAPL series, only CPU time.
    add_host(con, rapl_up=[(t, 0.0 if 10 <= t < 15 else 1.0) for t in STEPS])
    add_series(con, "wattprint", "cpu_rapl_up", {**HOST, "instance": "n1:9999"}, [(t, 1.0) for t in range(0, 6)])
    add_series(con, "wattprint", "cpu_rapl_up", {"cluster": "c1", "hostname": "n2"}, [(t, 0.0) for t in STEPS])
    add_series(con, "wattprint", "job_cpu_seconds", {"cluster": "c1", "hostname": "n3", "job_id": "J9"},
               [(t, 60.0 * t) for t in range(0, 30)])
    build(con, settings())
    rows = con.execute("SELECT hostname, hour(hour_ts), cluster, samples, readable_samples FROM node_rapl_hour"
                       " ORDER BY ALL").fetchall()
    # hour 0: minutes 0-59 less the unscraped 56-59; hour 1: 60-119 less 60-64; hour 2: 02:00 itself
    assert rows == [("n1", 0, "c1", 56, 51), ("n1", 1, "c1", 55, 55), ("n1", 2, "c1", 1, 1),
                    ("n2", 0, "c1", 56, 0), ("n2", 1, "c1", 55, 0), ("n2", 2, "c1", 1, 0)]


def test_rebuild_clears_and_repeats(con):
    add_host(con, rapl_up=[(t, 1.0) for t in STEPS])
    add_ledger(con)
    build(con, settings())
    built = con
    assert {"fct_job_cpu_hour", "fct_job_cpu_time_hour", "node_rapl_hour"} <= set(DERIVED)
    tables = ("fct_job_cpu_hour", "fct_job_cpu_time_hour", "node_rapl_hour")
    first = {t: built.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}  # noqa: S608
    s = build(built, settings())
    assert {t: built.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables} == first  # noqa: S608
    assert s.cpu_rows == len(first["fct_job_cpu_hour"])
    assert s.cpu_energy_j == pytest.approx(sum(RATE.values()) * 120)
    assert s.cpu_seconds == pytest.approx(NODE_S * (0.25 * 60 + 0.125 * 25))
    built.execute("DELETE FROM samples")
    build(built, settings())
    for t in tables:
        assert built.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] == 0  # noqa: S608


# -- ingest: the exporter's host series from a query_range API ------------------------------------------------

class _Source:
    """A query_range API answering each metric with fixed series (labels, [(minute, "value")])."""

    def __init__(self, series: dict[str, list[tuple[dict[str, str], list[tuple[int, str]]]]]) -> None:
        self.series = series

    def query_range(self, query: str, start: datetime, end: datetime, step_s: float):
        metric = next((m for m in self.series if f'"{m}"' in query), None)
        for a, b in range_chunks(start, end, step_s):
            out = []
            for labels, pts in self.series.get(metric, []) if metric else []:
                vals = [[at(m).timestamp(), v] for m, v in pts if a <= at(m) <= b]
                if vals:
                    out.append({"metric": {"__name__": metric, **labels}, "values": vals})
            yield RangeChunk(a, b, out)


def _ingest(con, series) -> None:
    ingest(con, _Source(series), load_settings(None).queries(), T0, at(10), 60, endpoint="test")  # type: ignore[arg-type]


def test_ingest_stores_socket_domain_model_and_kinds(con):
    cpu = {**HOST, "socket": "1", "domain": "dram", "model": MODEL}
    _ingest(con, {
        CPU_METRICS["cpu_energy"]: [(cpu, [(m, f"{100.0 * m}") for m in range(11)])],
        CPU_METRICS["cpu_idle_energy"]: [(cpu, [(m, f"{60.0 * m}") for m in range(11)])],
        CPU_METRICS["job_cpu_energy"]: [({**cpu, "job_id": "J1"}, [(m, f"{40.0 * m}") for m in range(11)])],
        CPU_METRICS["job_cpu_seconds"]: [({**HOST, "job_id": "J1"}, [(m, f"{1680.0 * m}") for m in range(11)])],
        CPU_METRICS["cpu_rapl_up"]: [(HOST, [(m, "1" if m % 2 else "0") for m in range(11)])],
        "wattprint_gpu_idle_energy_joules_total": [({**HOST, "gpu": "0", "uuid": "GPU-0", "model": "H100"},
                                                    [(m, f"{70.0 * m}") for m in range(11)])],
    })
    rows = set(con.execute("SELECT source, kind, hostname, gpu, uuid, job_id, model, socket, domain FROM series"
                           ).fetchall())
    assert rows == {
        ("wattprint", "cpu_energy", "n1", None, None, None, MODEL, "1", "dram"),
        ("wattprint", "cpu_idle_energy", "n1", None, None, None, MODEL, "1", "dram"),
        ("wattprint", "job_cpu_energy", "n1", None, None, "J1", MODEL, "1", "dram"),
        ("wattprint", "job_cpu_seconds", "n1", None, None, "J1", None, None, None),
        ("wattprint", "cpu_rapl_up", "n1", None, None, None, None, None, None),
        ("wattprint", "idle_energy", "n1", "0", "GPU-0", None, "H100", None, None),
    }
    build(con, load_settings(None).build_settings())
    assert con.execute("SELECT sum(energy_j) FROM fct_job_cpu_hour").fetchall()[0][0] == pytest.approx(1000.0)
    assert con.execute("SELECT sum(cpu_seconds) FROM fct_job_cpu_time_hour").fetchall()[0][0] == pytest.approx(16800)
    assert con.execute("SELECT samples, readable_samples FROM node_rapl_hour").fetchall() == [(11, 5)]


def test_ingest_refuses_a_negative_cpu_time_counter_and_keeps_gauges_free(con):
    _ingest(con, {CPU_METRICS["cpu_rapl_up"]: [(HOST, [(0, "-1")])]})     # a gauge: stored as it is
    assert con.execute("SELECT value FROM samples").fetchall() == [(-1.0,)]
    with pytest.raises(InputError) as err:
        _ingest(con, {CPU_METRICS["job_cpu_seconds"]: [({**HOST, "job_id": "J1"}, [(0, "5"), (1, "-3")])]})
    assert "negative CPU-time counter value -3" in str(err.value)
    assert "wattprint_job_cpu_seconds_total" in str(err.value)
    with pytest.raises(InputError, match="negative energy counter value"):
        _ingest(con, {CPU_METRICS["job_cpu_energy"]: [({**HOST, "job_id": "J1"}, [(0, "-5")])]})


def test_every_host_query_is_a_wattprint_counter_but_rapl_up():
    qs = {q.kind: q for q in load_settings(None).queries() if q.kind in CPU_METRICS}
    assert set(qs) == set(CPU_METRICS)
    assert {k for k, q in qs.items() if not q.is_counter} == {"cpu_rapl_up"}
    assert all(q.source == "wattprint" and q.metric == CPU_METRICS[k] for k, q in qs.items())
