"""Real Prometheus and VictoriaMetrics servers preloaded with a known history, for tests and benchmarks.

Not a test module. Both stores run from the Debian binaries on a free loopback port with their own
data directory under the caller's tmp path, and are killed by stop() / the fixtures' teardown.

Loading history:

* Prometheus cannot ingest old samples through its API, so the history is written as OpenMetrics
  (timestamps in seconds) and turned into TSDB blocks with `promtool tsdb create-blocks-from
  openmetrics` before the server starts; blocks present at startup are queryable at once.
* VictoriaMetrics takes Prometheus text with millisecond timestamps on /api/v1/import/prometheus;
  samples become searchable only after /internal/force_flush (or about a second later), so the
  harness flushes and then polls /api/v1/export until every sample is visible.

Use timestamps well in the past (e.g. 2024) but after now - 100y: both servers run with a 100-year
retention, and VictoriaMetrics rejects samples more than two days in the future.
VictoriaMetrics stores values as decimals with about 12 significant digits, so compare values
that need more (e.g. 3.141592653589793) with a tolerance there, and it drops NaN samples.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import requests

from tests.conftest import free_port, require_tool

Sample = tuple[str, Mapping[str, str], float, float]  # (metric name, labels, ts in seconds, value)
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPES = ("counter", "gauge", "unknown")


# -- text formats ---------------------------------------------------------------------------------------


def escape_label(v: str) -> str:
    """A label value escaped for the Prometheus/OpenMetrics text formats (without quotes)."""
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(v: float) -> str:
    """repr() round-trips a float exactly; the text formats spell the special values differently."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def format_seconds(t: float) -> str:
    """A timestamp in seconds as exact decimal milliseconds, the resolution both stores keep."""
    whole, frac = divmod(round(t * 1000), 1000)
    return f"{whole}.{frac:03d}" if frac else str(whole)


def _labels_text(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}"


@dataclass
class History:
    """Samples grouped per series and sorted by time, as both text formats want them."""

    series: dict[SeriesKey, list[tuple[float, float]]] = field(default_factory=dict)

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> History:
        h = cls()
        for name, labels, ts, value in samples:
            if not _METRIC_NAME.match(name):
                raise ValueError(f"invalid metric name {name!r}")
            for k in labels:
                if not _LABEL_NAME.match(k) or k == "__name__":
                    raise ValueError(f"invalid label name {k!r} on {name}")
            # An empty label value means "no such label" in Prometheus' data model; VictoriaMetrics drops it.
            key = (name, tuple(sorted((k, v) for k, v in labels.items() if v != "")))
            h.series.setdefault(key, []).append((float(ts), float(value)))
        for key, points in h.series.items():
            points.sort(key=lambda p: p[0])
            for (t0, _), (t1, _) in zip(points, points[1:], strict=False):
                if round(t0 * 1000) == round(t1 * 1000):  # both stores keep milliseconds
                    raise ValueError(f"two samples for {key} at {t0}")
        return h

    @property
    def sample_count(self) -> int:
        return sum(len(p) for p in self.series.values())

    @property
    def span(self) -> tuple[float, float]:
        times = [t for points in self.series.values() for t in (points[0][0], points[-1][0])]
        return min(times), max(times)


def openmetrics_text(samples: Iterable[Sample] | History, types: Mapping[str, str] | None = None) -> str:
    """OpenMetrics text for `promtool tsdb create-blocks-from openmetrics` (timestamps in seconds).

    Every family is declared `gauge` unless `types` says otherwise. A `counter` family must be
    named without `_total` while its samples carry it (OpenMetrics), so for types={"x_total":
    "counter"} the family is declared as `x` and the samples keep `x_total`.
    """
    history = samples if isinstance(samples, History) else History.of(samples)
    types = dict(types or {})
    by_name: dict[str, list[SeriesKey]] = {}
    for key in history.series:
        by_name.setdefault(key[0], []).append(key)
    lines: list[str] = []
    for name in sorted(by_name):  # a family's samples must be contiguous
        kind = types.get(name, "gauge")
        if kind not in _TYPES:
            raise ValueError(f"type {kind!r} for {name}: use one of {_TYPES}")
        family = name
        if kind == "counter":
            if not name.endswith("_total"):
                raise ValueError(f"counter {name} must end in _total (OpenMetrics)")
            family = name[: -len("_total")]
        lines.append(f"# TYPE {family} {kind}")
        for key in sorted(by_name[name]):
            prefix = name + _labels_text(key[1])
            lines.extend(f"{prefix} {format_value(v)} {format_seconds(t)}" for t, v in history.series[key])
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def prometheus_text_lines(samples: Iterable[Sample] | History) -> Iterator[str]:
    """Prometheus exposition lines with millisecond timestamps (VictoriaMetrics' import format)."""
    history = samples if isinstance(samples, History) else History.of(samples)
    for key in sorted(history.series):
        prefix = key[0] + _labels_text(key[1])
        for t, v in history.series[key]:
            yield f"{prefix} {format_value(v)} {round(t * 1000)}\n"


# -- processes --------------------------------------------------------------------------------------------


@dataclass
class RunningStore:
    """A started server. stop() is idempotent; also usable as a context manager."""

    kind: str
    base_url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RunningStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def series_count(self, start: float, end: float) -> int:
        """Number of series with samples in [start, end] (seconds), via /api/v1/series."""
        r = requests.post(
            f"{self.base_url}/api/v1/series",
            data={"match[]": '{__name__=~".+"}', "start": repr(start), "end": repr(end)},
            timeout=10,
        )
        r.raise_for_status()
        return len(r.json()["data"])


def _start(kind: str, argv_for_port: Callable[[int], list[str]], ready_path: str, data_dir: Path, log_path: Path,
           timeout: float) -> RunningStore:
    # free_port() can race with another process grabbing the port; a bind failure gets a fresh one.
    for _ in range(3):
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen(argv_for_port(port), stdout=log, stderr=subprocess.STDOUT)
        store = RunningStore(kind, f"http://127.0.0.1:{port}", proc, data_dir, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(store.base_url + ready_path, timeout=2).status_code == 200:
                    return store
            except requests.RequestException:
                pass
            time.sleep(0.05)
        store.stop()
        if "address already in use" not in store.log_tail().lower():
            break
    raise RuntimeError(f"{kind} did not become ready on {store.base_url} within {timeout}s; log:\n{store.log_tail()}")


def _promtool_sample_count(output: str) -> int:
    # promtool prints a table: BLOCK ULID, MIN TIME, MAX TIME, DURATION, NUM SAMPLES, ...
    total = 0
    for line in output.splitlines():
        cols = line.split()
        if len(cols) >= 5 and re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", cols[0]):
            total += int(cols[4])
    return total


def start_prometheus_with_history(
    tmp_path: Path,
    history: Iterable[Sample] | History | Path,
    *,
    types: Mapping[str, str] | None = None,
    extra_args: Iterable[str] = (),
    timeout: float = 60.0,
) -> RunningStore:
    """Backfill `history` (samples, or a path to an OpenMetrics file) with promtool, then start Prometheus.

    The server has no scrape targets, so the stored series are exactly the history's.
    """
    promtool = require_tool("promtool")
    prometheus = require_tool("prometheus")
    tmp_path.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_path / "prometheus-data"
    expected: History | None = None
    if isinstance(history, Path):
        om_path = history
    else:
        expected = history if isinstance(history, History) else History.of(history)
        om_path = tmp_path / "history.om.txt"
        om_path.write_text(openmetrics_text(expected, types), encoding="utf-8")
    if expected is None or expected.series:
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om_path), str(data_dir)],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        if expected is not None and _promtool_sample_count(done.stdout) != expected.sample_count:
            raise RuntimeError(f"promtool wrote {_promtool_sample_count(done.stdout)} samples, "
                               f"expected {expected.sample_count}:\n{done.stdout}")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    extra = list(extra_args)

    def argv(port: int) -> list[str]:
        return [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
            *extra,
        ]

    store = _start("prometheus", argv, "/-/ready", data_dir, tmp_path / "prometheus.log", timeout)
    if expected is not None and expected.series:
        lo, hi = expected.span
        got = store.series_count(lo, hi)
        if got != len(expected.series):
            store.stop()
            raise RuntimeError(f"Prometheus shows {got} series, expected {len(expected.series)}:\n{store.log_tail()}")
    return store


@dataclass
class VictoriaMetrics(RunningStore):
    """A running victoria-metrics single node; load() adds more history at any time."""

    def load(self, samples: Iterable[Sample] | History, *, timeout: float = 30.0, batch_lines: int = 200_000) -> None:
        """Import samples and return once every one of them is readable."""
        history = samples if isinstance(samples, History) else History.of(samples)
        if not history.series:
            return
        batch: list[str] = []

        def post() -> None:
            r = requests.post(f"{self.base_url}/api/v1/import/prometheus", data="".join(batch).encode(), timeout=120)
            if r.status_code != 204:
                raise RuntimeError(f"VictoriaMetrics import failed: HTTP {r.status_code}: {r.text[:500]}")
            batch.clear()

        for line in prometheus_text_lines(history):
            batch.append(line)
            if len(batch) >= batch_lines:
                post()
        if batch:
            post()
        self.wait_visible(history, timeout=timeout)

    def wait_visible(self, history: History, *, timeout: float = 30.0) -> None:
        """Poll until each series of `history` has at least its samples in /api/v1/export.

        NaN samples do not count: VictoriaMetrics 1.79 drops them on import (a query then repeats
        the previous value over the gap, where Prometheus returns "NaN").
        """
        want = {key: sum(1 for _, v in points if not math.isnan(v)) for key, points in history.series.items()}
        lo, hi = history.span
        deadline = time.monotonic() + timeout
        have: dict[SeriesKey, int] = {}
        while True:
            # Flushing moves the in-memory buffers into searchable parts (otherwise ~1 s later).
            requests.get(f"{self.base_url}/internal/force_flush", timeout=30).raise_for_status()
            have = self._export_counts(lo, hi)
            if all(have.get(k, 0) >= n for k, n in want.items()):
                return
            if time.monotonic() > deadline:
                missing = [(k, have.get(k, 0), n) for k, n in want.items() if have.get(k, 0) < n]
                raise RuntimeError(f"{len(missing)} series not fully visible in VictoriaMetrics after {timeout}s "
                                   f"(series, samples seen, expected): {missing[:3]}")
            time.sleep(0.1)

    def _export_counts(self, lo: float, hi: float) -> dict[SeriesKey, int]:
        counts: dict[SeriesKey, int] = {}
        r = requests.post(
            f"{self.base_url}/api/v1/export",
            data={"match[]": '{__name__=~".+"}', "start": repr(lo), "end": repr(hi + 0.001)},
            timeout=120,
        )
        r.raise_for_status()
        for line in r.text.splitlines():
            if line.strip():
                # VictoriaMetrics 1.79 writes infinities as bare +Inf/-Inf, which is not JSON. Quotes
                # inside label values are escaped, so '"values":[' can only be the key itself.
                cut = line.rindex('"values":[')
                tail = line[cut:].replace("+Inf", "Infinity").replace("-Inf", "-Infinity")
                row = json.loads(line[:cut] + tail)
                metric = dict(row["metric"])
                name = metric.pop("__name__", "")
                counts[(name, tuple(sorted(metric.items())))] = len(row["timestamps"])
        return counts


def start_victoriametrics_with_history(
    tmp_path: Path,
    samples: Iterable[Sample] | History = (),
    *,
    extra_args: Iterable[str] = (),
    timeout: float = 30.0,
) -> VictoriaMetrics:
    """Start victoria-metrics and import `samples`; returns once they are all queryable."""
    binary = require_tool("victoria-metrics")
    tmp_path.mkdir(parents=True, exist_ok=True)
    data_dir = tmp_path / "vm-data"
    extra = list(extra_args)

    def argv(port: int) -> list[str]:
        return [
            binary,
            f"-storageDataPath={data_dir}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            # Without these, points within a minute of now are held back, and cached results of a
            # query made while an import was still landing could be served to a later query.
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
            *extra,
        ]

    base = _start("victoria-metrics", argv, "/health", data_dir, tmp_path / "victoria-metrics.log", timeout)
    store = VictoriaMetrics(base.kind, base.base_url, base.proc, base.data_dir, base.log_path)
    try:
        store.load(samples, timeout=timeout)
    except BaseException:
        store.stop()
        raise
    return store


# -- pytest fixtures (import them into a test module) --------------------------------------------------------


StartPrometheus = Callable[..., RunningStore]
StartVictoriaMetrics = Callable[..., VictoriaMetrics]


@pytest.fixture(scope="module")
def prometheus_with_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartPrometheus]:
    """Factory: prometheus_with_history(samples, **kw) -> RunningStore; all stopped after the module."""
    stores: list[RunningStore] = []

    def start(history: Iterable[Sample] | History | Path, **kw: Any) -> RunningStore:
        store = start_prometheus_with_history(tmp_path_factory.mktemp("prometheus"), history, **kw)
        stores.append(store)
        return store

    yield start
    for store in stores:
        store.stop()


@pytest.fixture(scope="module")
def victoriametrics_with_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartVictoriaMetrics]:
    """Factory: victoriametrics_with_history(samples, **kw) -> VictoriaMetrics; all stopped after the module."""
    stores: list[VictoriaMetrics] = []

    def start(samples: Iterable[Sample] | History = (), **kw: Any) -> VictoriaMetrics:
        store = start_victoriametrics_with_history(tmp_path_factory.mktemp("victoriametrics"), samples, **kw)
        stores.append(store)
        return store

    yield start
    for store in stores:
        store.stop()
