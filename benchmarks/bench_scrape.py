"""Scrape cost of the exporter against prometheus_client's own serialisation of the same page.

For 1, 8 and 64 replayed GPUs (2 mapping-dir jobs per GPU) the exporter is built exactly as in
production (App(Config(...)), app.start()); the background poller is then stopped so that this
script decides when a new snapshot exists, by calling app.poller.poll_once() itself (not timed).

Measured per GPU count, after a warm-up, with time.perf_counter over --reps repetitions:

  cold render  poll_once(), then time app.renderer(None) alone: the serialisation a scrape pays
               when the poller has published a new snapshot.
  HTTP cold    poll_once(), then time GET /metrics over one persistent HTTP/1.1 connection to
               127.0.0.1 (request, rendering, response read): the latency a scraper sees. The
               client socket is put in the state an idle gap between scrapes leaves it in (see
               Scraper); the same GET timed back to back is reported separately.
  HTTP cached  GET /metrics again with no new snapshot: the CachedRenderer's bytes are served.
  baseline     generate_latest() of a static CollectorRegistry of plain prometheus_client Gauge and
               Counter objects holding the same families, label names, label values and values as
               the exporter's page (built by parsing that page), i.e. what prometheus_client itself
               needs to serialise the same samples.

Also, since Prometheus sends "Accept-Encoding: gzip", the HTTP cold and cached GETs are repeated
with gzip (the exporter compresses every response, cached or not), and the cold render is split
into collect (building the metric families, including prometheus_client's ProcessCollector
reading /proc) and serialise (the rest).

Ratios are measured in this one run; see docs/benchmarks.md for how to read them.

    .venv/bin/python benchmarks/bench_scrape.py [--reps 500] [--gpus 1,8,64] [--markdown-out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wattprint.common.logs import setup_logging
from wattprint.exporter.app import App
from wattprint.exporter.config import Config

JOBS_PER_GPU = 2
TARGET_RATIO = 2.0


def machine() -> str:
    try:
        model = next(
            (line.split(":", 1)[1].strip() for line in subprocess.run(
                ["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()
             if line.startswith("Model name")),
            platform.processor() or "unknown",
        )
    except OSError:
        model = platform.processor() or "unknown"
    return (f"{os.cpu_count()} CPU cores ({model}), no GPU, Linux {platform.release()}, "
            f"Python {platform.python_version()}, prometheus_client {metadata.version('prometheus_client')}")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def timed(fn: Callable[[], object], reps: int, before: Callable[[], object] | None = None) -> list[float]:
    out = []
    for _ in range(reps):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def count_samples(page: bytes) -> tuple[int, int]:
    fams = list(text_string_to_metric_families(page.decode("utf-8")))
    return sum(len(f.samples) for f in fams), len(fams)


def static_registry(page: bytes) -> CollectorRegistry:
    """A registry of plain Gauge/Counter objects holding exactly the page's families and samples."""
    disable_created_metrics()  # the exporter's counters carry no _created samples either
    reg = CollectorRegistry(auto_describe=False)
    for fam in text_string_to_metric_families(page.decode("utf-8")):
        names = tuple(fam.samples[0].labels) if fam.samples else ("x",)
        doc = fam.documentation or fam.name
        if fam.type == "counter":
            counter = Counter(fam.name, doc, names, registry=reg)
            for s in fam.samples:
                (counter.labels(**s.labels) if names else counter).inc(s.value)
        else:
            gauge = Gauge(fam.name, doc, names, registry=reg)
            for s in fam.samples:
                (gauge.labels(**s.labels) if names else gauge).set(s.value)
    return reg


class Scraper:
    """GET /metrics over one persistent connection, as Prometheus does.

    Prometheus scrapes a target once per scrape_interval (seconds), so its kept-alive connection is idle
    between scrapes and Linux acknowledges the first segment of each response at once. Timing requests
    back to back would instead leave the client's socket in delayed-ACK ("pingpong") mode: the server's
    small body segment, held by Nagle's algorithm until the header segment is acknowledged, then waits
    for the 40 ms delayed-ACK timer. ``idle=True`` sets TCP_QUICKACK on the client socket after each
    request is sent, which puts the socket in the state an idle gap leaves it in, without sleeping;
    ``idle=False`` times the back-to-back case.

    While the other loops of a GPU count run, a scraper's connection may sit idle past the server's
    keep-alive timeout (or be evicted); as Prometheus does, a request that finds its kept-alive connection
    closed by the server is sent again once on a new connection. Such reconnects are counted
    (``reconnects``, reported with the tables) since the retried request also pays a new connection.
    """

    def __init__(self, port: int, gzip: bool = False, idle: bool = True) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.headers = {"Accept-Encoding": "gzip"} if gzip else {}
        self.idle = idle
        self.size = 0
        self.reconnects = 0

    def get(self) -> None:
        reused = self.conn.sock is not None
        try:
            resp = self._request()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            # the server closed the idle kept-alive connection: once more on a fresh one
            self.reconnects += 1
            self.conn.close()
            self.conn.connect()
            resp = self._request()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET /metrics answered {resp.status}")
        self.size = len(body)

    def _request(self) -> http.client.HTTPResponse:
        self.conn.request("GET", "/metrics", headers=self.headers)
        if self.idle:
            assert self.conn.sock is not None
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return self.conn.getresponse()

    def close(self) -> None:
        self.conn.close()


def bench_gpus(n: int, reps: int, b2b_reps: int, warmup: int, tmp: Path) -> dict[str, float]:
    mapping = tmp / f"mapping-{n}"
    mapping.mkdir()
    for gpu in range(n):
        ids = [str(1000 + gpu * JOBS_PER_GPU + j) for j in range(JOBS_PER_GPU)]
        (mapping / str(gpu)).write_text("\n".join(ids) + "\n")
    cfg = Config(
        backend="replay", replay_gpus=n, job_discovery="mapping-dir", mapping_dir=str(mapping),
        listen_address="127.0.0.1:0", labels=(("cluster", "bench"), ("region", "FR")), hostname="bench",
    )
    app = App(cfg)
    app.start()
    app.poller.stop()  # from here on only this script publishes snapshots
    assert app.server is not None
    poll, render = app.poller.poll_once, app.renderer
    port = app.server.port
    plain, gz, b2b = Scraper(port), Scraper(port, gzip=True), Scraper(port, idle=False)
    try:
        for _ in range(warmup):
            poll()
            render(None)
            plain.get()
            gz.get()
        for _ in range(min(warmup, b2b_reps)):
            b2b.get()
        page = render(None)[0]
        samples, families = count_samples(page)
        jobs = sum(len(g.jobs) for g in app.poller.snapshot.gpus)
        assert jobs == n * JOBS_PER_GPU, f"expected {n * JOBS_PER_GPU} jobs on the page, got {jobs}"

        cold = timed(lambda: render(None), reps, before=poll)
        http_cold = timed(plain.get, reps, before=poll)
        plain_size = plain.size
        http_cached = timed(plain.get, reps)
        gz_cold = timed(gz.get, reps, before=poll)
        gz_size = gz.size
        gz_cached = timed(gz.get, reps)
        b2b_cold = timed(b2b.get, b2b_reps, before=poll)
        collect = timed(lambda: list(app.registry.collect()), reps, before=poll)
        proc = ProcessCollector(registry=None)
        proc_collect = timed(lambda: list(proc.collect()), reps)
    finally:
        for scraper in (plain, gz, b2b):
            scraper.close()
        app.shutdown()
    reconnects = plain.reconnects + gz.reconnects + b2b.reconnects

    base_reg = static_registry(page)
    base_page = generate_latest(base_reg)
    base_samples, base_families = count_samples(base_page)
    assert (base_samples, base_families) == (samples, families), (
        f"baseline page has {base_samples} samples in {base_families} families, "
        f"the exporter's {samples} in {families}")
    for _ in range(warmup):
        generate_latest(base_reg)
    base = timed(lambda: generate_latest(base_reg), reps)

    med = statistics.median
    return {
        "gpus": n, "samples": samples, "families": families, "bytes": len(page), "base_bytes": len(base_page),
        "http_bytes": plain_size, "gzip_bytes": gz_size,
        "cold_med": med(cold), "cold_p99": pct(cold, 99),
        "http_med": med(http_cold), "http_p99": pct(http_cold, 99),
        "cached_med": med(http_cached), "cached_p99": pct(http_cached, 99),
        "gz_med": med(gz_cold), "gz_p99": pct(gz_cold, 99),
        "gz_cached_med": med(gz_cached), "gz_cached_p99": pct(gz_cached, 99),
        "base_med": med(base), "base_p99": pct(base, 99),
        "b2b_med": med(b2b_cold), "b2b_p99": pct(b2b_cold, 99),
        "collect_med": med(collect), "proc_med": med(proc_collect), "reconnects": reconnects,
    }


def ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def us(x: float) -> str:
    return f"{x * 1e6:.2f}"


def markdown(rows: list[dict[str, float]], reps: int, b2b_reps: int, warmup: int) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"Machine: {machine()}. Run: {now}; {reps} timed repetitions per cell ({b2b_reps} back to back), "
        f"after {warmup} warm-up rounds; times in milliseconds (median / p99).",
        "",
    ]
    out += [
        "| GPUs | samples (families) | page bytes | cold render | HTTP cold | HTTP cached | baseline "
        "generate_latest | cold render / baseline | HTTP cold / baseline | target HTTP ≤ 2× |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for r in rows:
        rr, rh = r["cold_med"] / r["base_med"], r["http_med"] / r["base_med"]
        out.append(
            f"| {r['gpus']} | {r['samples']} ({r['families']}) | {r['bytes']} | "
            f"{ms(r['cold_med'])} / {ms(r['cold_p99'])} | {ms(r['http_med'])} / {ms(r['http_p99'])} | "
            f"{ms(r['cached_med'])} / {ms(r['cached_p99'])} | {ms(r['base_med'])} / {ms(r['base_p99'])} | "
            f"{rr:.2f}× | {rh:.2f}× | {'met' if rh <= TARGET_RATIO else 'MISSED'} |"
        )
    out += [
        "",
        "Scaling: median cost per sample on the page (µs per sample).",
        "",
        "| GPUs | samples | cold render | HTTP cold | HTTP cached | baseline |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["samples"]
        out.append(f"| {r['gpus']} | {n} | {us(r['cold_med'] / n)} | {us(r['http_med'] / n)} | "
                   f"{us(r['cached_med'] / n)} | {us(r['base_med'] / n)} |")
    out += [
        "",
        "Where the cold render goes (medians, ms): collect = registry.collect() building every family "
        "(of which ProcessCollector reading /proc), serialise = cold render - collect. "
        "With gzip: the same GETs with \"Accept-Encoding: gzip\", as Prometheus sends. "
        "Back to back: HTTP cold with no idle gap between requests (see Scraper in the script).",
        "",
        "| GPUs | collect | of which ProcessCollector | serialise | HTTP cold gzip | HTTP cached gzip | "
        "gzip bytes | HTTP cold back to back |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['gpus']} | {ms(r['collect_med'])} | {ms(r['proc_med'])} | "
            f"{ms(r['cold_med'] - r['collect_med'])} | {ms(r['gz_med'])} / {ms(r['gz_p99'])} | "
            f"{ms(r['gz_cached_med'])} / {ms(r['gz_cached_p99'])} | {r['gzip_bytes']} | "
            f"{ms(r['b2b_med'])} / {ms(r['b2b_p99'])} |"
        )
    reconnects = ", ".join(f"{r['gpus']} GPUs: {r['reconnects']}" for r in rows)
    out += ["", f"Kept-alive connections found closed by the server and reopened (see Scraper): {reconnects}."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--gpus", default="1,8,64", help="comma-separated replay GPU counts (default: %(default)s)")
    p.add_argument("--reps", type=int, default=500, help="timed repetitions per cell (default: %(default)s)")
    p.add_argument("--b2b-reps", type=int, default=50,
                   help="timed back-to-back GETs per GPU count (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=50, help="untimed rounds first (default: %(default)s)")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown tables to PATH")
    args = p.parse_args(argv)
    setup_logging("warning")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wattprint-bench-") as tmp:
        for n in (int(x) for x in args.gpus.split(",")):
            t0 = time.perf_counter()
            rows.append(bench_gpus(n, args.reps, args.b2b_reps, args.warmup, Path(tmp)))
            print(f"# {n} GPUs done in {time.perf_counter() - t0:.1f} s, {rows[-1]['reconnects']} reconnects",
                  file=sys.stderr)
    text = markdown(rows, args.reps, args.b2b_reps, args.warmup)
    print(text, end="")
    if args.markdown_out:
        Path(args.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
