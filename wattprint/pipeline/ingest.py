"""Pull energy series from a Prometheus-compatible API into DuckDB.

Counters are stored as sampled values at each query step (never as `increase()` windows, whose
extrapolation drifts); the model turns them into intervals. Each query_range chunk is written in
one transaction (delete the window, insert it again), so re-running a window is idempotent and a
run killed half-way leaves whole chunks that the next run simply rewrites.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate, chain

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .. import contract as C
from .db import transaction
from .errors import InputError
from .promapi import PromClient, selector


@dataclass(frozen=True)
class SeriesQuery:
    """One metric to pull, and how its labels map onto GPUs and jobs."""

    source: str                      # wattprint | dcgm | power | amd | node
    kind: str                        # see the series kinds below
    metric: str
    scale: float = 1.0               # multiply to get joules / seconds (counters) or watts / 0-1 (gauges)
    host_labels: tuple[str, ...] = ("hostname", "Hostname")
    gpu_labels: tuple[str, ...] = ("gpu",)
    uuid_labels: tuple[str, ...] = ("uuid", "UUID")
    job_labels: tuple[str, ...] = ()
    cluster_labels: tuple[str, ...] = ("cluster",)
    model_labels: tuple[str, ...] = ("model", "modelName")
    socket_labels: tuple[str, ...] = ()      # CPU series: the package index
    domain_labels: tuple[str, ...] = ()      # CPU series: package | dram
    # a source's own rules (amd.py): label matchers added to the selector, (label, operator, value); the metric name
    # in the series' identity (two gauges of one meaning read into one stream); the labels whose value marks a
    # partitioned GPU (other than "", "spx", "none"), whose lines name the job of one partition only: no job read
    # from them; and a function naming the model from the label the model_labels found
    matchers: tuple[tuple[str, str, str], ...] = ()
    name_in_identity: bool = False
    partition_type_labels: tuple[str, ...] = ()
    model_name: Callable[[str], str] | None = None

    @property
    def is_counter(self) -> bool:
        return self.kind not in GAUGE_KINDS

    @property
    def what(self) -> str:
        """What the counter counts, for messages."""
        return {"job_cpu_seconds": "CPU-time", "job_gpu_seconds": "GPU-time", "job_held_idle_seconds": "held-idle-time",
                "job_equal_share_seconds": "equal-share-time"}.get(self.kind, "energy")


# Series kinds. GPU: job_energy, gpu_energy, idle_energy (counters, J), job_gpu_seconds (counter, s a job held the
# GPU), job_held_idle_energy (counter, J: the part of job_energy while the held GPU was idle), job_held_idle_seconds and
# job_equal_share_seconds (counters, s), gpu_power (gauge, W). Host (the exporter's
# RAPL collector): cpu_energy, cpu_idle_energy, job_cpu_energy (counters, J, per socket and domain),
# job_cpu_seconds (counter, s of CPU time per job) and cpu_rapl_up (gauge, 1 when every RAPL zone was read). Node
# (the BMC: source `node`): node_energy (counter, J, per host) and node_power (gauge, W, per host); the BMC reading
# (redfish | ipmi) is stored as their domain.
# partition_energy (counter, J): the energy lines of an AMD GPU's secondary partitions, stored to be counted in the
# reports, never priced (amd.py).
GAUGE_KINDS = ("gpu_power", "cpu_rapl_up", "node_power")
UNPARTITIONED = ("", "spx", "none")     # compute-partition types of a whole GPU (device-metrics-exporter labels)
CPU_METRICS = {
    "cpu_energy": C.series(C.CPU_ENERGY),
    "cpu_idle_energy": C.series(C.CPU_IDLE_ENERGY),
    "job_cpu_energy": C.series(C.JOB_CPU_ENERGY),
    "job_cpu_seconds": C.series(C.JOB_CPU_SECONDS),
    "cpu_rapl_up": C.series(C.CPU_RAPL_UP),
}


def cpu_query(kind: str, metric: str, host_labels: tuple[str, ...] = ("hostname",),
              job_labels: tuple[str, ...] = ("job_id",), cluster_labels: tuple[str, ...] = ("cluster",),
              model_labels: tuple[str, ...] = ("model",)) -> SeriesQuery:
    """The query of one of the exporter's host (RAPL) series: no GPU labels; socket and domain on the energy ones."""
    energy = kind in ("cpu_energy", "cpu_idle_energy", "job_cpu_energy")
    return SeriesQuery(
        "wattprint", kind, metric, 1.0, host_labels, (), (),
        job_labels if kind in ("job_cpu_energy", "job_cpu_seconds") else (), cluster_labels,
        model_labels if energy else (), ("socket",) if energy else (), ("domain",) if energy else (),
    )


@dataclass
class IngestStats:
    queries: int = 0
    chunks: int = 0
    series: int = 0
    new_series: int = 0
    samples: int = 0
    non_finite_dropped: int = 0
    per_kind: dict[str, int] = field(default_factory=dict)


def _first(labels: Mapping[str, str], keys: Iterable[str]) -> str | None:
    for k in keys:
        v = labels.get(k)
        if v:
            return v
    return None


class _SeriesIds:
    """fingerprint -> series_id, loaded once per run and extended as new series appear."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._ids = {fp: int(sid) for fp, sid in con.execute("SELECT fingerprint, series_id FROM series").fetchall()}

    def get(self, fingerprint: str) -> int | None:
        return self._ids.get(fingerprint)

    def add(self, fingerprint: str, sid: int) -> None:
        self._ids[fingerprint] = sid

    def forget(self, fingerprints: Iterable[str]) -> None:
        for fp in fingerprints:
            self._ids.pop(fp, None)


_SAMPLE_SCHEMA = pa.schema([("series_id", pa.int64()), ("ts", pa.float64()), ("value", pa.float64())])


def _series_id(q: SeriesQuery, item: dict, ids: _SeriesIds, new_rows: list[tuple], seen: list[int]
               ) -> tuple[int, dict[str, str]]:
    """The id of a result item's series (a negative placeholder for a new one, added to new_rows), and its labels."""
    labels = dict(item.get("metric") or {})
    name = labels.pop("__name__", None)
    fp = q.kind + "\x1f" + json.dumps(sorted(labels.items()), ensure_ascii=False)
    if q.name_in_identity:
        fp += "\x1f" + str(name or q.metric)
    sid = ids.get(fp)
    if sid is None:
        sid = -(len(new_rows) + 1)          # placeholder until the sequence assigns one
        new_rows.append((sid, fp, labels))
    seen.append(sid)
    return sid, labels


def _convert(q: SeriesQuery, result: list[dict], ids: _SeriesIds, stats: IngestStats
             ) -> tuple[list[tuple], list[int], pa.Table]:
    """Raw query_range result -> (new series rows, ids of all series seen, samples table).

    Labels are handled per series in Python; the points (millions per chunk) are converted in bulk by
    Arrow. Anything the bulk path might not handle exactly as float() and the reference loop do (a
    value Arrow cannot parse, a point that is not a [t, v] pair, a malformed series, a negative
    counter, which must raise the message naming its series) sends the whole chunk through
    `_convert_points`, the point-by-point reference, instead; the bulk path changes nothing until it
    has succeeded, so the reference starts from the same state.
    """
    new_rows: list[tuple] = []
    seen: list[int] = []
    points: list = []
    counts: list[int] = []
    try:
        for item in result:
            _series_id(q, item, ids, new_rows, seen)
            values = item.get("values") or []
            if type(values) is not list:
                raise TypeError("values is not a list")
            points.extend(values)
            counts.append(len(values))
    except Exception:
        columns = None                              # the reference raises what it should, where it should
    else:
        columns = _bulk_points(q, points, seen, counts)
    if columns is None:
        return _convert_points(q, result, ids, stats)
    table, dropped = columns
    stats.non_finite_dropped += dropped
    return new_rows, seen, table


def _bulk_points(q: SeriesQuery, points: list, sids: list[int], counts: list[int]) -> tuple[pa.Table, int] | None:
    """(samples table, non-finite points dropped) from all series' points concatenated; None: use the reference."""
    if not points:
        return _SAMPLE_SCHEMA.empty_table(), 0
    try:
        if set(map(len, points)) != {2}:
            return None
        flat = list(chain.from_iterable(points))
        ts = pa.array(flat[0::2], pa.float64())
        value = pc.cast(pa.array(flat[1::2], pa.large_string()), pa.float64())   # "NaN", "+Inf", "-Inf" too
    except (TypeError, ValueError, OverflowError, pa.ArrowException):
        return None
    del flat
    if ts.null_count or value.null_count:           # None in a point: float() raises, Arrow would not
        return None
    finite = pc.is_finite(value)
    if q.is_counter and pc.any(pc.and_(finite, pc.less(value, 0.0))).as_py():
        return None
    runs = [(sid, n) for sid, n in zip(sids, counts, strict=True) if n]     # series id repeated per point
    run_ends = pa.array(list(accumulate(n for _, n in runs)), pa.int64())
    sid_col = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(run_ends, pa.array([s for s, _ in runs], pa.int64())))
    table = pa.table([sid_col, ts, pc.multiply(value, q.scale)], schema=_SAMPLE_SCHEMA)
    kept = pc.sum(finite).as_py() or 0
    if kept < len(points):
        table = table.filter(finite)
    return table, len(points) - kept


def _convert_points(q: SeriesQuery, result: list[dict], ids: _SeriesIds, stats: IngestStats
                    ) -> tuple[list[tuple], list[int], pa.Table]:
    """_convert point by point: the reference for its bulk path, and the path for anything unusual."""
    new_rows: list[tuple] = []
    seen: list[int] = []
    sid_col: list[int] = []
    ts_col: list[float] = []
    val_col: list[float] = []
    for item in result:
        sid, labels = _series_id(q, item, ids, new_rows, seen)
        values = item.get("values") or []
        for t, v in values:
            x = float(v)
            if not math.isfinite(x):
                stats.non_finite_dropped += 1
                continue
            if q.is_counter and x < 0:
                raise InputError(
                    f"series {q.metric}{_fmt_labels(labels)}",
                    f"negative {q.what} counter value {v} at {datetime.fromtimestamp(float(t), UTC).isoformat()}",
                    f"{q.what} counters cannot go below 0: fix the exporter or exclude the series with --match",
                )
            sid_col.append(sid)
            ts_col.append(float(t))
            val_col.append(x * q.scale)
    table = pa.table({
        "series_id": pa.array(sid_col, pa.int64()),
        "ts": pa.array(ts_col, pa.float64()),
        "value": pa.array(val_col, pa.float64()),
    })
    return new_rows, seen, table


def _fmt_labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def ingest(
    con: duckdb.DuckDBPyConnection,
    client: PromClient,
    queries: Iterable[SeriesQuery],
    start: datetime,
    end: datetime,
    step_s: int,
    *,
    matchers: Mapping[str, str] | None = None,
    endpoint: str = "",
    progress: Callable[[str], None] | None = None,
    max_points_per_request: int | None = None,
) -> IngestStats:
    """Load every query's series over [start, end] at step_s. Raises InputError / UpstreamError.

    `max_points_per_request`: the points (series x steps) one response may hold; the series are counted first and
    the window cut into time chunks to match (None: only Prometheus's 11,000 steps per series bound a chunk)."""
    stats = IngestStats()
    ids = _SeriesIds(con)
    with _gc_paused():
        for q in queries:
            stats.queries += 1
            query = selector(q.metric, dict(matchers or {}), q.matchers)
            # Series belong to the (endpoint, query) that loaded them: a window re-read from the same store
            # replaces its own series, and never those another Prometheus (another cluster) contributed.
            owner = f"{endpoint} {query}"
            if max_points_per_request is None:
                chunks = client.query_range(query, start, end, step_s)
            else:
                # a 10,000-GPU fleet's 11,000 steps would be 110 M points in one response: gigabytes on both sides
                # and over Prometheus's --query.max-samples; the series over the whole window bound those of a chunk
                n = len(client.series([query], start, end))
                steps = max(1, max_points_per_request // max(n, 1))
                chunks = client.query_range(query, start, end, step_s, max_points=steps)
            for chunk in chunks:
                new_rows, seen, table = _convert(q, chunk.series, ids, stats)
                _write_chunk(con, q, owner, chunk.start, chunk.end, step_s, new_rows, seen, table, endpoint, ids)
                stats.chunks += 1
                stats.series += len(seen)
                stats.new_series += len(new_rows)
                stats.samples += table.num_rows
                kind = f"{q.source}/{q.kind}"
                stats.per_kind[kind] = stats.per_kind.get(kind, 0) + table.num_rows
                if progress:
                    progress(f"{q.metric}: {chunk.start.isoformat()} .. {chunk.end.isoformat()}: "
                             f"{len(seen)} series, {table.num_rows} samples")
                del chunk, table    # don't hold this response's parsed points while the next one is read
    return stats


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off.

    A query_range response parses into millions of small lists ([t, "v"] per point). Every few hundred
    new containers trigger a collection, and the full ones traverse every object still alive: parsing
    one 82 MB response (256 series x 11,000 points) took 2.3 s with the collector on and 0.8 s with it
    off (benchmarks/bench_ingest.py). The points hold no cycles and are freed by reference counting;
    whatever cyclic garbage the block leaves is collected as usual once the collector is back on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _series_rows(q: SeriesQuery, query: str, new_rows: list[tuple], ids: list[int]) -> pa.Table:
    """The series table's rows of the new series, with their ids."""
    labels = [r[2] for r in new_rows]

    def column(keys: Iterable[str]) -> pa.Array:
        return pa.array([_first(lab, keys) for lab in labels], pa.string())

    n = len(new_rows)
    jobs = column(q.job_labels)
    if q.partition_type_labels:
        # a partitioned GPU's line names the job on one partition: its energy is the whole GPU's, not that job's
        parted = [(_first(lab, q.partition_type_labels) or "").lower() not in UNPARTITIONED for lab in labels]
        jobs = pa.array([None if p else j for p, j in zip(parted, jobs.to_pylist(), strict=True)], pa.string())
    models = column(q.model_labels)
    if q.model_name is not None:
        name = q.model_name
        models = pa.array([None if m is None else name(m) for m in models.to_pylist()], pa.string())
    return pa.table({
        "series_id": pa.array(ids, pa.int64()), "source": pa.array([q.source] * n, pa.string()),
        "kind": pa.array([q.kind] * n, pa.string()), "query": pa.array([query] * n, pa.string()),
        "fingerprint": pa.array([r[1] for r in new_rows], pa.string()), "cluster": column(q.cluster_labels),
        "hostname": column(q.host_labels), "gpu": column(q.gpu_labels), "uuid": column(q.uuid_labels),
        "job_id": jobs,
        "labels": pa.array([json.dumps(lab, ensure_ascii=False) for lab in labels], pa.string()),
        "model": models, "socket": column(q.socket_labels), "domain": column(q.domain_labels),
    })


def _write_chunk(
    con: duckdb.DuckDBPyConnection, q: SeriesQuery, query: str, c_start: datetime, c_end: datetime, step_s: int,
    new_rows: list[tuple], seen: list[int], table: pa.Table, endpoint: str, ids: _SeriesIds,
) -> None:
    placeholder: dict[int, int] = {}
    try:
        with transaction(con):
            if new_rows:
                # the ids the sequence would have given them one by one, in the same order, but in one statement:
                # one INSERT per series cost ~1 ms each, 10 s of a 10,240-GPU fleet's first chunk
                fresh = [int(r[0]) for r in con.execute(
                    "SELECT nextval('series_id_seq') AS id FROM range(?) ORDER BY id", [len(new_rows)]).fetchall()]
                placeholder = {tmp_id: sid for (tmp_id, _, _), sid in zip(new_rows, fresh, strict=True)}
                con.register("new_series", _series_rows(q, query, new_rows, fresh))
                try:
                    con.execute("INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname,"
                                " gpu, uuid, job_id, labels, model, socket, domain) SELECT * FROM new_series")
                finally:
                    con.unregister("new_series")
            if placeholder:
                sid = table.column("series_id").to_pylist()
                table = table.set_column(0, "series_id", pa.array([placeholder.get(s, s) for s in sid], pa.int64()))
            seen_ids = [placeholder.get(s, s) for s in seen]
            # Replace the window for every series this query owns or returned now, so a series
            # that vanished from the source also vanishes here.
            con.execute(
                "DELETE FROM samples WHERE ts BETWEEN ? AND ? AND series_id IN ("
                " SELECT series_id FROM series WHERE query = ? AND kind = ?"
                " UNION ALL SELECT unnest(?::BIGINT[]))",
                [c_start, c_end, query, q.kind, seen_ids],
            )
            con.register("chunk_samples", table)
            try:
                con.execute("INSERT INTO samples SELECT series_id, to_timestamp(ts), value FROM chunk_samples")
            finally:
                con.unregister("chunk_samples")
            con.execute(
                "DELETE FROM ingest_coverage WHERE kind = ? AND query = ? AND start_ts = ? AND end_ts = ?",
                [q.kind, query, c_start, c_end],
            )
            con.execute(
                "INSERT INTO ingest_coverage (kind, query, start_ts, end_ts, step_s, series, samples, endpoint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [q.kind, query, c_start, c_end, step_s, len(seen), table.num_rows, endpoint],
            )
    except BaseException:
        ids.forget(fp for _, fp, _ in new_rows)
        raise
    for tmp_id, fp, _ in new_rows:
        ids.add(fp, placeholder[tmp_id])


