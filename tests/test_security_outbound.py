"""Outbound HTTP security: credentials go only to the configured origin and never reach a message.

Every attack runs against the real programs (the `wattprint` and `wattprint-exporter` console scripts
as subprocesses) and real HTTP servers on 127.0.0.1. Two servers on two ports are two origins: the
configured one ("home") answers a redirect to the other ("elsewhere"), which records every request
it gets; it must get none. Upstreams that echo the credentials they received (raw, base64 of the
password or token, base64 of user:password, URL-encoded) must not get them into stderr.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FIXTURES, REPO, free_port, loopback_server, wait_http
from wattprint.common.safehttp import CrossOriginRedirect, SameOriginSession, Scrubber, redact_text, redact_url

BIN = Path(sys.executable).parent
EM_HISTORY = FIXTURES / "intensity" / "aioelectricitymaps_carbon_intensity_history.json"
WATTTIME = FIXTURES / "intensity" / "aiowatttime_historical_emissions_response.json"
DCGM_PAGE = FIXTURES / "dcgm" / "cloud-native-docs__gpu-telemetry__dcgm-exporter.rst.L245-266.metrics.txt"

# Secrets with characters that URL-encode and base64-encode differently in each alphabet.
EM_TOKEN = "em-T0KEN/with+chars=4242"
WT_USER, WT_PASSWORD, WT_BEARER = "wt-user", "wt-Pa55/word+?&x", "wt-bearer-TOKEN-9931"
PROM_TOKEN, PROM_USER, PROM_PASSWORD = "prom-T0KEN/+x-77aa", "prom-user", "prom-Pa55/+?w0rd"
DCGM_USER, DCGM_PASSWORD = "dcgm-reader", "dcgm-Pa55/+w0rd-x1"


# -- two origins ----------------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names


Reply = tuple[int, dict[str, str], Any]  # status, headers, body (bytes, or JSON-encoded)


class Site:
    """A real HTTP server on its own port (its own origin) that records every request it gets."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.route: Callable[[Call], Reply] = lambda call: (404, {}, {"message": "no route"})
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode() if length else ""
                call = Call(self.command, parts.path, parse_qs(parts.query or form),
                            {k.lower(): v for k, v in self.headers.items()})
                site.calls.append(call)
                status, headers, body = site.route(call)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd, self.url = loopback_server(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def home() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture
def elsewhere() -> Iterator[Site]:
    """The other origin: records what it is sent and answers 200 with whatever it is asked to."""
    site = Site()
    site.route = lambda call: (200, {}, {"message": "thanks for the credentials"})
    yield site
    site.close()


def redirect_to(target: str, status: int = 302) -> Callable[[Call], Reply]:
    """Redirect every request to the same path and query on `target`."""

    def route(call: Call) -> Reply:
        query = "&".join(f"{k}={quote(v)}" for k, vs in call.query.items() for v in vs)
        return status, {"Location": f"{target}{call.path}" + (f"?{query}" if query else "")}, b""

    return route


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def echo(call: Call) -> str:
    """What a careless upstream prints on a 401 page: the credential headers it got, in several encodings."""
    got = call.headers.get("authorization") or call.headers.get("auth-token") or ""
    value = got.split(" ", 1)[1] if got.startswith(("Basic ", "Bearer ")) else got
    decoded = base64.b64decode(value).decode() if got.startswith("Basic ") else value
    password = decoded.split(":", 1)[-1]
    dump = "".join(f"{k}: {v}\r\n" for k, v in call.headers.items())
    return (f"denied. You sent: {got} | decoded: {decoded} | secret: {password} | as base64: {b64(password)} | "
            f"urlencoded: {quote(password, safe='')} | request dump (base64): {b64(dump)}")


_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{6,}")


def assert_no_leak(text: str, secret: str, user: str | None = None) -> None:
    """`secret` appears in `text` in none of the forms an echo gives: raw, URL-encoded, base64 of anything."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), b64(secret), b64(secret).rstrip("=")}
    if user:
        forms |= {f"{user}:{secret}", b64(f"{user}:{secret}")}
    for form in forms:
        assert form not in text, f"{form!r} (a form of a secret) in:\n{text}"
    # base64 of any text holding the secret, at any alignment, in either alphabet
    for run in _B64_RUN.findall(text):
        run = run.replace("-", "+").replace("_", "/")
        for shift in range(4):
            piece = run[shift:][: (len(run) - shift) // 4 * 4]
            if piece:
                assert secret.encode() not in base64.b64decode(piece), f"base64 of the secret in:\n{text}"


# -- the real programs ----------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ELECTRICITYMAPS_", "WATTTIME_", "WATTPRINT_"))}
    return {**base, **extra}


def wattprint(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "wattprint"), *args], cwd=REPO, capture_output=True, text=True,
                          env=env or clean_env(), timeout=timeout)


def one_line_error(res: subprocess.CompletedProcess[str], rc: int) -> str:
    err = res.stderr.strip()
    assert res.returncode == rc, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


class Process:
    """A long-running console script with its stderr in a file (read while it runs)."""

    def __init__(self, tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{script}-{self.port}.log"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen([str(BIN / script), *args, "--web.listen-address", f"127.0.0.1:{self.port}"],
                                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env or clean_env())
        try:
            wait_http(f"{self.url}/-/healthy", timeout=20)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"{script} did not start:\n{self.stderr()}") from None

    def stderr(self) -> str:
        return self.log.read_text()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return {(s.name, frozenset(s.labels.items())): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; stderr:\n{self.stderr()}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(script: str, *args: str, **kw: Any) -> Process:
        p = Process(tmp_path, script, *args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


# -- 0. the probe sees the leak when nothing prevents it --------------------------------------------------


def test_a_plain_requests_session_hands_the_token_to_the_other_origin(home: Site, elsewhere: Site) -> None:
    """Why this file exists: requests keeps custom headers such as auth-token across a cross-origin 302."""
    home.route = redirect_to(elsewhere.url)
    requests.get(f"{home.url}/v3/carbon-intensity/latest", headers={"auth-token": EM_TOKEN}, timeout=5)
    assert [c.headers.get("auth-token") for c in elsewhere.calls] == [EM_TOKEN]


def test_same_origin_session_refuses_before_sending_and_follows_within_the_origin(home: Site,
                                                                                 elsewhere: Site) -> None:
    home.route = redirect_to(elsewhere.url)
    with SameOriginSession() as s, pytest.raises(CrossOriginRedirect) as ei:
        s.get(f"{home.url}/x?token=abc", headers={"auth-token": EM_TOKEN}, timeout=5)
    assert elsewhere.calls == []
    msg = str(ei.value)
    assert home.url in msg and elsewhere.url in msg and "abc" not in msg
    # https -> http on the same host and port is another origin too
    home.route = lambda call: (302, {"Location": home.url.replace("http:", "https:") + "/y"}, b"")
    with SameOriginSession() as s, pytest.raises(CrossOriginRedirect):
        s.get(f"{home.url}/x", timeout=5)

    def within(call: Call) -> Reply:
        if call.path == "/old":
            return 302, {"Location": "/new"}, b""
        return 200, {}, {"got": call.headers.get("auth-token")}

    home.route = within
    with SameOriginSession() as s:
        assert s.get(f"{home.url}/old", headers={"auth-token": EM_TOKEN}, timeout=5).json() == {"got": EM_TOKEN}


# -- 1. redirects: intensity fetch, serve-intensity, ingest, dcgm ----------------------------------------


FETCH = ("intensity", "fetch", "--start", "2024-03-05T00:00:00Z", "--end", "2024-03-07T00:00:00Z")


def test_intensity_fetch_electricitymaps_token_stays_home(home: Site, elsewhere: Site, tmp_path: Path) -> None:
    home.route = redirect_to(elsewhere.url)
    res = wattprint(*FETCH, "--source", "electricitymaps", "--zone", "DE", "--base-url", home.url,
                    "--token-file", secret_file(tmp_path, "em.token", EM_TOKEN), "--db", str(tmp_path / "w.duckdb"))
    err = one_line_error(res, 1)
    assert [c.headers.get("auth-token") for c in home.calls] == [EM_TOKEN]  # one attempt, not retried
    assert elsewhere.calls == []
    assert "redirect" in err and "refused" in err and home.url.removeprefix("http://") in err
    assert elsewhere.url.removeprefix("http://") in err and "--base-url" in err
    assert_no_leak(err, EM_TOKEN)


def test_intensity_fetch_watttime_login_and_bearer_stay_home(home: Site, elsewhere: Site, tmp_path: Path) -> None:
    password_file = secret_file(tmp_path, "wt.pw", WT_PASSWORD)
    env = clean_env(WATTTIME_USERNAME=WT_USER)
    args = (*FETCH, "--source", "watttime", "--zone", "CAISO_NORTH", "--base-url", home.url,
            "--token-file", password_file, "--db", str(tmp_path / "w.duckdb"))
    home.route = redirect_to(elsewhere.url)  # the login itself is redirected
    err = one_line_error(wattprint(*args, env=env), 1)
    assert [c.path for c in home.calls] == ["/login"] and elsewhere.calls == []
    assert "/login" in err and "redirect" in err
    assert_no_leak(err, WT_PASSWORD, WT_USER)

    home.calls.clear()
    to_elsewhere = redirect_to(elsewhere.url)
    home.route = lambda c: (200, {}, {"token": WT_BEARER}) if c.path == "/login" else to_elsewhere(c)
    err = one_line_error(wattprint(*args, env=env), 1)
    assert [c.path for c in home.calls] == ["/login", "/v3/historical"]
    assert home.calls[1].headers["authorization"] == f"Bearer {WT_BEARER}"
    assert elsewhere.calls == [] and "redirect" in err
    assert_no_leak(err, WT_BEARER)


def test_intensity_fetch_uk_follows_the_same_rule(home: Site, elsewhere: Site, tmp_path: Path) -> None:
    home.route = redirect_to(elsewhere.url, 301)
    err = one_line_error(wattprint(*FETCH, "--source", "uk", "--zone", "GB", "--base-url", home.url,
                                   "--db", str(tmp_path / "w.duckdb")), 1)
    assert len(home.calls) == 1 and elsewhere.calls == [] and "redirect" in err


def test_intensity_fetch_refuses_credentials_in_base_url(home: Site, tmp_path: Path) -> None:
    url = home.url.replace("http://", "http://bob:b4se-S3cret@")
    err = one_line_error(wattprint(*FETCH, "--source", "uk", "--zone", "GB", "--base-url", url,
                                   "--db", str(tmp_path / "w.duckdb")), 2)
    assert "--base-url" in err and "credentials" in err and "b4se-S3cret" not in err and home.calls == []


def test_intensity_fetch_follows_a_redirect_within_the_origin(home: Site, tmp_path: Path) -> None:
    body = json.loads(EM_HISTORY.read_text())

    def route(call: Call) -> Reply:
        if not call.path.startswith("/mirror/"):
            query = "&".join(f"{k}={quote(v)}" for k, vs in call.query.items() for v in vs)
            return 302, {"Location": f"/mirror{call.path}?{query}"}, b""
        return (200, {}, body) if call.headers.get("auth-token") == EM_TOKEN else (401, {}, {"message": "no"})

    home.route = route
    res = wattprint(*FETCH, "--source", "electricitymaps", "--zone", "DE", "--base-url", home.url,
                    "--token-file", secret_file(tmp_path, "em.token", EM_TOKEN), "--db", str(tmp_path / "w.duckdb"))
    assert res.returncode == 0, res.stderr
    assert [c.path for c in home.calls] == ["/v3/carbon-intensity/past-range", "/mirror/v3/carbon-intensity/past-range"]
    assert "imported 24 intensity points" in res.stdout


def test_serve_intensity_counts_the_refused_redirect_and_keeps_the_token(home: Site, elsewhere: Site,
                                                                         tmp_path: Path, processes) -> None:
    home.route = redirect_to(elsewhere.url)
    s = processes("wattprint", "serve-intensity", "--source", "electricitymaps", "--zone", "FR",
                  "--base-url", home.url, "--token-file", secret_file(tmp_path, "em.token", EM_TOKEN),
                  "--refresh-interval", "30")
    key = ("wattprint_grid_intensity_refresh_errors_total", frozenset({("zone", "FR"), ("reason", "http")}))
    s.wait(lambda: s.metrics().get(key, 0) >= 1, "a refresh error with reason=http")
    s.wait(lambda: "refresh failed" in s.stderr(), "the refresh-failed log line")
    assert s.stop() == 0
    log = s.stderr()
    assert elsewhere.calls == [] and [c.headers.get("auth-token") for c in home.calls] == [EM_TOKEN]
    line = next(x for x in log.splitlines() if "refresh failed" in x)
    assert "reason=http" in line and "redirect" in line and elsewhere.url.removeprefix("http://") in line
    assert "Traceback" not in log
    assert_no_leak(log, EM_TOKEN)


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_ingest_credentials_and_tenant_stay_home(home: Site, elsewhere: Site, tmp_path: Path, auth: str) -> None:
    home.route = redirect_to(elsewhere.url, 307)  # 307 keeps the POSTed query: the worst case
    if auth == "bearer":
        creds = ["--prometheus-token-file", secret_file(tmp_path, "prom.token", PROM_TOKEN)]
    else:
        creds = ["--prometheus-user", PROM_USER,
                 "--prometheus-password-file", secret_file(tmp_path, "prom.pw", PROM_PASSWORD)]
    res = wattprint("ingest", "--prometheus", home.url, *creds, "--prometheus-tenant", "team-a",
                    "--start", "2024-03-01T00:00:00Z", "--end", "2024-03-01T01:00:00Z", "--retries", "2",
                    "--db", str(tmp_path / "w.duckdb"))
    err = one_line_error(res, 1)
    assert len(home.calls) == 1 and home.calls[0].headers["x-scope-orgid"] == "team-a"  # not retried
    assert home.calls[0].headers["authorization"].startswith("Bearer " if auth == "bearer" else "Basic ")
    assert elsewhere.calls == []
    assert "redirect" in err and elsewhere.url.removeprefix("http://") in err and "--prometheus" in err
    assert_no_leak(err, PROM_TOKEN)
    assert_no_leak(err, PROM_PASSWORD, PROM_USER)


def test_dcgm_backend_refuses_a_redirect_to_another_origin(home: Site, elsewhere: Site, tmp_path: Path,
                                                           processes) -> None:
    home.route = redirect_to(elsewhere.url)
    e = processes("wattprint-exporter", "--backend", "dcgm", "--dcgm-url", f"{home.url}/metrics",
                  "--dcgm-username", DCGM_USER,
                  "--dcgm-password-file", secret_file(tmp_path, "dcgm.pw", DCGM_PASSWORD),
                  "--dcgm-retries", "1", "--poll-interval", "0.2", "--no-collector.rapl")
    e.wait(lambda: e.stderr().count("gpu read failed") >= 2, "two failed polls")
    assert e.stop() == 0
    assert elsewhere.calls == [] and home.calls
    assert all(c.headers["authorization"] == "Basic " + b64(f"{DCGM_USER}:{DCGM_PASSWORD}") for c in home.calls)
    # not retried within a poll: one request per poll
    warning = next(x for x in e.stderr().splitlines() if "gpu read failed" in x)
    assert "redirect" in warning and elsewhere.url.removeprefix("http://") in warning and "--dcgm-url" in warning
    assert_no_leak(e.stderr(), DCGM_PASSWORD, DCGM_USER)


# -- 2. --dcgm-url credentials, basic auth from a file, redacted logs -----------------------------------


def dead_port() -> int:
    return free_port()  # bound, then closed again: nothing listens there


@pytest.mark.parametrize("userinfo", ["user:hunter2-S3cret@", "user:hun/ter2-S3cret@", "user:hun?ter2-S3cret@"])
def test_exporter_refuses_credentials_in_dcgm_url(userinfo: str) -> None:
    url = f"http://{userinfo}127.0.0.1:{dead_port()}/metrics"
    res = subprocess.run([str(BIN / "wattprint-exporter"), "--backend", "dcgm", "--dcgm-url", url,
                          "--web.listen-address", f"127.0.0.1:{free_port()}", "--no-collector.rapl"],
                         cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=30)
    err = one_line_error(res, 2)
    assert "--dcgm-url" in err and "credentials" in err and "--dcgm-username" in err
    assert "--dcgm-password-file" in err
    assert "hunter2" not in err and "ter2-S3cret" not in err and "user:hun" not in err


def dcgm_with_basic_auth(call: Call) -> Reply:
    """dcgm-exporter behind basic auth, moved from /metrics to /dcgm/metrics (a same-origin redirect)."""
    if call.path == "/metrics":
        return 302, {"Location": "/dcgm/metrics"}, b""
    if call.headers.get("authorization") != "Basic " + b64(f"{DCGM_USER}:{DCGM_PASSWORD}"):
        return 401, {"WWW-Authenticate": 'Basic realm="dcgm"'}, echo(call).encode()
    return 200, {"Content-Type": "text/plain; version=0.0.4"}, DCGM_PAGE.read_bytes()


def test_exporter_reads_gpus_with_the_password_from_a_file(home: Site, tmp_path: Path, processes) -> None:
    home.route = dcgm_with_basic_auth
    e = processes("wattprint-exporter", "--backend", "dcgm", "--dcgm-url", f"{home.url}/metrics",
                  "--poll-interval", "0.2", "--no-collector.rapl",
                  env=clean_env(WATTPRINT_DCGM_USERNAME=DCGM_USER,
                                WATTPRINT_DCGM_PASSWORD_FILE=secret_file(tmp_path, "dcgm.pw", DCGM_PASSWORD)))
    m = e.metrics()
    up = [v for (n, _), v in m.items() if n == "wattprint_gpu_up"]
    power = [v for (n, _), v in m.items() if n == "wattprint_gpu_power_watts"]
    assert up == [1.0] and power == [pytest.approx(409.692)]
    assert "/dcgm/metrics" in [c.path for c in home.calls]
    assert e.stop() == 0 and "gpu read failed" not in e.stderr()


def test_failing_dcgm_endpoint_warnings_never_hold_the_password(home: Site, tmp_path: Path, processes) -> None:
    pw_file = tmp_path / "dcgm.pw"
    pw_file.write_text("wrong-" + DCGM_PASSWORD + "\n")   # refused, and echoed back by the server
    state = {"mode": "auth"}

    def route(call: Call) -> Reply:
        if state["mode"] == "echo-200":   # a page that is not dcgm-exporter's, printing the request
            return 200, {"Content-Type": "text/plain"}, echo(call).encode()
        return dcgm_with_basic_auth(call)

    home.route = route
    e = processes("wattprint-exporter", "--backend", "dcgm", "--dcgm-url", f"{home.url}/metrics?token=qs-S3cret",
                  "--dcgm-username", DCGM_USER, "--dcgm-password-file", str(pw_file),
                  "--dcgm-retries", "0", "--poll-interval", "0.2", "--no-collector.rapl")
    e.wait(lambda: "HTTP 401" in e.stderr(), "a failed poll on HTTP 401")
    state["mode"] = "echo-200"
    e.wait(lambda: "denied" in e.stderr(), "a failed poll on a page echoing the request")
    pw_file.write_text(DCGM_PASSWORD + "\n")             # rotated: picked up without a restart
    state["mode"] = "auth"
    e.wait(lambda: "/dcgm/metrics" in [c.path for c in home.calls if c.headers.get("authorization", "").endswith(
        b64(f"{DCGM_USER}:{DCGM_PASSWORD}"))], "a poll with the rotated password")
    assert e.stop() == 0
    log = e.stderr()
    assert "token=***" in log and "qs-S3cret" not in log and "Traceback" not in log
    for secret in (DCGM_PASSWORD, "wrong-" + DCGM_PASSWORD):
        assert_no_leak(log, secret, DCGM_USER)


def test_exporter_log_lines_redact_urls() -> None:
    from wattprint.common.logs import _LineFormatter

    record = logging.LogRecord("wattprint.x", logging.WARNING, __file__, 1,
                               "failed url=%s other=%s", ("http://bob:pw-1@h:9/m?api_key=k-1&gpu=0",
                                                          "https://u:p@ss@h2/x?access_token=t-1"), None)
    line = _LineFormatter(debug=False).format(record)
    assert "url=http://h:9/m?api_key=***&gpu=0" in line and "other=https://h2/x?access_token=***" in line
    assert not any(s in line for s in ("bob", "pw-1", "k-1", "ss@", "t-1"))
    assert redact_url("http://a:b@[::1]:9/x?password=z&q=1") == "http://[::1]:9/x?password=***&q=1"
    assert redact_text("no url here, key=value") == "no url here, key=value"


def test_dcgm_password_from_the_environment(home: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.exporter.app import build_backend
    from wattprint.exporter.config import parse_config

    home.route = dcgm_with_basic_auth
    monkeypatch.setenv("WATTPRINT_DCGM_PASSWORD", DCGM_PASSWORD)
    backend = build_backend(parse_config(["--backend", "dcgm", "--dcgm-url", f"{home.url}/metrics",
                                          "--dcgm-username", DCGM_USER]))
    backend.open()
    assert [r.power_watts for r in backend.read()] == [pytest.approx(409.692)]
    backend.close()


def test_dcgm_username_without_password_is_a_startup_error(tmp_path: Path) -> None:
    base = [str(BIN / "wattprint-exporter"), "--backend", "dcgm", "--dcgm-url", f"http://127.0.0.1:{dead_port()}/m",
            "--web.listen-address", f"127.0.0.1:{free_port()}", "--no-collector.rapl"]
    for extra, fragment in ((["--dcgm-username", "u"], "has no password"),
                            (["--dcgm-password-file", str(tmp_path / "pw")], "without --dcgm-username"),
                            (["--dcgm-username", "u", "--dcgm-password-file", str(tmp_path / "nope")],
                             "cannot read the file")):
        res = subprocess.run(base + extra, cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=30)
        assert fragment in one_line_error(res, 2)


# -- 3. credentials echoed back by an upstream ---------------------------------------------------------


def test_echoed_electricitymaps_token_is_scrubbed_in_every_form(home: Site, tmp_path: Path) -> None:
    home.route = lambda call: (401, {}, {"message": echo(call)})
    err = one_line_error(wattprint(*FETCH, "--source", "electricitymaps", "--zone", "DE", "--base-url", home.url,
                                   "--token-file", secret_file(tmp_path, "em.token", EM_TOKEN),
                                   "--db", str(tmp_path / "w.duckdb")), 1)
    assert "HTTP 401" in err and "denied" in err and "***" in err
    assert_no_leak(err, EM_TOKEN)


def test_echoed_watttime_basic_auth_is_scrubbed_in_every_form(home: Site, tmp_path: Path) -> None:
    home.route = lambda call: (401, {}, echo(call).encode())   # a plain-text page, not JSON
    err = one_line_error(wattprint(*FETCH, "--source", "watttime", "--zone", "CAISO_NORTH", "--base-url", home.url,
                                   "--token-file", secret_file(tmp_path, "wt.pw", WT_PASSWORD),
                                   "--db", str(tmp_path / "w.duckdb"), env=clean_env(WATTTIME_USERNAME=WT_USER)), 1)
    assert "HTTP 401" in err and "denied" in err
    assert_no_leak(err, WT_PASSWORD, WT_USER)


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_echoed_prometheus_credentials_are_scrubbed_in_every_form(home: Site, tmp_path: Path, auth: str) -> None:
    home.route = lambda call: (503, {"Content-Type": "text/plain"}, echo(call).encode())
    if auth == "bearer":
        creds = ["--prometheus-token-file", secret_file(tmp_path, "prom.token", PROM_TOKEN)]
    else:
        creds = ["--prometheus-user", PROM_USER,
                 "--prometheus-password-file", secret_file(tmp_path, "prom.pw", PROM_PASSWORD)]
    res = wattprint("ingest", "--prometheus", home.url, *creds, "--start", "2024-03-01T00:00:00Z",
                    "--end", "2024-03-01T01:00:00Z", "--retries", "1", "--db", str(tmp_path / "w.duckdb"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "retrying" in res.stderr and "HTTP 503: denied" in res.stderr   # the retry warning shows the body too
    assert_no_leak(res.stderr, PROM_TOKEN)
    assert_no_leak(res.stderr, PROM_PASSWORD, PROM_USER)


def test_scrubber_masks_a_secret_cut_by_the_snippet_limit() -> None:
    scrub = Scrubber([EM_TOKEN])
    text = "x" * 90 + EM_TOKEN
    for limit in range(92, 90 + len(EM_TOKEN) + 3):
        assert EM_TOKEN[:4] not in scrub.snippet(text, limit)


# -- 4. intensity fetch --source watttime --token-file ---------------------------------------------------


def test_intensity_fetch_watttime_reads_the_password_from_token_file(home: Site, tmp_path: Path) -> None:
    body = json.loads(WATTTIME.read_text())

    def route(call: Call) -> Reply:
        if call.path == "/login":
            ok = call.headers.get("authorization") == "Basic " + b64(f"{WT_USER}:{WT_PASSWORD}")
            return (200, {}, {"token": WT_BEARER}) if ok else (403, {}, {"error": "bad credentials"})
        if call.headers.get("authorization") != f"Bearer {WT_BEARER}":
            return 401, {}, {"error": "no token"}
        return 200, {}, body

    home.route = route
    res = wattprint("intensity", "fetch", "--source", "watttime", "--zone", "CAISO_NORTH",
                    "--start", "2022-07-15T00:00:00Z", "--end", "2022-07-15T01:00:00Z", "--base-url", home.url,
                    "--token-file", secret_file(tmp_path, "wt.pw", WT_PASSWORD), "--db", str(tmp_path / "w.duckdb"),
                    env=clean_env(WATTTIME_USERNAME=WT_USER, WATTTIME_PASSWORD="not-this-one"))
    assert res.returncode == 0, res.stderr
    assert [c.path for c in home.calls] == ["/login", "/v3/historical"]
    assert "imported 2 intensity points from watttime API" in res.stdout
    assert_no_leak(res.stdout + res.stderr, WT_PASSWORD, WT_USER)


def test_intensity_fetch_uk_refuses_a_token_file(home: Site, tmp_path: Path) -> None:
    err = one_line_error(wattprint(*FETCH, "--source", "uk", "--zone", "GB", "--base-url", home.url,
                                   "--token-file", secret_file(tmp_path, "t", "x"),
                                   "--db", str(tmp_path / "w.duckdb")), 2)
    assert "--token-file" in err and "uk takes no credential" in err and home.calls == []
