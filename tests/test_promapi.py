"""pipeline.promapi against a scripted HTTP(S) server, a real Prometheus and a real VictoriaMetrics.

The scripted server (http.server on loopback) answers each request from a per-test script, so
retries, timeouts, auth failures and malformed bodies happen on a real socket. The real stores are
loaded with a known history through tests/promstack.py and must return it exactly.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import promstack
from wattprint.pipeline.errors import InputError, UpstreamError
from wattprint.pipeline.promapi import (
    PASSWORD_ENV,
    TOKEN_ENV,
    PromClient,
    PromConfig,
    escape_label_value,
    parse_value,
    range_chunks,
    selector,
)

TOKEN = "tok-S3CRET-4f9a"
PASSWORD = "pw-S3CRET-77b1"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


# -- scripted server ------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


Reply = tuple[int, dict[str, str], bytes]
# An action is a Reply, "reset" (RST the connection) or ("sleep", seconds, next action).
Action = Any


def ok(data: Any) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps({"status": "success", "data": data}).encode()


def prom_error(status: int, error: str, kind: str = "bad_data") -> Reply:
    body = json.dumps({"status": "error", "errorType": kind, "error": error}).encode()
    return status, {"Content-Type": "application/json"}, body


def grid(seen: Seen) -> Reply:
    """Like Prometheus' query_range: one series whose value at t is str(t); refuses > 11,000 steps."""
    if seen.path != "/api/v1/query_range":
        return ok({"resultType": "vector", "result": []})
    start, end, step = (round(float(seen.form[k][0]) * 1000) for k in ("start", "end", "step"))
    if (end - start) / step > 11000:
        return prom_error(400, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
                               "resolution (?step=XX)")
    values = [[t / 1000, str(t / 1000)] for t in range(start, end + 1, step)]
    return ok({"resultType": "matrix", "result": [{"metric": {"__name__": "m"}, "values": values}]})


@dataclass
class FakeProm:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    script: list[Action] = field(default_factory=list)
    default: Callable[[Seen], Action] = grid

    def next_action(self, seen: Seen) -> Action:
        self.requests.append(seen)
        return self.script.pop(0) if self.script else self.default(seen)


def serve(fake: FakeProm, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms each
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.answer()

        def do_POST(self) -> None:
            self.answer()

        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            url = urlsplit(self.path)
            form = parse_qs(body if self.command == "POST" else url.query, keep_blank_values=True)
            action = fake.next_action(Seen(self.command, url.path, dict(self.headers.items()), form))
            while isinstance(action, tuple) and action[0] == "sleep":
                time.sleep(action[1])
                action = action[2]
            if action == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            status, headers, payload = action
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (timeout test)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # failed TLS handshakes and resets are what some tests are about

    server = Server(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    fake.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def fake() -> Iterator[FakeProm]:
    f = FakeProm()
    server = serve(f)
    yield f
    server.shutdown()
    server.server_close()


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def client(url: str, sleeps: Sleeps | None = None, **kw: Any) -> PromClient:
    kw.setdefault("backoff_s", 0.01)
    return PromClient(PromConfig(url=url, **kw), sleep=sleeps or Sleeps())


def assert_no_secret(*objs: object) -> None:
    for obj in objs:
        texts = [str(obj), repr(obj)]
        cur: BaseException | None = obj if isinstance(obj, BaseException) else None
        while cur is not None:
            texts += [str(cur), repr(cur.args)]
            cur = cur.__cause__ or cur.__context__
        for text in texts:
            assert TOKEN not in text and PASSWORD not in text, text


def grid_points(chunks: list[Any]) -> list[int]:
    return [round(float(ts) * 1000) for c in chunks for s in c.series for ts, _ in s["values"]]


# -- chunking ------------------------------------------------------------------------------------------


def test_thirty_days_at_60s_is_split_on_the_grid_without_gaps_or_repeats(fake: FakeProm) -> None:
    end = T0 + timedelta(days=30)
    chunks = list(client(fake.url).query_range("m", T0, end, 60))
    t0 = round(T0.timestamp() * 1000)
    assert grid_points(chunks) == list(range(t0, t0 + 30 * 86400 * 1000 + 1, 60_000))  # 43,201 points
    assert len(fake.requests) == len(chunks) == 4
    for seen, chunk in zip(fake.requests, chunks, strict=True):
        assert seen.method == "POST" and seen.path == "/api/v1/query_range"
        assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert seen.form["query"] == ["m"] and seen.form["step"] == ["60.000"]
        first, last = chunk.series[0]["values"][0][0], chunk.series[0]["values"][-1][0]
        assert (first, last) == (chunk.start.timestamp(), chunk.end.timestamp())
        assert len(chunk.series[0]["values"]) <= 11000


@pytest.mark.parametrize(
    ("start", "span_ms", "step_s", "max_points"),
    [
        (T0, 0, 60, 11000),  # a single point
        (T0, 59_999, 60, 11000),  # end before the second point
        (T0, 10 * 60_000, 60, 11),  # exactly max_points
        (T0, 11 * 60_000, 60, 11),  # one more than max_points
        (T0, 22 * 60_000 - 1, 60, 11),  # end just off the grid
        (T0 + timedelta(milliseconds=250), 1000 * 7000 + 3, 7, 3),  # odd start, odd step, tiny chunks
        (T0, 60_000, 0.5, 1),  # one point per request
    ],
)
def test_chunks_cover_each_grid_point_once(
    fake: FakeProm, start: datetime, span_ms: int, step_s: float, max_points: int
) -> None:
    end = start + timedelta(milliseconds=span_ms)
    s, e, step = round(start.timestamp() * 1000), round(end.timestamp() * 1000), round(step_s * 1000)
    expected = list(range(s, e + 1, step))
    planned = list(range_chunks(start, end, step_s, max_points))
    assert len(planned) == -(-len(expected) // max_points)
    chunks = list(client(fake.url, max_points=max_points).query_range("m", start, end, step_s))
    assert [(c.start, c.end) for c in chunks] == planned
    assert grid_points(chunks) == expected
    assert all(len(c.series[0]["values"]) <= max_points for c in chunks)


def test_query_range_checks_its_arguments_before_any_request(fake: FakeProm) -> None:
    c = client(fake.url)
    with pytest.raises(InputError, match="before start"):
        c.query_range("m", T0, T0 - timedelta(seconds=1), 60)
    with pytest.raises(InputError, match="positive"):
        c.query_range("m", T0, T0, 0)
    with pytest.raises(InputError, match="timezone-aware"):
        c.query_range("m", datetime(2024, 3, 1), T0, 60)
    assert fake.requests == []


# -- retries, errors -----------------------------------------------------------------------------------------


def test_retries_503_429_and_reset_then_succeeds(fake: FakeProm, caplog: pytest.LogCaptureFixture) -> None:
    fake.script = [
        prom_error(503, "overloaded", "unavailable"),
        (429, {"Retry-After": "7"}, b"slow down"),
        "reset",
    ]
    sleeps = Sleeps()
    caplog.set_level(logging.WARNING)
    result = client(fake.url, sleeps, bearer_token=TOKEN).query("up", T0)
    assert result == []
    assert len(fake.requests) == 4
    assert sleeps.calls == [0.01, 7.0, 0.04]  # exponential, except where the server said how long
    assert "attempt 3 of 6" in caplog.text
    assert_no_secret(caplog.text)


def test_gives_up_after_retries_with_the_last_cause(fake: FakeProm) -> None:
    # the server echoes the credentials back; the message must not
    fake.default = lambda seen: (500, {}, f"boom {seen.headers.get('Authorization')}".encode())
    sleeps = Sleeps()
    with pytest.raises(UpstreamError) as err:
        client(fake.url, sleeps, bearer_token=TOKEN, retries=2).query("up", T0)
    assert len(fake.requests) == 3
    assert sleeps.calls == [0.01, 0.02]
    assert "after 3 attempts" in str(err.value) and "HTTP 500: boom Bearer ***" in str(err.value)
    assert fake.url + "/api/v1/query" in str(err.value)
    assert_no_secret(err.value)


def test_exponential_backoff_is_capped(fake: FakeProm) -> None:
    fake.default = lambda seen: (502, {}, b"")
    sleeps = Sleeps()
    with pytest.raises(UpstreamError):
        client(fake.url, sleeps, retries=6, backoff_s=1.0, max_backoff_s=5.0).query("up", T0)
    assert sleeps.calls == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize("status", [400, 422])
def test_bad_promql_is_not_retried_and_names_query_and_server_error(fake: FakeProm, status: int) -> None:
    fake.script = [prom_error(status, '1:9: parse error: unexpected "}" in label matching')]
    with pytest.raises(InputError) as err:
        list(client(fake.url).query_range('sum(m{a="b"}})', T0, T0 + timedelta(hours=1), 60))
    assert len(fake.requests) == 1
    text = str(err.value)
    assert 'unexpected "}" in label matching' in text and f"HTTP {status}" in text
    assert repr('sum(m{a="b"}})') in text  # the query, as the user wrote it


@pytest.mark.parametrize(
    ("kw", "mechanism"),
    [({"bearer_token": TOKEN}, "bearer token"), ({"basic_auth": ("alice", PASSWORD)}, "basic auth (user 'alice')"),
     ({}, "no credentials")],
)
def test_401_and_403_fail_at_once_naming_the_mechanism_not_the_secret(
    fake: FakeProm, kw: dict[str, Any], mechanism: str
) -> None:
    for status in (401, 403):
        fake.requests.clear()
        fake.script = [(status, {}, f"denied {TOKEN} {PASSWORD}".encode())]
        with pytest.raises(UpstreamError) as err:
            client(fake.url, **kw).query("up", T0)
        assert len(fake.requests) == 1
        assert f"authentication failed (HTTP {status}) using {mechanism}" in str(err.value)
        assert_no_secret(err.value)


def test_timeout_is_retried_then_reported(fake: FakeProm) -> None:
    fake.default = lambda seen: ("sleep", 1.0, ok({"resultType": "vector", "result": []}))
    with pytest.raises(UpstreamError) as err:
        client(fake.url, timeout_s=0.2, retries=1).query("up", T0)
    assert len(fake.requests) == 2
    assert "after 2 attempts" in str(err.value) and "no response within 0.2 s" in str(err.value)


def test_slow_first_answer_then_success(fake: FakeProm) -> None:
    fake.script = [("sleep", 1.0, ok({"resultType": "vector", "result": []}))]
    assert client(fake.url, timeout_s=0.2).query("up", T0) == []
    assert len(fake.requests) == 2


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    sleeps = Sleeps()
    with pytest.raises(UpstreamError, match="after 3 attempts.*Connection refused"):
        client(f"http://127.0.0.1:{port}", sleeps, retries=2).query("up", T0)
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        ((200, {"Content-Type": "text/html"}, b"<html><body>Please log in</body></html>"), "not Prometheus API JSON"),
        ((200, {}, json.dumps({"status": "error", "error": "weird"}).encode()), "status 'error': weird"),
        ((200, {}, json.dumps({"status": "success", "data": {"resultType": "vector"}}).encode()), "no data.result"),
        ((404, {}, b"404 page not found"), "unexpected HTTP 404"),
    ],
)
def test_malformed_or_unexpected_answers_are_upstream_errors(fake: FakeProm, reply: Reply, needle: str) -> None:
    fake.script = [reply]
    with pytest.raises(UpstreamError) as err:
        client(fake.url, bearer_token=TOKEN).query("up", T0)
    assert needle in str(err.value)
    assert fake.url in str(err.value)
    assert len(fake.requests) == 1
    assert_no_secret(err.value)


def test_non_json_snippet_is_in_the_message(fake: FakeProm) -> None:
    fake.script = [(200, {}, b"<html>Please log in</html>")]
    with pytest.raises(UpstreamError, match="Please log in"):
        client(fake.url).query("up", T0)


def test_special_values_stay_strings_and_parse(fake: FakeProm) -> None:
    values = [[1709251200, "NaN"], [1709251260, "+Inf"], [1709251320, "-Inf"], [1709251380, "1.5e3"]]
    fake.default = lambda seen: ok({"resultType": "matrix", "result": [{"metric": {}, "values": values}]})
    (chunk,) = client(fake.url).query_range("m", T0, T0 + timedelta(minutes=3), 60)
    raw = [v for _, v in chunk.series[0]["values"]]
    assert raw == ["NaN", "+Inf", "-Inf", "1.5e3"]
    parsed = [parse_value(v) for v in raw]
    assert math.isnan(parsed[0]) and parsed[1:] == [math.inf, -math.inf, 1500.0]
    with pytest.raises(UpstreamError, match="not a number"):
        parse_value("twelve")


def test_scalar_instant_result_is_one_unlabelled_series(fake: FakeProm) -> None:
    fake.script = [ok({"resultType": "scalar", "result": [1709251200, "42"]})]
    assert client(fake.url).query("42", T0) == [{"metric": {}, "value": [1709251200, "42"]}]


def test_series_and_label_values_requests(fake: FakeProm) -> None:
    fake.script = [ok([{"__name__": "m", "a": "1"}]), ok(["x", "y"])]
    c = client(fake.url)
    assert c.series(['m{a="1"}', "n"], T0, T0 + timedelta(hours=1)) == [{"__name__": "m", "a": "1"}]
    assert c.label_values("job_id", ["m"], T0, T0 + timedelta(hours=1)) == ["x", "y"]
    s, lv = fake.requests
    assert s.method == "POST" and s.path == "/api/v1/series" and s.form["match[]"] == ['m{a="1"}', "n"]
    assert s.form["start"] == ["1709251200.000"] and s.form["end"] == ["1709254800.000"]
    assert lv.method == "GET" and lv.path == "/api/v1/label/job_id/values" and lv.form["match[]"] == ["m"]
    with pytest.raises(InputError):
        c.label_values("../admin")


# -- credentials and headers -------------------------------------------------------------------------------


def test_bearer_tenant_and_extra_headers_are_sent(fake: FakeProm) -> None:
    client(fake.url, bearer_token=TOKEN, tenant="team-a", extra_headers={"X-Extra": "1"}).query("up", T0)
    h = fake.requests[0].headers
    assert h["Authorization"] == f"Bearer {TOKEN}"
    assert h["X-Scope-OrgID"] == "team-a" and h["X-Extra"] == "1"
    assert h["User-Agent"].startswith("wattprint/")


def test_basic_auth_is_sent(fake: FakeProm) -> None:
    client(fake.url, basic_auth=("alice", PASSWORD)).query("up", T0)
    h = fake.requests[0].headers
    assert h["Authorization"] == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert "X-Scope-OrgID" not in h


def test_token_from_file_and_env(tmp_path: Path, fake: FakeProm) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    from_file = PromConfig.from_sources(fake.url, token_file=token_file, env={})
    from_env = PromConfig.from_sources(fake.url, env={TOKEN_ENV: TOKEN + "\n"})
    assert from_file.bearer_token == from_env.bearer_token == TOKEN
    # the flag is explicit, so it wins over an inherited environment
    assert PromConfig.from_sources(fake.url, token_file=token_file, env={TOKEN_ENV: "other"}).bearer_token == TOKEN
    c = PromClient(from_file)
    c.query("up", T0)
    assert fake.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert_no_secret(from_file, from_env, c)
    assert "bearer token" in repr(from_file)


def test_password_from_file_and_env(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD + "\n")
    a = PromConfig.from_sources("http://p:9090", user="alice", password_file=pw_file, env={})
    b = PromConfig.from_sources("http://p:9090", user="alice", env={PASSWORD_ENV: PASSWORD})
    assert a.basic_auth == b.basic_auth == ("alice", PASSWORD)
    assert PromConfig.from_sources("http://p:9090", env={PASSWORD_ENV: PASSWORD}).basic_auth is None
    assert_no_secret(a, b, PromClient(a))


def test_bad_credential_sources_are_input_errors_naming_flag_and_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD)
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text(f"not a certificate {TOKEN}")
    cases: list[tuple[Callable[[], object], list[str]]] = [
        (lambda: PromConfig.from_sources("http://p", token_file=tmp_path / "missing", env={}),
         ["--prometheus-token-file", str(tmp_path / "missing"), "No such file"]),
        (lambda: PromConfig.from_sources("http://p", token_file=empty, env={}), ["--prometheus-token-file", "empty"]),
        (lambda: PromConfig.from_sources("http://p", user="alice", env={}), ["--prometheus-user", PASSWORD_ENV]),
        (lambda: PromConfig.from_sources("http://p", password_file=secret_file, env={}), ["--prometheus-user"]),
        (lambda: PromConfig.from_sources("http://p", user="a", password_file=secret_file, env={TOKEN_ENV: TOKEN}),
         ["both basic auth and a bearer token", f"${TOKEN_ENV}"]),
        (lambda: PromConfig.from_sources("http://p", ca_file=not_pem, env={}), ["--prometheus-ca-file", str(not_pem)]),
        (lambda: PromConfig(url=f"http://alice:{PASSWORD}@p:9090"), ["--prometheus", "credentials"]),
        (lambda: PromConfig(url="prometheus:9090"), ["--prometheus", "http(s)"]),
    ]
    for make, needles in cases:
        with pytest.raises(InputError) as err:
            make()
        for needle in needles:
            assert needle in str(err.value), (needle, str(err.value))
        assert_no_secret(err.value)


def test_trailing_slash_and_path_prefix(fake: FakeProm) -> None:
    client(fake.url + "/prometheus/").query("up", T0)
    assert fake.requests[0].path == "/prometheus/api/v1/query"


# -- TLS -------------------------------------------------------------------------------------------------------


def test_tls_with_custom_ca(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    crt, key = cert
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    fake = FakeProm()
    server = serve(fake, tls=ctx)
    try:
        assert fake.url.startswith("https://")
        # would override a session-level verify= in requests; ours is passed per request
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
        trusted = PromClient(PromConfig.from_sources(fake.url, ca_file=crt, env={}))
        assert trusted.query("up", T0) == []
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        sleeps = Sleeps()
        with pytest.raises(UpstreamError, match="TLS certificate verification failed.*--prometheus-ca-file"):
            PromClient(PromConfig(url=fake.url), sleep=sleeps).query("up", T0)
        assert sleeps.calls == []  # a wrong CA is not retried
        assert len(fake.requests) == 1
    finally:
        server.shutdown()
        server.server_close()


# -- selectors ---------------------------------------------------------------------------------------------------


def test_escape_and_selector_text() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert selector("m", {"b": "2", "a": 'x"'}) == '{__name__="m",a="x\\"",b="2"}'
    assert selector("", {"job": "j"}) == '{job="j"}'
    with pytest.raises(InputError):
        selector("m", {"bad-name": "x"})
    with pytest.raises(InputError):
        selector("", {})


# -- real stores ----------------------------------------------------------------------------------------------------

prometheus_with_history = promstack.prometheus_with_history
victoriametrics_with_history = promstack.victoriametrics_with_history

ENERGY = "wattprint_gpu_energy_joules_total"
POWER = "wattprint_gpu_power_watts"
INFO = "wattprint_job_info"
MINUTES = 2 * 24 * 60  # two days at 60 s: 2,881 samples per series
WEIRD = "x\"; DROP TABLE jobs; --\\ ' é漢\n\"end"
DECOYS = [WEIRD[:-1], WEIRD.replace("\\", "\\\\"), WEIRD.replace('"', '\\"'), "x.*", ""]


def energy_cents(gpu: int, k: int) -> int:
    """The counter after k minutes, in whole cents: short exact decimals (VictoriaMetrics keeps ~12 digits)."""
    full, rest = divmod(k, 7)  # increments cycle through 50.00 + 100.25 * (i % 7) (+ 0.01 * gpu)
    return full * sum(i * 10025 for i in range(7)) + sum(i * 10025 for i in range(rest)) + k * (5000 + gpu)


def history() -> list[promstack.Sample]:
    t0 = T0.timestamp()
    samples: list[promstack.Sample] = []
    for gpu in (0, 1):
        labels = {"gpu": str(gpu), "node": "n1", "job_id": "train-1"}
        samples += [(ENERGY, labels, t0 + 60 * k, energy_cents(gpu, k) / 100) for k in range(MINUTES + 1)]
    special = [float("nan"), math.inf, -math.inf, 250.5]
    samples += [(POWER, {"gpu": "0"}, t0 + 60 * k, special[k]) for k in range(4)]
    for i, value in enumerate([WEIRD, *DECOYS]):
        samples += [(INFO, {"job_id": value, "i": str(i)}, t0 + 60 * k, 1.0) for k in range(10)]
    return samples


@pytest.fixture(scope="module")
def stores(
    prometheus_with_history: promstack.StartPrometheus, victoriametrics_with_history: promstack.StartVictoriaMetrics
) -> dict[str, promstack.RunningStore]:
    h = promstack.History.of(history())
    return {
        "prometheus": prometheus_with_history(h, types={ENERGY: "counter"}),
        "victoriametrics": victoriametrics_with_history(h),
    }


KINDS = pytest.mark.parametrize("kind", ["prometheus", "victoriametrics"])


@KINDS
def test_backfilled_counter_comes_back_exactly(stores: dict[str, promstack.RunningStore], kind: str) -> None:
    c = PromClient(PromConfig(url=stores[kind].base_url, max_points=500))
    end = T0 + timedelta(minutes=MINUTES)
    chunks = list(c.query_range(selector(ENERGY, {"gpu": "0"}), T0, end, 60))
    assert len(chunks) == 6
    got = [(round(float(ts)), parse_value(v)) for ch in chunks for s in ch.series for ts, v in s["values"]]
    want = [(round(T0.timestamp()) + 60 * k, energy_cents(0, k) / 100) for k in range(MINUTES + 1)]
    assert got == want
    assert all(s["metric"]["gpu"] == "0" for ch in chunks for s in ch.series)


@KINDS
def test_chunked_equals_unchunked(stores: dict[str, promstack.RunningStore], kind: str) -> None:
    url = stores[kind].base_url
    # off-grid start and a step that is not the sample interval: each point is the last sample at or before it
    start, end = T0 + timedelta(seconds=30), T0 + timedelta(minutes=MINUTES)

    def flat(max_points: int) -> dict[str, list[list[Any]]]:
        out: dict[str, list[list[Any]]] = {}
        with PromClient(PromConfig(url=url, max_points=max_points)) as c:
            for ch in c.query_range(ENERGY, start, end, 300):
                for s in ch.series:
                    out.setdefault(s["metric"]["gpu"], []).extend(s["values"])
        return out

    whole, pieces = flat(11000), flat(37)
    assert whole == pieces and len(whole["0"]) == MINUTES // 5
    for ts, v in whole["1"]:
        k = (round(float(ts)) - round(T0.timestamp())) // 60
        assert parse_value(v) == energy_cents(1, k) / 100


@KINDS
def test_escaped_selector_matches_exactly_one_series(stores: dict[str, promstack.RunningStore], kind: str) -> None:
    c = PromClient(PromConfig(url=stores[kind].base_url))
    at = T0 + timedelta(minutes=5)  # not a series' first sample: VictoriaMetrics 1.79 misses those
    for i, value in enumerate([WEIRD, *DECOYS[:-1]]):
        result = c.query(selector(INFO, {"job_id": value}), at)
        assert [r["metric"] for r in result] == [{"__name__": INFO, "job_id": value, "i": str(i)}]
    (chunk,) = c.query_range(selector(INFO, {"job_id": WEIRD}), T0, T0 + timedelta(minutes=9), 60)
    assert [s["metric"]["job_id"] for s in chunk.series] == [WEIRD]
    assert len(chunk.series[0]["values"]) == 10
    found = c.series([selector(INFO, {"job_id": WEIRD})], T0, T0 + timedelta(hours=1))
    assert found == [{"__name__": INFO, "job_id": WEIRD, "i": "0"}]
    assert WEIRD in c.label_values("job_id", [selector(INFO, {})], T0, T0 + timedelta(hours=1))


@KINDS
def test_special_values(stores: dict[str, promstack.RunningStore], kind: str) -> None:
    c = PromClient(PromConfig(url=stores[kind].base_url))
    (chunk,) = c.query_range(POWER, T0, T0 + timedelta(minutes=3), 60)
    raw = [v for _, v in chunk.series[0]["values"]]
    if kind == "prometheus":
        assert raw == ["NaN", "+Inf", "-Inf", "250.5"]
    else:  # VictoriaMetrics 1.79 drops NaN on import: the first point has no sample at all
        assert raw == ["+Inf", "-Inf", "250.5"]
    assert [parse_value(v) for v in raw[-3:]] == [math.inf, -math.inf, 250.5]


@KINDS
def test_bad_promql_from_the_real_store(stores: dict[str, promstack.RunningStore], kind: str) -> None:
    c = PromClient(PromConfig(url=stores[kind].base_url))
    with pytest.raises(InputError) as err:
        c.query(f"sum({ENERGY}", T0)
    assert f"sum({ENERGY}" in str(err.value)
    assert ("parse error" if kind == "prometheus" else "unparsed data") in str(err.value)


def test_prometheus_refuses_more_than_11000_points_unless_chunked(stores: dict[str, promstack.RunningStore]) -> None:
    url = stores["prometheus"].base_url
    end = T0 + timedelta(minutes=MINUTES)  # 17,281 points at 10 s
    with pytest.raises(InputError, match="exceeded maximum resolution"):
        list(PromClient(PromConfig(url=url, max_points=20000)).query_range(ENERGY, T0, end, 10))
    chunks = list(PromClient(PromConfig(url=url)).query_range(selector(ENERGY, {"gpu": "0"}), T0, end, 10))
    assert len(chunks) == 2
    assert sum(len(s["values"]) for ch in chunks for s in ch.series) == MINUTES * 6 + 1
