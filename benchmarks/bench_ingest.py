"""Cost of `ingest` (Prometheus query_range -> DuckDB samples) against curl downloading the same responses.

History: `--gpus` GPUs (8 per host) x `--days` days of the exporter's `wattprint_gpu_energy_joules_total{cluster,
hostname,gpu,uuid,model}` counter at `--step` s (256 x 30 d x 60 s = 11.06 M samples), each GPU's power a bounded
random walk between 100 and 700 W integrated into joules (millijoule resolution). It is written as OpenMetrics
straight to a file, one series at a time (numpy per series, never all samples in memory), turned into TSDB blocks
by `promtool tsdb create-blocks-from openmetrics --max-block-duration=744h` (backfill, timed; 486 h blocks, the
largest a long-retention Prometheus compacts to, so the server has nothing to compact at start) and served by a
real `prometheus` on a free loopback port. With `--data-dir PATH` the blocks are kept there and a re-run with the
same --gpus/--days/--step skips generation and backfill.

Measured in one run against the same server, after one untimed warm-up pass over every request:

  curl       the exact requests wattprint makes: the chunks of pipeline.promapi.range_chunks (at most 11,000
             points per series each), POSTed form-encoded to /api/v1/query_range with wattprint's headers
             (Accept-Encoding: gzip, deflate, as requests sends it), one `curl -s --compressed -o /dev/null`
             process per chunk, one after another like the client; the sum of the processes' wall times. Every
             response must be HTTP 200. Also timed without gzip (Accept-Encoding: identity), for reference.
  ingest     pipeline.ingest.ingest(con, PromClient(PromConfig(url)), [the gpu_energy SeriesQuery of
             load_settings(None).queries()], start, end, step) into a fresh pipeline.db.connect() file, in a fresh
             subprocess (peak RSS = its VmHWM), then pipeline.model.build(con, build_settings()) timed on its
             own (not in the ratio). Also with Accept-Encoding: identity (PromConfig(extra_headers=...)), against
             the identity curl pass.

The ingest is split, by wrapping functions in the subprocess: HTTP = requests' Session.request (send, wait for the
server, read and gunzip the body), decode = the rest of PromClient._call (JSON parsing and checks), convert =
pipeline.ingest._convert, write = pipeline.ingest._write_chunk (the DuckDB transaction), other = the remainder.
Each measured phase runs `--reps` times (default 2), interleaved: curl gzip, ingest gzip, curl identity, ingest
identity, then again. `--compare-root PATH` also times the ingest of another checkout (its `pipeline` package, e.g. a
git worktree of the previous commit) right after each of this checkout's, for before/after numbers in one run.

The requests are cut as `wattprint ingest` cuts them: at most 11,000 steps per series and at most
`--max-points-per-request` points (series x steps; default the config's ingest.max_points_per_request) per request.

    .venv/bin/python benchmarks/bench_ingest.py [--gpus 256 --days 30 --step 60] [--data-dir PATH]
        [--reps 2] [--compare-root PATH] [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METRIC = "wattprint_gpu_energy_joules_total"
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
GPUS_PER_HOST = 8
MODEL = "NVIDIA H100 80GB HBM3"
CLUSTER = "bench"
TARGET_RATIO = 2.0
MARKER = "bench_ingest.json"
BLOCK_DURATION = "744h"   # promtool rounds down to the largest compaction range that fits: 486 h


# --------------------------------------------------------------------------------------------- history

def series_labels(g: int) -> dict[str, str]:
    host, slot = divmod(g, GPUS_PER_HOST)
    h = hashlib.md5(f"bench-gpu-{g}".encode()).hexdigest()   # fixed per GPU, so re-runs and the cache agree
    uuid = f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
    return {"cluster": CLUSTER, "gpu": str(slot), "hostname": f"gpu-node-{host:03d}", "model": MODEL, "uuid": uuid}


def write_openmetrics(path: Path, gpus: int, days: int, step: int, seed: int = 7) -> int:
    """Stream the history to `path` (tests/promstack.openmetrics_text's format); returns the sample count."""
    import numpy as np

    from tests.promstack import escape_label, format_seconds

    n = days * 86400 // step
    t0 = int(T0.timestamp())
    stamps = [format_seconds(t0 + k * step) for k in range(n)]
    total = 0
    with path.open("w", encoding="utf-8", buffering=1 << 22) as f:
        f.write("# TYPE " + METRIC.removesuffix("_total") + " counter\n")
        keys = sorted((tuple(sorted(series_labels(g).items())), g) for g in range(gpus))  # promstack's order
        for labels, g in keys:
            rng = np.random.default_rng([seed, g])
            # power: a random walk folded into [100, 700] W through a sine, so it stays bounded without clipping
            phase = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.05, n))
            watts = 400.0 + 300.0 * np.sin(phase)
            joules = np.round(rng.uniform(1e7, 1e9) + np.cumsum(watts * step), 3)
            if not (np.all(np.diff(joules) > 0) and np.all(np.isfinite(joules))):
                raise AssertionError("generated counter is not increasing")
            prefix = METRIC + "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "} "
            f.writelines([f"{prefix}{v!r} {s}\n" for v, s in zip(joules.tolist(), stamps, strict=True)])
            total += n
        f.write("# EOF\n")
    return total


def backfill(om: Path, data_dir: Path) -> tuple[float, int, int]:
    """promtool backfill; returns (seconds, samples written, blocks)."""
    from tests.promstack import _promtool_sample_count

    promtool = shutil.which("promtool")
    if not promtool:
        raise SystemExit("promtool not found on PATH (Debian: apt-get install prometheus)")
    t = time.perf_counter()
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", f"--max-block-duration={BLOCK_DURATION}",
         str(om), str(data_dir)], capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"promtool failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    blocks = sum(1 for p in data_dir.iterdir() if p.is_dir() and (p / "meta.json").exists())
    return seconds, _promtool_sample_count(done.stdout), blocks


def prepare(data_root: Path, gpus: int, days: int, step: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Blocks for this history under data_root/prometheus-data, generated unless the marker says they exist."""
    params = {"gpus": gpus, "days": days, "step": step, "t0": T0.isoformat(), "generator": 2}
    marker = data_root / MARKER
    data_dir = data_root / "prometheus-data"
    if marker.exists() and data_dir.is_dir():
        info = json.loads(marker.read_text())
        if info.get("params") == params:
            info["cached"] = True
            log(f"using cached blocks in {data_dir}")
            return info
    shutil.rmtree(data_dir, ignore_errors=True)
    marker.unlink(missing_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    om = data_root / "history.om.txt"
    log(f"writing OpenMetrics history ({gpus} GPUs x {days} d at {step} s) to {om}")
    t = time.perf_counter()
    samples = write_openmetrics(om, gpus, days, step)
    t_gen = time.perf_counter() - t
    om_bytes = om.stat().st_size
    log(f"  {samples:,} samples, {om_bytes / 1e9:.2f} GB in {t_gen:.1f} s; backfilling with promtool")
    t_fill, written, blocks = backfill(om, data_dir)
    om.unlink()
    if written != samples:
        raise SystemExit(f"promtool wrote {written} samples, expected {samples}")
    tsdb_bytes = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    log(f"  backfill {t_fill:.1f} s: {blocks} blocks, {tsdb_bytes / 1e6:.1f} MB")
    info = {"params": params, "samples": samples, "series": gpus, "om_bytes": om_bytes, "t_generate": t_gen,
            "t_backfill": t_fill, "blocks": blocks, "tsdb_bytes": tsdb_bytes,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    marker.write_text(json.dumps(info, indent=1))
    info["cached"] = False
    return info


# --------------------------------------------------------------------------------------------- prometheus

class Prometheus:
    def __init__(self, data_root: Path) -> None:
        binary = shutil.which("prometheus")
        if not binary:
            raise SystemExit("prometheus not found on PATH (Debian: apt-get install prometheus)")
        config = data_root / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.log_path = data_root / "prometheus.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={data_root / 'prometheus-data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                stdout=log, stderr=subprocess.STDOUT)
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"prometheus did not start; log:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def version(self) -> str:
        import requests

        r = requests.get(self.url + "/api/v1/status/buildinfo", timeout=10)
        return str(r.json()["data"]["version"]) if r.ok else "?"

    def compactions(self) -> int:
        return self.log_path.read_text(errors="replace").lower().count("compact blocks")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


# --------------------------------------------------------------------------------------------- curl baseline

def steps_per_request(series: int, max_points_per_request: int) -> int:
    """The steps of one query_range request, as pipeline.ingest cuts them for `series` series (0: no budget)."""
    from wattprint.pipeline.promapi import PROMETHEUS_MAX_POINTS

    if not max_points_per_request:
        return PROMETHEUS_MAX_POINTS
    return min(PROMETHEUS_MAX_POINTS, max(1, max_points_per_request // series))


def requests_for(url: str, start: dt.datetime, end: dt.datetime, step: int,
                 steps: int) -> list[tuple[str, str]]:
    """(url, form body) of every query_range request PromClient makes for the gpu_energy query, in order."""
    from wattprint.pipeline.promapi import _fmt_ms, _to_ms, range_chunks, selector
    from wattprint.pipeline.settings import load_settings

    q = gpu_energy_query(load_settings(None))
    query = selector(q.metric, {})
    step_txt = _fmt_ms(round(step * 1000))
    out = []
    for a, b in range_chunks(start, end, step, steps):
        form = [("query", query), ("start", _fmt_ms(_to_ms(a, "start"))), ("end", _fmt_ms(_to_ms(b, "end"))),
                ("step", step_txt)]
        out.append((url + "/api/v1/query_range", urlencode(form)))
    return out


def curl_pass(reqs: list[tuple[str, str]], gzip: bool) -> dict[str, Any]:
    """One curl process per request, sequential; wall seconds summed, bytes on the wire summed."""
    from wattprint.pipeline import __version__

    curl = shutil.which("curl")
    if not curl:
        raise SystemExit("curl not found on PATH")
    headers = ["-H", f"User-Agent: wattprint/{__version__}", "-H", "Accept: application/json"]
    # requests sends "Accept-Encoding: gzip, deflate" and gunzips; --compressed makes curl gunzip too
    headers += ["--compressed", "-H", "Accept-Encoding: gzip, deflate"] if gzip else ["-H", "Accept-Encoding: identity"]
    total = 0.0
    wire = 0
    for url, body in reqs:
        argv = [curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", *headers,
                "-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", body, url]
        t = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        total += time.perf_counter() - t
        code, size = (done.stdout.split() + ["?", "0"])[:2]
        if done.returncode != 0 or code != "200":
            raise SystemExit(f"curl failed: rc={done.returncode} HTTP {code}: {done.stderr[:500]}")
        wire += int(size)
    return {"seconds": total, "wire_bytes": wire, "requests": len(reqs)}


def body_bytes(reqs: list[tuple[str, str]]) -> int:
    """Uncompressed JSON bytes of all responses (untimed)."""
    import requests

    n = 0
    with requests.Session() as s:
        for url, body in reqs:
            r = s.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                "Accept-Encoding": "identity"}, timeout=600)
            r.raise_for_status()
            n += len(r.content)
            del r
    return n


# --------------------------------------------------------------------------------------------- wattprint ingest

def gpu_energy_query(settings: Any) -> Any:
    qs = [q for q in settings.queries() if q.source == "wattprint" and q.kind == "gpu_energy"]
    if len(qs) != 1:
        raise SystemExit(f"expected one wattprint gpu_energy query, got {qs}")
    return qs[0]


def child_ingest(args: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh interpreter: ingest + build into a new DuckDB file, timed and split."""
    sys.path.insert(0, args["root"])    # the checkout whose pipeline is measured (this one, or --compare-root)
    import requests

    import wattprint.pipeline.ingest as ingest_mod
    from wattprint.pipeline import db
    from wattprint.pipeline.model import build
    from wattprint.pipeline.promapi import PromClient, PromConfig
    from wattprint.pipeline.settings import load_settings

    spent: dict[str, float] = {"http": 0.0, "call": 0.0, "convert": 0.0, "write": 0.0}

    def timed(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    requests.Session.request = timed("http", requests.Session.request)  # type: ignore[method-assign]
    PromClient._call = timed("call", PromClient._call)  # type: ignore[method-assign]
    ingest_mod._convert = timed("convert", ingest_mod._convert)  # type: ignore[assignment]
    ingest_mod._write_chunk = timed("write", ingest_mod._write_chunk)  # type: ignore[assignment]

    settings = load_settings(None)
    q = gpu_energy_query(settings)
    start, end = dt.datetime.fromisoformat(args["start"]), dt.datetime.fromisoformat(args["end"])
    headers = {} if args["gzip"] else {"Accept-Encoding": "identity"}
    rss_before = proc_status_kb("VmRSS")
    con = db.connect(args["db"])
    with PromClient(PromConfig(args["url"], timeout_s=600, extra_headers=headers)) as client:
        t = time.perf_counter()
        stats = ingest_mod.ingest(con, client, [q], start, end, args["step"],
                                  max_points_per_request=args.get("max_points_per_request") or None)
        t_ingest = time.perf_counter() - t
    rss_ingest = proc_status_kb("VmHWM")
    rows = con.execute("SELECT count(*), count(DISTINCT series_id) FROM samples").fetchone()
    t = time.perf_counter()
    summary = build(con, settings.build_settings())
    t_build = time.perf_counter() - t
    intervals = con.execute("SELECT count(*), sum(energy_j) FROM energy_intervals").fetchone()
    con.close()
    return {
        "t_ingest": t_ingest, "t_build": t_build, "samples": stats.samples, "chunks": stats.chunks,
        "series": stats.new_series, "rows": rows[0], "row_series": rows[1],
        "intervals": intervals[0], "energy_j": intervals[1], "fct_rows": getattr(summary, "fct_rows", None),
        "http": spent["http"], "decode": spent["call"] - spent["http"], "convert": spent["convert"],
        "write": spent["write"], "rss_before_kb": rss_before, "rss_ingest_kb": rss_ingest,
    }


def proc_status_kb(field: str) -> int:
    """VmRSS / VmHWM of this process in kB. Not getrusage's ru_maxrss: on Linux a child started by fork+exec
    inherits the parent's high-water mark there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_ingest(url: str, start: dt.datetime, end: dt.datetime, step: int, workdir: Path, gzip: bool,
               root: Path = ROOT, max_points_per_request: int = 0) -> dict[str, Any]:
    dbfile = workdir / "ingest.duckdb"
    args = {"url": url, "start": start.isoformat(), "end": end.isoformat(), "step": step, "db": str(dbfile),
            "gzip": gzip, "root": str(root), "max_points_per_request": max_points_per_request}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                          timeout=1800, cwd=root)
    if done.returncode != 0:
        raise SystemExit(f"ingest subprocess failed ({done.returncode}):\n{done.stderr[-4000:]}")
    res: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    res["db_bytes"] = dbfile.stat().st_size
    for p in workdir.glob("ingest.duckdb*"):
        p.unlink()
    return res


# --------------------------------------------------------------------------------------------- report

def machine() -> str:
    cpu = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    except OSError:
        pass
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("duckdb", "pyarrow", "requests"))
    return (f"{os.cpu_count()} CPU cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
            f"{versions}")


def fmt_s(xs: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in xs)


def report(info: dict[str, Any], prom_version: str, compactions: int, reqs: int, json_bytes: int,
           runs: dict[str, dict[str, list[dict[str, Any]]]], args: argparse.Namespace) -> str:
    gz, ident = runs["gzip"], runs["identity"]
    samples = gz["ingest"][0]["samples"]

    def secs(r: dict[str, list[dict[str, Any]]], key: str) -> list[float]:
        return [x["seconds"] for x in r["curl"]] if key == "curl" else [x[key] for x in r["ingest"]]

    def cell(xs: list[float], f: str = "{:.2f}") -> str:
        return " / ".join(f.format(x) for x in xs)

    def ratio(r: dict[str, list[dict[str, Any]]]) -> tuple[list[float], float]:
        c, w = secs(r, "curl"), secs(r, "t_ingest")
        return [wi / ci for wi, ci in zip(w, c, strict=True)], min(w) / min(c)

    def mb(kb: float) -> str:
        return f"{kb / 1024:,.0f} MB"

    (gz_r, gz_best), (id_r, id_best) = ratio(gz), ratio(ident)
    verdict = "met" if gz_best <= TARGET_RATIO else "missed"
    if args.quick:
        verdict += " (--quick smoke test: fixed start-up costs dominate, not a measurement)"
    rss = {enc: " / ".join(mb(x["rss_ingest_kb"]) for x in r["ingest"]) for enc, r in runs.items()}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    backfilled = "cache, backfilled " + info["created"] if info["cached"] else "this run"
    lines = [
        f"Machine: {machine()}, Prometheus {prom_version}, curl {curl_version()}. Run: {now}; "
        f"{args.reps} repetitions of each measured phase, interleaved, after one untimed warm-up pass.",
        "",
        "| history | value |",
        "|---|---:|",
        f"| series (GPUs, {GPUS_PER_HOST} per host) | {info['series']} |",
        f"| span, step | {args.days} d, {args.step} s |",
        f"| samples | {info['samples']:,} |",
        f"| OpenMetrics file | {info['om_bytes'] / 1e6:,.0f} MB, written in {info['t_generate']:.1f} s |",
        f"| promtool backfill (--max-block-duration={BLOCK_DURATION}) | {info['t_backfill']:.1f} s "
        f"({info['samples'] / info['t_backfill']:,.0f} samples/s), {info['blocks']} blocks, "
        f"{info['tsdb_bytes'] / 1e6:.1f} MB |",
        f"| blocks from | {backfilled} |",
        f"| query_range requests (≤ 11,000 points per series each; ingest.max_points_per_request "
        f"{args.max_points_per_request or 'none'}: {steps_per_request(args.gpus, args.max_points_per_request):,}"
        f" steps each) | {reqs} |",
        f"| response JSON, uncompressed / gzip on the wire | {json_bytes / 1e6:,.0f} MB / "
        f"{gz['curl'][0]['wire_bytes'] / 1e6:,.0f} MB |",
        f"| compactions logged by Prometheus during the run | {compactions} |",
        "",
        "Times in seconds, one value per repetition. gzip: the requests exactly as wattprint sends them "
        "(requests' default Accept-Encoding: gzip, deflate); identity: the same requests with Accept-Encoding: "
        "identity (for wattprint: PromConfig(extra_headers={'Accept-Encoding': 'identity'})).",
        "",
        "| measure | gzip (wattprint's requests) | identity | target |",
        "|---|---:|---:|:---|",
        f"| curl, all requests | {cell(secs(gz, 'curl'))} | {cell(secs(ident, 'curl'))} | |",
        f"| wattprint ingest | {cell(secs(gz, 't_ingest'))} | {cell(secs(ident, 't_ingest'))} | |",
        f"| samples/s (ingest) | {cell([samples / x for x in secs(gz, 't_ingest')], '{:,.0f}')} | "
        f"{cell([samples / x for x in secs(ident, 't_ingest')], '{:,.0f}')} | |",
        f"| ingest / curl, per repetition | {cell(gz_r, '{:.2f}×')} | {cell(id_r, '{:.2f}×')} | |",
        f"| ingest / curl, best / best | **{gz_best:.2f}×** | {id_best:.2f}× | gzip ≤ {TARGET_RATIO:g}×: {verdict} |",
        f"| peak RSS of the ingest process (VmHWM) | {rss['gzip']} | {rss['identity']} | |",
        f"| model build (intervals + attribution), not in the ratio | {cell(secs(gz, 't_build'))} | "
        f"{cell(secs(ident, 't_build'))} | |",
        "",
        f"RSS of the ingest process before ingest (interpreter + imports): {mb(gz['ingest'][0]['rss_before_kb'])}. "
        f"DuckDB file after ingest: {gz['ingest'][0]['db_bytes'] / 1e6:,.1f} MB; "
        f"energy intervals built: {gz['ingest'][0]['intervals']:,}.",
        "",
        "Where the ingest time goes, seconds per repetition (HTTP = requests' Session.request: send, server time, "
        "body read and gunzip; decode = the rest of PromClient._call, i.e. JSON parsing and checks; convert = "
        "ingest._convert; write = ingest._write_chunk, the DuckDB transaction).",
        "",
        "| part | gzip | share | identity | share |",
        "|---|---:|---:|---:|---:|",
    ]
    parts = ("http", "decode", "convert", "write")
    rows: dict[str, dict[str, list[float]]] = {}
    for enc, r in runs.items():
        rows[enc] = {k: secs(r, k) for k in parts}
        rows[enc]["other"] = [x["t_ingest"] - sum(x[k] for k in parts) for x in r["ingest"]]
        rows[enc]["**total**"] = secs(r, "t_ingest")
    for k in (*parts, "other", "**total**"):
        cells = []
        for enc in ("gzip", "identity"):
            v, tot = rows[enc][k], rows[enc]["**total**"]
            cells += [cell(v), f"{100 * sum(v) / sum(tot):.0f} %"]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", f"Medians (gzip): curl {statistics.median(secs(gz, 'curl')):.2f} s, ingest "
              f"{statistics.median(secs(gz, 't_ingest')):.2f} s."]
    if gz["compare"]:
        lines += ["", f"Before/after: the same ingest from the checkout at {args.compare_root} ('other'), timed "
                  "interleaved with this checkout's in the same run (seconds per repetition).", "",
                  "| measure | this checkout, gzip | other, gzip | this checkout, identity | other, identity |",
                  "|---|---:|---:|---:|---:|"]
        for key, label in (("t_ingest", "ingest"), ("http", "http"), ("decode", "decode"), ("convert", "convert"),
                           ("write", "write")):
            lines.append(f"| {label} | " + " | ".join(
                cell([x[key] for x in r[k]]) for r in (gz, ident) for k in ("ingest", "compare")) + " |")
        lines.append("| ingest / curl, best / best | " + " | ".join(
            f"{min(x['t_ingest'] for x in r[k]) / min(secs(r, 'curl')):.2f}×"
            for r in (gz, ident) for k in ("ingest", "compare")) + " |")
        lines.append("| peak RSS (VmHWM) | " + " | ".join(
            " / ".join(mb(x["rss_ingest_kb"]) for x in r[k]) for r in (gz, ident) for k in ("ingest", "compare"))
            + " |")
    return "\n".join(lines) + "\n"


def curl_version() -> str:
    try:
        return subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        return "?"


# --------------------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=256)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--step", type=int, default=60)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, help="keep the Prometheus blocks here and reuse them on re-runs")
    ap.add_argument("--markdown-out", type=Path)
    ap.add_argument("--quick", action="store_true", help="8 GPUs x 2 days: a smoke test (< 60 s)")
    ap.add_argument("--compare-root", type=Path,
                    help="also time the ingest of the checkout at PATH (e.g. a git worktree of the previous commit), "
                         "interleaved with this one's, for before/after numbers")
    ap.add_argument("--max-points-per-request", type=int, default=None, metavar="N",
                    help="the ingest's ingest.max_points_per_request (default: the config's, 3,000,000, as `wattprint "
                         "ingest` runs; 0: none, only 11,000 steps per series bound a request)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child_ingest(json.loads(args.child))))
        return
    if args.quick:
        args.gpus, args.days = 8, 2
    if args.gpus <= 0 or args.gpus % GPUS_PER_HOST or args.days <= 0 or args.step <= 0 or 86400 % args.step:
        raise SystemExit(f"--gpus must be a positive multiple of {GPUS_PER_HOST}; --days > 0; --step divides a day")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest-"))
    data_root = args.data_dir or tmp / "data"
    prom: Prometheus | None = None
    try:
        info = prepare(data_root, args.gpus, args.days, args.step, log)
        prom = Prometheus(data_root)
        start = T0
        end = T0 + dt.timedelta(seconds=args.days * 86400 - args.step)   # every stored sample, once
        if args.max_points_per_request is None:
            from wattprint.pipeline.config import IngestConfig
            args.max_points_per_request = IngestConfig().max_points_per_request
        reqs = requests_for(prom.url, start, end, args.step,
                            steps_per_request(args.gpus, args.max_points_per_request))
        log(f"prometheus {prom.url}: {len(reqs)} requests; warming up")
        curl_pass(reqs, gzip=True)
        json_bytes = body_bytes(reqs)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            enc: {"curl": [], "ingest": [], "compare": []} for enc in ("gzip", "identity")}
        for rep in range(args.reps):
            for enc, r in runs.items():
                r["curl"].append(curl_pass(reqs, gzip=enc == "gzip"))
                r["ingest"].append(run_ingest(prom.url, start, end, args.step, tmp, gzip=enc == "gzip",
                                              max_points_per_request=args.max_points_per_request))
                if args.compare_root:
                    r["compare"].append(run_ingest(prom.url, start, end, args.step, tmp, gzip=enc == "gzip",
                                                   root=args.compare_root.resolve(),
                                                   max_points_per_request=args.max_points_per_request))
                log(f"rep {rep + 1} {enc}: curl {r['curl'][-1]['seconds']:.2f} s, "
                    f"ingest {r['ingest'][-1]['t_ingest']:.2f} s, build {r['ingest'][-1]['t_build']:.2f} s")
        for r in [x for enc in runs.values() for k in ("ingest", "compare") for x in enc[k]]:
            if r["samples"] != info["samples"] or r["rows"] != info["samples"] or r["row_series"] != args.gpus:
                raise SystemExit(f"ingest loaded {r['samples']} samples ({r['rows']} rows, {r['row_series']} "
                                 f"series), expected {info['samples']} of {args.gpus} series")
        text = report(info, prom.version(), prom.compactions(), len(reqs), json_bytes, runs, args)
    finally:
        if prom is not None:
            prom.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
