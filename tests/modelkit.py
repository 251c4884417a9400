"""Write series, samples and coverage straight into a wattprint DuckDB, as ingest would, for model tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def add_series(con: duckdb.DuckDBPyConnection, source: str, kind: str, labels: dict[str, str],
               points: Sequence[tuple[float, float]], *, query: str = "q", job_key: str = "job_id") -> int:
    """points: (minutes after T0, value in joules or watts)."""
    fp = kind + "\x1f" + json.dumps(sorted(labels.items()))
    sid = con.execute(
        "INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, gpu, uuid, job_id, labels,"
        " model, socket, domain) VALUES (nextval('series_id_seq'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING series_id",
        [source, kind, query + kind, fp, labels.get("cluster"), labels.get("hostname") or labels.get("Hostname"),
         labels.get("gpu"), labels.get("uuid") or labels.get("UUID"), labels.get(job_key), json.dumps(labels),
         labels.get("model") or labels.get("modelName"), labels.get("socket"), labels.get("domain")],
    ).fetchall()[0][0]
    # one statement for all points (executemany costs a round trip per row)
    con.execute("INSERT INTO samples SELECT ?, unnest(?::TIMESTAMPTZ[]), unnest(?::DOUBLE[])",
                [sid, [at(m) for m, _ in points], [float(v) for _, v in points]])
    return int(sid)


def cover(con: duckdb.DuckDBPyConnection, kind: str, start_min: float, end_min: float, step_s: int = 60) -> None:
    con.execute(
        "INSERT INTO ingest_coverage (kind, query, start_ts, end_ts, step_s, series, samples, endpoint)"
        " VALUES (?, 'q' || ?, ?, ?, ?, 0, 0, 'test')",
        [kind, kind, at(start_min), at(end_min), step_s],
    )


def add_job(con: duckdb.DuckDBPyConnection, cluster: str, job_id: str, project: str, phase: str,
            start_min: float, end_min: float | None, nodes: dict[str, int | None]) -> None:
    con.execute(
        "INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
        " VALUES (?, ?, ?, ?, ?, ?, 'test', 'test')",
        [cluster, job_id, project, phase, at(start_min), at(end_min) if end_min is not None else None],
    )
    for node, gpus in nodes.items():
        con.execute("INSERT INTO job_nodes VALUES (?, ?, ?, ?)", [cluster, job_id, node, gpus])


def add_steady_job(con: duckdb.DuckDBPyConnection, job_id: str, project: str, phase: str, cluster: str, node: str,
                   watts: float, minutes: int) -> None:
    """A job alone on its node's one GPU (an A100, uuid GPU-<node>) from T0 for `minutes` at `watts`: the GPU and job
    counters every 5 minutes, and the ledger row."""
    labels = {"cluster": cluster, "hostname": node, "gpu": "0", "uuid": f"GPU-{node}", "model": "NVIDIA A100"}
    pts = [(float(m), m * 60 * watts) for m in range(0, minutes + 1, 5)]
    add_series(con, "wattprint", "gpu_energy", labels, pts)
    add_series(con, "wattprint", "job_energy", {**labels, "job_id": job_id}, pts)
    add_job(con, cluster, job_id, project, phase, 0, minutes, {node: 1})


def fct(con: duckdb.DuckDBPyConnection, where: str = "true", params: Sequence[object] = ()) -> list[tuple]:
    return con.execute(
        "SELECT job_id, attribution, energy_quality, sum(energy_j) FROM fct_job_gpu_hour"
        f" WHERE {where} GROUP BY ALL ORDER BY ALL", list(params)
    ).fetchall()
