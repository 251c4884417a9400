"""The DuckDB model: counters -> intervals -> (job, GPU, hour) energy and emissions, on hand-made samples."""

from __future__ import annotations

import pytest

from tests.modelkit import add_job, add_series, at, cover, fct
from wattprint.pipeline import db
from wattprint.pipeline.model import BuildSettings, ClusterFacts, build
from wattprint.pipeline.sources.intensity.embedded import AnnualIntensity

GPU0 = {"cluster": "c1", "hostname": "n1", "gpu": "0", "uuid": "GPU-0"}
DCGM0 = {"Hostname": "n2", "gpu": "0", "UUID": "GPU-a"}
DCGM1 = {"Hostname": "n2", "gpu": "1", "UUID": "GPU-b"}
WORLD = 480.0


def settings(**kw) -> BuildSettings:
    base = {
        "clusters": (ClusterFacts("c1", zone="FR", pue=1.2, nodes=("n1*",)),
                     ClusterFacts("c2", zone="DE", nodes=("n2",))),
        "default_cluster": "c9",
        "world_g_per_kwh": WORLD,
        "annual": (AnnualIntensity("FR", "country", "France", 57.0, 2023, "lifecycle", "test", "test"),),
    }
    base.update(kw)
    return BuildSettings(**base)


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "m.duckdb")
    yield c
    c.close()


def wp(kind: str, labels: dict, points, con, **kw) -> int:
    return add_series(con, "wattprint", kind, {**GPU0, **labels}, points, **kw)


def dcgm(labels: dict, points, con, kind="gpu_energy") -> int:
    # dcgm's counter runs since driver load: a large offset that must never count as energy
    return add_series(con, "dcgm", kind, labels, [(m, v + 5e6 if kind == "gpu_energy" else v) for m, v in points],
                      job_key="hpc_job")


def test_job_counter_first_seen_inside_the_window_counts_its_first_value(con):
    cover(con, "job_energy", 0, 10)
    wp("job_energy", {"job_id": "J1"}, [(3, 100), (4, 160), (5, 220)], con)
    wp("job_energy", {"job_id": "J2"}, [(0, 1000), (1, 1100)], con)  # already running when we started looking
    build(con, settings())
    assert fct(con) == [("J1", "exporter", "counter", 120.0), ("J1", "exporter", "first_sample", 100.0),
                        ("J2", "exporter", "counter", 100.0)]


def test_counter_reset_and_gap_are_kept_and_flagged(con):
    wp("idle_energy", {}, [(0, 0), (1, 100), (2, 30), (3, 90), (12, 990)], con)
    s = build(con, settings(max_gap_s=300))
    assert fct(con) == [(None, "idle", "counter", 160.0), (None, "idle", "counter_reset", 30.0),
                        (None, "idle", "gap", 900.0)]
    assert s.gaps == 1
    gap = con.execute("SELECT start_ts, end_ts, energy_j FROM energy_gaps").fetchall()
    assert gap == [(at(3), at(12), 900.0)]


def test_intervals_are_split_at_hour_boundaries_pro_rata(con):
    wp("idle_energy", {}, [(58, 0), (62, 400)], con)
    build(con, settings(max_gap_s=600))
    rows = con.execute("SELECT hour_ts, energy_j FROM fct_job_gpu_hour ORDER BY 1").fetchall()
    assert rows == [(at(0), 200.0), (at(60), 200.0)]


def test_dcgm_job_label_change_keeps_one_continuous_gpu_counter(con):
    dcgm({**DCGM0, "hpc_job": "7"}, [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)], con)
    # the old series lingers one step (Prometheus lookback) with its last value
    dcgm({**DCGM0, "hpc_job": "8"}, [(5, 50), (6, 60), (7, 70)], con)
    build(con, settings())
    assert fct(con) == [("7", "gpu_label", "counter", 50.0), ("8", "gpu_label", "counter", 20.0)]


def test_node_share_splits_unlabelled_gpu_energy_by_allocated_gpus(con):
    pts = [(m, 60.0 * m) for m in range(0, 61)]  # 60 J per minute per GPU
    dcgm(DCGM0, pts, con)
    dcgm(DCGM1, pts, con)
    add_job(con, "c2", "A", "proj-a", "pretraining", 0, 30, {"n2": 1})
    add_job(con, "c2", "B", "proj-b", "finetuning", 30, 45, {"n2": None})  # unknown count: the whole node
    build(con, settings())
    got = {(j, a): round(e, 6) for j, a, _, e in fct(con)}
    assert got == {("A", "node_share"): 1800.0, ("B", "node_share"): 1800.0, (None, "unallocated"): 3600.0}
    rows = con.execute("SELECT DISTINCT job_id, project, phase, zone FROM fct_job_gpu_hour ORDER BY 1").fetchall()
    assert rows == [("A", "proj-a", "pretraining", "DE"), ("B", "proj-b", "finetuning", "DE"),
                    (None, None, None, "DE")]


def test_oversubscribed_node_never_creates_energy(con):
    dcgm(DCGM0, [(0, 0), (10, 600)], con)
    add_job(con, "c2", "A", "p", "pretraining", 0, 10, {"n2": 1})
    add_job(con, "c2", "B", "p", "pretraining", 0, 10, {"n2": 1})
    build(con, settings(max_gap_s=900))
    assert sum(e for *_, e in fct(con)) == pytest.approx(600.0)
    assert {j for j, *_ in fct(con)} == {"A", "B"}


def test_power_gauge_is_integrated_only_where_no_counter_exists(con):
    add_series(con, "power", "gpu_power", {"hostname": "p1", "gpu": "0", "uuid": "GPU-p"},
               [(m, 100.0) for m in range(0, 11)] + [(30, 100.0)])
    dcgm(DCGM0, [(0, 0), (1, 60)], con)
    dcgm(DCGM0, [(0, 300.0), (1, 300.0)], con, kind="gpu_power")  # has a counter: ignored
    s = build(con, settings())
    got = fct(con)
    assert (None, "unallocated", "power_integrated", 60000.0) in got
    assert (None, "unallocated", "counter", 60.0) in got
    assert len(got) == 2
    assert s.gaps == 1
    assert con.execute("SELECT energy_j FROM energy_gaps").fetchall() == [(None,)]


def test_intensity_fallback_chain_is_named_per_hour(con):
    # c1 (zone FR): hour 0 exact, hour 2 nearest (hour 3 is one away), month mean elsewhere
    for h, g in ((0, 50.0), (3, 70.0)):
        con.execute("INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s,"
                    " origin) VALUES ('FR', ?, ?, 'lifecycle', 't', false, 3600, 't')", [at(60 * h), g])
    wp("idle_energy", {}, [(m, 36000.0 * m) for m in range(0, 60 * 7 + 1, 5)], con)  # 0.1 kWh per 5 min... steady
    build(con, settings(max_gap_s=600, nearest_hour_bound_h=1))
    rows = dict(con.execute("SELECT hour(hour_ts), intensity_quality FROM fct_job_gpu_hour").fetchall())
    assert rows == {0: "hourly", 1: "nearest_hour", 2: "nearest_hour", 3: "hourly", 4: "nearest_hour",
                    5: "monthly_mean", 6: "monthly_mean"}
    g = dict(con.execute("SELECT hour(hour_ts), intensity_g_per_kwh FROM fct_job_gpu_hour").fetchall())
    assert g[1] == 50.0 and g[2] == 70.0 and g[5] == 60.0
    e = con.execute("SELECT energy_j, pue, emissions_g FROM fct_job_gpu_hour WHERE hour(hour_ts) = 0").fetchall()[0]
    assert e[2] == pytest.approx(e[0] / 3.6e6 * 1.2 * 50.0)


def test_zone_fallbacks_annual_then_world(con):
    wp("idle_energy", {}, [(0, 0), (1, 3.6e6)], con)                                  # c1 -> FR: annual 57
    add_series(con, "wattprint", "idle_energy", {"hostname": "zz", "gpu": "0", "uuid": "U"},  # no cluster -> c9
               [(0, 0), (1, 3.6e6)])
    build(con, settings())
    rows = con.execute("SELECT cluster, zone, intensity_quality, intensity_g_per_kwh, emissions_g"
                       " FROM fct_job_gpu_hour ORDER BY 1").fetchall()
    assert rows == [("c1", "FR", "annual_default", 57.0, pytest.approx(57.0 * 1.2)),
                    ("c9", None, "world_default", WORLD, pytest.approx(WORLD))]


def test_build_is_idempotent(con):
    wp("idle_energy", {}, [(0, 0), (1, 100), (2, 200)], con)
    build(con, settings())
    first = con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall()
    build(con, settings())
    assert con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall() == first
