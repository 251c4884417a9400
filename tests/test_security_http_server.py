"""The HTTP server of the exporter and serve-intensity under attack, before and after authentication.

Real programs on 127.0.0.1 (the exporter and `wattprint serve-intensity` as processes, MetricsServer in
process where a test must see inside), real TLS from the openssl CLI and real bcrypt hashes. What is
checked is what an attacker who can reach the port, without credentials, can make the server hold or do:
memory (bounded header bytes and connections), time (a deadline for the whole request head, TLS
handshake included), another request smuggled in a body, and the user names that exist (timing).
Figures are printed (-s) for docs/reliability.md; no duration is asserted except the request deadline,
which is the behaviour under test.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.attack import HeaderFlood, rss_kib
from tests.conftest import REPO, free_port, wait_http
from tests.exporter_proc import running_exporter
from wattprint.common import web
from wattprint.common.web import HEAD_TIMEOUT_S, MAX_HEAD_BYTES, MetricsServer
from wattprint.common.webconfig import load_web_config

PASSWORD = "correct horse"
# The documented bound (docs/exporter.md, "Security"): what unauthenticated connections may add to RSS.
RSS_BOUND_MIB = 64


@pytest.fixture(scope="module")
def pw_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def _web_config(tmp_path: Path, pw_hash: str, cert: tuple[Path, Path] | None = None) -> Path:
    text = f"basic_auth_users:\n  prometheus: '{pw_hash}'\n"
    if cert is not None:
        text += f"tls_server_config:\n  cert_file: {cert[0]}\n  key_file: {cert[1]}\n"
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def _scrape_under_attack(pid: int, url: str, flood: HeaderFlood, seconds: float,
                         verify: str | bool = True) -> dict[str, float]:
    """Scrape `url` with credentials every 0.25 s while `flood` runs; RSS before, peak and the outcomes."""
    session = requests.Session()
    session.auth = ("prometheus", PASSWORD)
    before = rss_kib(pid)
    codes: list[int | str] = []
    latency: list[float] = []
    peak = before
    with flood:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                codes.append(session.get(url, timeout=10, verify=verify).status_code)
            except requests.RequestException as exc:
                codes.append(type(exc).__name__)
            latency.append(time.monotonic() - t0)
            peak = max(peak, rss_kib(pid))
            time.sleep(0.25)
    return {"rss_before_mib": before / 1024, "rss_peak_mib": peak / 1024,
            "growth_mib": (peak - before) / 1024, "scrapes": len(codes),
            "ok": sum(c == 200 for c in codes), "failed": sum(c != 200 for c in codes),
            "max_latency_s": max(latency), "opened": flood.stats.opened,
            "closed_by_server": flood.stats.closed_by_server, "sent_mib": flood.stats.bytes_sent / 2**20}


def _metric(page: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in page.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix!r} not in the page")


# -- memory: the pre-auth flood against the real programs -------------------------------------------


@pytest.mark.slow
def test_exporter_header_flood_keeps_rss_bounded_and_scraper_served(tmp_path: Path, pw_hash: str,
                                                                     cert: tuple[Path, Path]) -> None:
    """300 TLS connections without credentials, each trickling header lines of 8 KB, reopened as soon as
    closed: more connections than the server keeps (256), each sending its head as slowly as the whole-head
    deadline allows. Before the fix the same flood (64 KB lines) grew the exporter by ~500 MiB in 30 s."""
    config = _web_config(tmp_path, pw_hash, cert)
    crt = str(cert[0])
    with running_exporter("--backend", "replay", "--replay-gpus", "8", "--web.config.file", str(config),
                          scheme="https", verify=crt) as (proc, port):
        flood = HeaderFlood("127.0.0.1", port, connections=300, chunk=800, interval=0.5, line=8000, tls=True)
        url = f"https://127.0.0.1:{port}/metrics"
        figures = _scrape_under_attack(proc.pid, url, flood, seconds=15, verify=crt)
        page = requests.get(url, auth=("prometheus", PASSWORD), timeout=10, verify=crt).text
    print(f"\nexporter under a 300-connection TLS header flood: {figures}")
    assert figures["failed"] == 0 and figures["ok"] >= 30, figures
    assert figures["growth_mib"] < RSS_BOUND_MIB, figures
    assert figures["closed_by_server"] > 300, figures  # the server ended connections, not the attacker
    refused = sum(_metric(page, "wattprint_exporter_http_refused_connections_total", reason=r)
                  for r in ("evicted", "head_timeout", "head_too_large"))
    assert refused > 300, page
    assert _metric(page, "wattprint_exporter_http_max_connections") == web.MAX_CONNECTIONS


@pytest.mark.slow
def test_serve_intensity_header_flood_keeps_rss_bounded(tmp_path: Path, pw_hash: str) -> None:
    """serve-intensity uses the same server: the same flood in plain HTTP, large header lines sent fast."""
    config = _web_config(tmp_path, pw_hash)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattprint.pipeline.cli", "serve-intensity", "--source", "annual", "--zone", "FR",
         "--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/healthy")
        flood = HeaderFlood("127.0.0.1", port, connections=300, chunk=16384, interval=0.25)
        url = f"http://127.0.0.1:{port}/metrics"
        figures = _scrape_under_attack(proc.pid, url, flood, seconds=8)
        page = requests.get(url, auth=("prometheus", PASSWORD), timeout=10).text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    print(f"\nserve-intensity under a 300-connection header flood: {figures}")
    assert figures["failed"] == 0 and figures["ok"] >= 15, figures
    assert figures["growth_mib"] < RSS_BOUND_MIB, figures
    assert _metric(page, "wattprint_intensity_exporter_http_refused_connections_total", reason="head_too_large") > 0
    assert "Traceback" not in err


# -- one request: size, deadline, bodies, keep-alive without credentials ------------------------------


def _raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out


def _auth_header() -> bytes:
    import base64

    return b"Authorization: Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()) + b"\r\n"


def test_head_over_the_limit_is_refused_before_auth(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                    pw_hash: str) -> None:
    srv = serve(load_web_config(_web_config(tmp_path, pw_hash)))
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
    assert _raw(srv.port, big).startswith(b"HTTP/1.1 431 ")
    many = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * (MAX_HEAD_BYTES // 8) + b"\r\n"
    assert _raw(srv.port, many).startswith(b"HTTP/1.1 431 ")
    long_line = b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n"
    assert _raw(srv.port, long_line).startswith(b"HTTP/1.1 414 ")
    ok = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + _auth_header() + b"\r\n"
    assert _raw(srv.port, ok).startswith(b"HTTP/1.1 200 ")
    assert srv.refusals["head_too_large"] == 3


def _trickle(port: int, data: bytes, every: float, tls: bool = False) -> float:
    """Send `data` one byte every `every` s; seconds until the server closed the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    t0 = time.monotonic()
    try:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(every)
        sock.settimeout(60)
        while sock.recv(4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()
    return time.monotonic() - t0


def test_a_trickled_head_ends_at_the_deadline_not_per_byte(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                          pw_hash: str, cert: tuple[Path, Path]) -> None:
    """One byte every 0.5 s never lets a single read time out; the whole head still has HEAD_TIMEOUT_S.
    Over TLS, a ClientHello sent a byte at a time: the handshake is part of the head's deadline. Both at once."""
    srv = serve(load_web_config(_web_config(tmp_path, pw_hash)))
    tls = serve(load_web_config(_web_config(tmp_path, pw_hash, cert)))
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    took: dict[str, float] = {}
    runs = [threading.Thread(target=lambda: took.__setitem__("head", _trickle(srv.port, head, every=0.5))),
            threading.Thread(target=lambda: took.__setitem__("hello", _trickle(tls.port, _client_hello(), every=0.2)))]
    for t in runs:
        t.start()
    for t in runs:
        t.join(60)
    print(f"\ntrickled head closed after {took['head']:.1f} s, trickled TLS ClientHello after {took['hello']:.1f} s "
          f"(deadline {HEAD_TIMEOUT_S:g} s)")
    assert took["head"] < 2 * HEAD_TIMEOUT_S and took["hello"] < 2 * HEAD_TIMEOUT_S
    assert srv.refusals["head_timeout"] == 1
    # and a real TLS scraper is served meanwhile and after
    r = requests.get(f"https://127.0.0.1:{tls.port}/metrics", auth=("prometheus", PASSWORD), timeout=10,
                     verify=str(cert[0]))
    assert r.status_code == 200


def _client_hello() -> bytes:
    """The first bytes a real TLS client sends (a ClientHello record), captured from ssl's memory BIO."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@pytest.mark.parametrize("framing", [
    b"Content-Length: 40\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\nContent-Length: 40\r\n",
])
def test_a_body_is_refused_so_no_request_is_smuggled(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                     pw_hash: str, framing: bytes) -> None:
    srv = serve(load_web_config(_web_config(tmp_path, pw_hash)))
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body = smuggled if b"Content-Length" in framing else b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    out = _raw(srv.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + _auth_header() + framing + b"\r\n" + body)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert out.count(b"HTTP/1.1 ") == 1, out   # one answer: the body was never read as a request
    assert srv.refusals["request_body"] == 1
    # an explicit empty body is no body
    ok = b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n" + _auth_header() + b"\r\n"
    assert _raw(srv.port, ok).startswith(b"HTTP/1.1 200 ")


def test_no_keep_alive_without_credentials(serve: Callable[..., MetricsServer], tmp_path: Path,
                                           pw_hash: str) -> None:
    srv = serve(load_web_config(_web_config(tmp_path, pw_hash)))
    out = _raw(srv.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 401 ") and out.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in out
    # with credentials the connection is kept for the next scrape
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/metrics", headers={"Authorization": _auth_header()[len(b"Authorization: "):-2].decode()})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and not resp.will_close
    conn.close()


# -- connections: the limit, and who is let in when it is reached --------------------------------------


def _open_idle(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]


def test_a_full_server_evicts_connections_that_proved_nothing(serve: Callable[..., MetricsServer],
                                                              tmp_path: Path, pw_hash: str) -> None:
    srv = serve(load_web_config(_web_config(tmp_path, pw_hash)), max_connections=4)
    scraper = requests.Session()
    scraper.auth = ("prometheus", PASSWORD)
    url = f"http://127.0.0.1:{srv.port}/metrics"
    assert scraper.get(url, timeout=5).status_code == 200   # its kept-alive connection is now trusted
    idle = _open_idle(srv.port, 20)                         # silent connections: more than the limit
    try:
        time.sleep(0.3)
        assert srv.open_connections() <= 4
        for _ in range(5):                                  # the trusted connection was never evicted
            assert scraper.get(url, timeout=5).status_code == 200
        fresh = requests.get(url, auth=("prometheus", PASSWORD), timeout=5)   # nor is a new client kept out
        assert fresh.status_code == 200
        assert srv.refusals["evicted"] >= 16
    finally:
        for s in idle:
            s.close()


def test_connections_busy_answering_are_never_cut(serve: Callable[..., MetricsServer]) -> None:
    release = threading.Event()

    def slow(accept: str | None) -> tuple[bytes, str]:
        release.wait(10)
        return b"wattprint_test 1\n", "text/plain; version=0.0.4"

    srv = serve(max_connections=2, render=slow)
    url = f"http://127.0.0.1:{srv.port}/metrics"
    results: list[int] = []
    workers = [threading.Thread(target=lambda: results.append(requests.get(url, timeout=15).status_code))
               for _ in range(2)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 5
    while sum(c.busy for c in list(srv._conns.values())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(requests.ConnectionError):           # no room: refused, the two answers go on
        requests.get(url, timeout=5)
    release.set()
    for w in workers:
        w.join(15)
    assert results == [200, 200]
    assert srv.refusals["connection_limit"] >= 1


# -- user names do not leak through timing ------------------------------------------------------------


def test_unknown_users_are_checked_against_the_costliest_hash(serve: Callable[..., MetricsServer],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = bcrypt.hashpw(b"a", bcrypt.gensalt(rounds=4)).decode()
    costly = bcrypt.hashpw(b"b", bcrypt.gensalt(rounds=10)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  aaa-cheap: '{cheap}'\n  zzz-costly: '{costly}'\n")
    srv = serve(load_web_config(path))
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording)
    url = f"http://127.0.0.1:{srv.port}/metrics"
    timings = {}
    for user in ("aaa-cheap", "zzz-costly", "nobody"):
        t0 = time.monotonic()
        assert requests.get(url, auth=(user, "wrong"), timeout=10).status_code == 401
        timings[user] = time.monotonic() - t0
    print(f"\n401 times by user: { {u: round(t * 1000, 1) for u, t in timings.items()} } ms")
    assert checked == [cheap.encode(), costly.encode(), costly.encode()]
