"""Equal inputs give equal results, bit for bit: the model's sums are exact (sql/macros.sql `exact_sum`) and the
result tables are stored in a fixed order, so neither DuckDB's thread count nor the order samples were stored in
moves a digit. (Adding doubles in a varying order, as parallel aggregation does, changes the last bits; incremental
builds are checked against full ones bit for bit, and reports must come out the same for the same data.)

The fleet: 64 GPUs on 8 nodes over two days at 60 s, with wattprint's split counters, dcgm-exporter counters and
power gauges on some GPUs, a random ledger and hourly intensity with holes (so the nearest-hour and monthly-mean
fallbacks run): enough rows for DuckDB to aggregate in parallel.
"""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from tests.modelkit import T0, add_job, cover
from wattprint.pipeline import db
from wattprint.pipeline.model import DERIVED, BuildSettings, ClusterFacts, build

MINUTES = 2 * 1440
NODES, GPUS = 8, 8


def _fleet(path: str, seed: int = 7) -> None:
    rnd = random.Random(seed)
    con = db.connect(path)
    rows = []
    for n in range(NODES):
        for g in range(GPUS):
            base = {"cluster": "c1", "hostname": f"node{n}", "gpu": str(g), "uuid": f"GPU-{n}-{g}"}
            source = "wattprint" if n < 5 else ("dcgm" if n < 7 else "power")
            if source == "wattprint":
                rows += [("wattprint", "gpu_energy", base, 1.0), ("wattprint", "idle_energy", base, 0.3)]
                rows += [("wattprint", "job_energy", {**base, "job_id": f"J{n}"}, 0.7)]
            elif source == "dcgm":
                rows.append(("dcgm", "gpu_energy", base, 1.0))
            else:
                rows.append(("power", "gpu_power", base, 1.0))
    for i, (source, kind, labels, share) in enumerate(rows, 1):
        con.execute(
            "INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, gpu, uuid, job_id,"
            " labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [i, source, kind, "q" + kind, f"{i}", labels["cluster"], labels["hostname"], labels["gpu"],
             labels["uuid"], labels.get("job_id"), json.dumps(labels)])
        # counters: a running sum of irregular per-minute joules (doubles with full mantissas); gauges: watts
        value = ("sum(w) OVER (ORDER BY m)" if kind != "gpu_power" else "w / 60.0")
        con.execute(
            f"INSERT INTO samples SELECT ?, ?::TIMESTAMPTZ + to_minutes(m), {value} FROM"
            " (SELECT m, ? * 60.0 * (300 + 400 * ((hash(?, m) % 1000) / 1000.0) + 1 / (m + 3.0)) AS w"
            f"  FROM range({MINUTES}) t(m)) ORDER BY m",
            [i, T0, share, i])
    for kind in ("gpu_energy", "idle_energy", "job_energy", "gpu_power"):
        cover(con, kind, 0, MINUTES)
    for j in range(40):
        start = rnd.randint(-600, MINUTES)
        add_job(con, "c1", f"J{j}", f"p{j % 3}", rnd.choice(["pretraining", "finetuning"]), start,
                start + rnd.randint(30, 1500), {f"node{rnd.randrange(NODES)}": rnd.choice([None, 1, 2, 8])})
    hours = [h for h in range(MINUTES // 60) if rnd.random() > 0.15]
    con.executemany(
        "INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
        " VALUES ('FR', ?::TIMESTAMPTZ + to_hours(?), ?, 'lifecycle', 'test', false, 3600, 'test')",
        [[T0, h, 20 + rnd.random() * 80] for h in hours])
    con.close()


SETTINGS = BuildSettings(clusters=(ClusterFacts("c1", zone="FR", pue=1.2),), world_g_per_kwh=475.0)


def _built(path: str, threads: int) -> dict[str, list[tuple]]:
    con = db.connect(path)
    con.execute(f"SET threads = {threads}")
    build(con, SETTINGS)
    out = {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in DERIVED}  # stored order: fct tables fixed
    for t in ("energy_intervals", "streams", "stream_spans", "energy_gaps", "gpu_coverage", "gpu_held_hour"):
        out[t] = sorted(out[t], key=repr)       # not read in order by anyone: compared as sets
    con.close()
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("det") / "w.duckdb")
    _fleet(path)
    return path


def test_thread_count_and_storage_order_change_no_bit(fleet: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    one = _built(fleet, 1)
    assert len(one["energy_intervals"]) > 400_000 and one["fct_job_gpu_hour"]
    quality = {r[0] for r in duckdb.connect(fleet, read_only=True).execute(
        "SELECT DISTINCT intensity_quality FROM fct_job_gpu_hour").fetchall()}
    assert {"hourly", "nearest_hour"} <= quality
    four = _built(fleet, 4)
    # the same samples stored in another order
    con = db.connect(fleet)
    con.execute("CREATE TEMP TABLE s AS SELECT * FROM samples")
    con.execute("DELETE FROM samples")
    con.execute("INSERT INTO samples SELECT * FROM s ORDER BY hash(series_id, ts)")
    con.close()
    shuffled = _built(fleet, 4)
    for t in DERIVED:
        assert one[t] == four[t], f"{t}: 1 thread and 4 threads differ"
        assert one[t] == shuffled[t], f"{t}: another storage order of the samples changed it"
