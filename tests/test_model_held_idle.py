"""Held but idle GPUs and the equal-share fallback through the model: the exporter's
wattprint_job_held_idle_energy_joules_total, wattprint_job_held_idle_seconds_total and
wattprint_job_equal_share_seconds_total -> fct_job_gpu_held_idle_hour, priced as the job's own energy, never added to
it.

One GPU on node n1 (cluster c1: zone FR, PUE 1.2), written as the exporter exports it (tests/modelkit.py): job J1 (in
the ledger) holds it from 00:30 to 01:30 at 300 W; from 00:40 to 00:50 and again 01:10 to 01:20 the GPU is idle while
J1 holds it (90 W, counted in J1's energy and in its held-idle counter); from 01:00 to 01:30 job J2 (not in the
ledger) shares the GPU and the exporter splits it equally (both count equal-share time). The expected figures come
from those definitions, not from the counters.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.modelkit import T0, add_job, add_series, cover
from tests.test_model import settings
from wattprint.pipeline import db
from wattprint.pipeline.model import build

GPU = {"cluster": "c1", "hostname": "n1", "gpu": "0", "uuid": "GPU-n1-0", "model": "NVIDIA H100 80GB HBM3"}
FR_G = {0: 50.0, 1: 70.0}
IDLE = ((40, 50), (70, 80))          # minutes J1 held the GPU idle
SHARED = (60, 90)                    # minutes J2 shared it with J1 (equal split)


def _counter(start: int, end: int, per_min: Callable[[int], float]) -> list[tuple[float, float]]:
    pts, v = [], 0.0
    for m in range(start, end + 1):
        pts.append((float(m), v))
        v += per_min(m)
    return pts


def _in(m: int, spans) -> bool:  # type: ignore[no-untyped-def]
    return any(a <= m < b for a, b in spans)


def _j1_w(m: int) -> float:
    w = 90.0 if _in(m, IDLE) else 300.0
    return w / 2 if _in(m, (SHARED,)) else w


def _write(con, *, held_idle: bool = True) -> None:  # type: ignore[no-untyped-def]
    idle = _counter(0, 120, lambda m: 0.0 if 30 <= m < 90 else 60.0 * 60)
    j1 = _counter(30, 90, lambda m: _j1_w(m) * 60)
    j2 = _counter(60, 90, lambda m: _j1_w(m) * 60)
    add_series(con, "wattprint", "idle_energy", GPU, idle)
    total = [(t, i + dict(j1).get(t, j1[-1][1] if t > 90 else 0.0) + dict(j2).get(t, j2[-1][1] if t > 90 else 0.0))
             for t, i in idle]
    add_series(con, "wattprint", "gpu_energy", GPU, total)
    for job, pts, start in (("J1", j1, 30), ("J2", j2, 60)):
        labels = {**GPU, "job_id": job}
        add_series(con, "wattprint", "job_energy", labels, pts)
        add_series(con, "wattprint", "job_gpu_seconds", labels, _counter(start, 90, lambda m: 60.0))
        if held_idle:
            add_series(con, "wattprint", "job_held_idle_energy", labels,
                       _counter(start, 90, lambda m: _j1_w(m) * 60 if _in(m, IDLE) else 0.0))
            add_series(con, "wattprint", "job_held_idle_seconds", labels,
                       _counter(start, 90, lambda m: 60.0 if _in(m, IDLE) else 0.0))
            add_series(con, "wattprint", "job_equal_share_seconds", labels,
                       _counter(start, 90, lambda m: 60.0 if _in(m, (SHARED,)) else 0.0))
    for kind in ("idle_energy", "gpu_energy", "job_energy", "job_gpu_seconds", "job_held_idle_energy",
                 "job_held_idle_seconds", "job_equal_share_seconds"):
        cover(con, kind, 0, 120)
    add_job(con, "c1", "J1", "proj", "pretraining", 30, 90, {"n1": 1})
    con.executemany("INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s,"
                    " origin) VALUES ('FR', ?::TIMESTAMPTZ + to_hours(?), ?, 'lifecycle', 't', false, 3600, 't')",
                    [[T0, h, g] for h, g in FR_G.items()])


@pytest.fixture(scope="module")
def built(tmp_path_factory):  # type: ignore[no-untyped-def]
    con = db.connect(tmp_path_factory.mktemp("held") / "w.duckdb")
    _write(con)
    build(con, settings())
    yield con
    con.close()


def _rows(con) -> dict[tuple[int, str], tuple]:  # type: ignore[no-untyped-def]
    out = con.execute(
        "SELECT hour(hour_ts), job_id, held_idle_energy_j, held_idle_seconds, equal_share_seconds, pue,"
        " intensity_g_per_kwh, held_idle_emissions_g, project, phase, in_ledger, gpu_key"
        " FROM fct_job_gpu_held_idle_hour ORDER BY ALL").fetchall()
    return {(r[0], r[1]): r[2:] for r in out}


def test_held_idle_energy_time_and_equal_share_per_job_and_hour(built) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(built)
    # hour 0: J1 held the GPU idle 00:40-00:50 at 90 W; hour 1: 01:10-01:20, shared with J2 (half of 90 W each)
    assert rows[(0, "J1")][:3] == pytest.approx((90.0 * 600, 600.0, 0.0), abs=1e-6)
    assert rows[(1, "J1")][:3] == pytest.approx((45.0 * 600, 600.0, 1800.0), abs=1e-6)
    assert rows[(1, "J2")][:3] == pytest.approx((45.0 * 600, 600.0, 1800.0), abs=1e-6)
    assert set(rows) == {(0, "J1"), (1, "J1"), (1, "J2")}      # rows only where something was counted


def test_priced_with_the_jobs_own_intensity_and_pue(built) -> None:  # type: ignore[no-untyped-def]
    rows = _rows(built)
    for (h, job), r in rows.items():
        assert r[3] == 1.2 and r[4] == FR_G[h], (h, job)
        assert r[5] == pytest.approx(r[0] / 3.6e6 * 1.2 * FR_G[h])
        # the job's energy rows of the same hour carry the same price
        (pue, g) = built.execute("SELECT DISTINCT pue, intensity_g_per_kwh FROM fct_job_gpu_hour"
                                 " WHERE hour(hour_ts) = ? AND job_id = ?", [h, job]).fetchall()[0]
        assert (pue, g) == (r[3], r[4])
    assert rows[(0, "J1")][6:9] == ("proj", "pretraining", True)
    assert rows[(1, "J2")][6:9] == (None, "unclassified", False)
    assert rows[(0, "J1")][9] == built.execute("SELECT DISTINCT gpu_key FROM fct_job_gpu_hour").fetchall()[0][0]


def test_held_idle_is_a_part_of_job_energy_never_added_to_it(built, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # every held-idle joule is inside the job's own energy of that GPU and hour
    over = built.execute(
        "SELECT count(*) FROM fct_job_gpu_held_idle_hour h"
        " WHERE h.held_idle_energy_j > (SELECT sum(f.energy_j) FROM fct_job_gpu_hour f WHERE f.hour_ts = h.hour_ts"
        "  AND f.job_id = h.job_id AND f.gpu_key = h.gpu_key) + 1e-6").fetchall()[0][0]
    assert over == 0
    # and the priced results are the same, bit for bit, with or without the held-idle series beside them
    other = db.connect(tmp_path / "without.duckdb")
    try:
        _write(other, held_idle=False)
        build(other, settings())
        q = "SELECT * FROM fct_job_gpu_hour ORDER BY ALL"
        assert other.execute(q).fetchall() == built.execute(q).fetchall()
        q = "SELECT * FROM fct_gpu_hour ORDER BY ALL"
        assert other.execute(q).fetchall() == built.execute(q).fetchall()
        assert other.execute("SELECT count(*) FROM fct_job_gpu_held_idle_hour").fetchall()[0][0] == 0
        # jobs + idle == the GPU's counter, held-idle series or not
        (diff,) = built.execute("SELECT max(abs(diff_j)) FROM fct_gpu_hour").fetchall()[0]
        assert diff is not None and diff < 1e-6
    finally:
        other.close()


def test_energy_intervals_hold_no_held_idle_stream(built) -> None:  # type: ignore[no-untyped-def]
    kinds = {k for (k,) in built.execute("SELECT DISTINCT st.kind FROM energy_intervals JOIN streams st"
                                         " USING (stream_id)").fetchall()}
    assert not kinds & {"held_idle", "held_idle_seconds", "equal_share_seconds"}
    parents = built.execute("SELECT count(*) FROM streams WHERE kind IN ('held_idle', 'held_idle_seconds',"
                            " 'equal_share_seconds') AND parent_id IS NULL").fetchall()[0][0]
    assert parents == 0
