"""The fast int_hourly_pieces.sql against the straightforward reference SQL, on random data full of edge
cases: multi-hour and gap intervals, allocations on and off the hour, running jobs, unknown or zero GPU
counts, over-subscribed nodes, ledger nodes spelled in another case or as a FQDN, labelled and unlabelled dcgm
energy, power gauges and wattprint streams (GPU and host CPU) on the same GPUs (so one source covers another
for part of the time), and held-GPU-time counters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wattprint.pipeline import db
from wattprint.pipeline.model import BuildSettings, build, materialize, model

REFERENCE = (Path(__file__).parent / "reference" / "int_hourly_pieces_simple.sql").read_text(encoding="utf-8")
T0 = 1709251200  # 2024-03-01T00:00Z


def _random_db(seed: int):  # type: ignore[no-untyped-def]
    rnd = random.Random(seed)
    con = db.connect(":memory:")
    build(con, BuildSettings())     # the derived tables, empty: the test fills the ones the attribution reads
    streams = []
    nodes = [f"n{i}" for i in range(rnd.randint(1, 4))]
    kinds = [("gpu", "dcgm"), ("gpu_power", "power"), ("idle", "wattprint"), ("job", "wattprint"), ("gpu", "wattprint"),
             ("cpu_job", "wattprint"), ("cpu_idle", "wattprint"), ("cpu", "wattprint")]
    for cluster in ("c1", "c2"):
        for node in nodes:
            for g in range(rnd.randint(1, 4)):
                for kind, source in rnd.sample(kinds, k=rnd.randint(1, 3)):
                    job = f"J{rnd.randint(0, 5)}" if kind in ("job", "cpu_job") else None
                    streams.append((len(streams) + 1, source, kind, cluster, node, str(g), f"U{cluster}{node}{g}", job))
    con.executemany("INSERT INTO streams (stream_id, source, kind, cluster, hostname, gpu, uuid, job_id, node, gpu_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[*s, s[4], None if s[2].startswith("cpu") else "uuid:" + s[6].lower()] for s in streams])
    rows = []
    for s in streams:
        t = T0 + rnd.randint(-3000, 3000)
        end = T0 + rnd.randint(3600 * 2, 3600 * 8)
        while t < end:
            step = rnd.choice([60, 60, 60, 60, 90, 300, 17, 3600 * 2 + 123, 5400])
            quality = rnd.choice(["counter", "counter", "gap", "first_sample", "counter_reset", "power_integrated"])
            label = rnd.choice([None, None, "J1", "J2", "X9"]) if s[1] != "wattprint" else None
            rows.append([s[0], t, t + step, rnd.choice([rnd.uniform(0, 1000)] * 9 + [0.0]), quality, label])
            t += step + rnd.choice([0, 0, 0, 0, 7, 600])
    con.executemany("INSERT INTO energy_intervals VALUES (?, to_timestamp(?), to_timestamp(?), ?, ?, ?)", rows)
    for i in range(rnd.randint(0, 12)):
        cluster = rnd.choice(["c1", "c2"])
        on_hour = seed % 3 == 0
        start = T0 + (3600 * rnd.randint(-1, 8) if on_hour
                      else rnd.choice([rnd.randint(-4000, 30000), 3600 * rnd.randint(-1, 8)]))
        end_ts = None if rnd.random() < 0.15 else start + (
            3600 * rnd.randint(1, 4) if on_hour else rnd.choice([rnd.randint(1, 20000), 3600 * rnd.randint(1, 4), 30]))
        con.execute("INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
                    " VALUES (?, ?, 'p', 'pretraining', to_timestamp(?), to_timestamp(?), 't', 't')",
                    [cluster, f"J{i}", start, end_ts])
        for node in rnd.sample(nodes, k=rnd.randint(1, len(nodes))):
            spelled = rnd.choice([node, node.upper(), f"{node}.cluster.example.org"])
            con.execute("INSERT INTO job_nodes VALUES (?, ?, ?, ?)", [cluster, f"J{i}", spelled,
                                                                       rnd.choice([None, 1, 2, 8, 0])])
    held = [[s[0], (T0 // 3600) + rnd.randint(0, 8), rnd.choice(["counter", "first_sample"]), rnd.uniform(0, 3600)]
            for s in streams if s[2] == "job" and rnd.random() < 0.5]
    if held:
        con.executemany("INSERT INTO gpu_held_hour VALUES (?, ?, ?, ?)", held)
    # what the model builds before int_hourly_pieces, from these intervals (every one of them stands for a counter's
    # where gpu_coverage asks: it only spans GPU counter streams)
    con.execute("CREATE TEMP TABLE stg_counter_intervals AS SELECT * FROM energy_intervals")
    for name in ("macros", "stream_spans", "gpu_coverage", "int_node_allocations"):
        materialize(con, model(name), BuildSettings().params())
    return con, len(rows)


@pytest.mark.parametrize("seed", range(40))
def test_fast_attribution_matches_the_reference(seed):
    con, n = _random_db(seed)
    out = []
    for sql in (REFERENCE, None):
        materialize(con, model("int_hourly_pieces"), BuildSettings().params(), sql=sql)
        out.append({tuple(r[:5]): (r[5], r[6]) for r in con.execute(
            "SELECT stream_id, hour_idx, job_id, attribution, quality, energy_j, gpu_seconds FROM int_hourly_pieces"
        ).fetchall()})
    ref, fast = out
    assert set(ref) == set(fast), seed
    for key, (joules, seconds) in ref.items():
        assert fast[key][0] == pytest.approx(joules, rel=1e-9, abs=1e-9), key
        assert fast[key][1] == pytest.approx(seconds, rel=1e-9, abs=1e-6), key
    # conservation: every joule of every interval is in one piece (priced, a total, or unpriced), none created
    assert not [k for k, v in fast.items() if v[0] == 0 and k[3] != "exporter"], "a piece of nothing"
    total_in = con.execute("SELECT coalesce(sum(energy_j), 0) FROM energy_intervals").fetchall()[0][0]
    assert sum(v[0] for v in fast.values()) == pytest.approx(total_in, rel=1e-9)
    # time is conserved too: a GPU-level stream's pieces (labelled, jobs' shares, unallocated, unpriced) cover
    # exactly the time of its intervals that counted something
    secs_in, secs_out = con.execute(
        "SELECT (SELECT coalesce(sum(epoch(end_ts) - epoch(start_ts)), 0) FROM energy_intervals"
        "        JOIN streams USING (stream_id) WHERE source <> 'wattprint' AND energy_j > 0),"
        "       (SELECT coalesce(sum(gpu_seconds), 0) FROM int_hourly_pieces JOIN streams USING (stream_id)"
        "        WHERE source <> 'wattprint')").fetchall()[0]
    assert secs_out == pytest.approx(secs_in, rel=1e-9, abs=1e-6)
    con.close()
