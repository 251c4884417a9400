"""Log lines are real logfmt (as go-kit/logfmt writes it) or JSON, from every process that logs.

The real exporter, `wattprint serve-intensity` and a batch verb run as processes; several events are provoked
(unauthorized requests, TLS handshake failures, a bad --replay-fail-file, a retried upstream, shutdown) and every
line they write to stderr must parse with the strict parser below, or with json.loads for --log.format json.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.conftest import REPO, free_port, loopback_server, wait_http

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"debug", "info", "warning", "error"}
USER, PASSWORD, WRONG = "prometheus", "s3cret-pw", 'wr0ng "pw"'
CLI_ERROR = re.compile(r"wattprint [a-z -]+: error: ")

# -- a strict logfmt parser (go-kit/logfmt's grammar) ---------------------------------------------------------

_KEY = re.compile(r'[^ ="\x00-\x1f\x7f]+')
_BARE = re.compile(r'[^ ="\x00-\x1f\x7f]+')
_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """key=value pairs separated by single spaces; a value is bare or double-quoted with escapes; else ValueError."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(line)
    if not line:
        raise ValueError("empty line")
    while True:
        m = _KEY.match(line, i)
        if m is None:
            raise ValueError(f"no key at {i}: {line!r}")
        key, i = m.group(), m.end()
        if i >= n or line[i] != "=":
            raise ValueError(f"no '=' after key {key!r}: {line!r}")
        i += 1
        if i < n and line[i] == '"':
            i += 1
            out = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quoted value of {key!r}: {line!r}")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = line[i + 1: i + 2]
                    if e in _ESC:
                        out.append(_ESC[e])
                        i += 2
                    elif e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", line[i + 2: i + 6]):
                        out.append(chr(int(line[i + 2: i + 6], 16)))
                        i += 6
                    else:
                        raise ValueError(f"bad escape in {key!r}: {line!r}")
                    continue
                if c < " " or c == "\x7f":
                    raise ValueError(f"raw control character in {key!r}: {line!r}")
                out.append(c)
                i += 1
            value = "".join(out)
        else:
            m = _BARE.match(line, i)
            if m is None:
                raise ValueError(f"empty or bad bare value of {key!r} at {i}: {line!r}")
            value, i = m.group(), m.end()
        pairs.append((key, value))
        if i == n:
            return pairs
        if line[i] != " " or i + 1 == n:
            raise ValueError(f"expected one space then a key at {i}: {line!r}")
        i += 1


def test_the_parser_is_strict() -> None:
    assert parse_logfmt('a=1 b="x y" c="q\\"\\\\\\n" d=""') == [("a", "1"), ("b", "x y"), ("c", 'q"\\\n'), ("d", "")]
    for bad in ("a=1  b=2", "a=x y", "a=", 'a="x', "a=1 ", "=1", 'a=b"c', "a=b=c", 'a="\\q"', "a", "a=\"x\ty\""):
        with pytest.raises(ValueError):
            parse_logfmt(bad)


def check_lines(text: str, fmt: str, allow_cli_errors: bool = False) -> list[dict[str, object]]:
    """Every line a valid log line (or, where allowed, a `wattprint VERB: error:` line); the parsed events."""
    events: list[dict[str, object]] = []
    for line in text.splitlines():
        if allow_cli_errors and CLI_ERROR.match(line):
            continue
        if fmt == "json":
            doc = json.loads(line)
            assert isinstance(doc, dict), line
            pairs = list(doc.items())
        else:
            pairs = list(parse_logfmt(line))
        keys = [k for k, _ in pairs]
        assert keys[:4] == ["ts", "level", "caller", "msg"], line
        assert len(set(keys)) == len(keys), f"a key twice: {line}"
        event = dict(pairs)
        assert isinstance(event["ts"], str) and TS.fullmatch(event["ts"]), line
        assert event["level"] in LEVELS and event["msg"], line
        assert "wattprint." not in str(event["caller"]), line
        for key, value in pairs:
            if isinstance(value, str):
                assert not value.startswith("'"), f"repr-quoted {key}: {line}"
                assert not re.match(r"[A-Z]\w*(Error|Exception)\(", value), f"repr of an exception in {key}: {line}"
        assert "Traceback" not in line or ("exc" in event and "\n" not in line), line
        events.append(event)
    assert events, "no log line at all"
    return events


def find(events: list[dict[str, object]], msg: str, **fields: object) -> dict[str, object]:
    for e in events:
        if e["msg"] == msg and all(str(e.get(k)) == str(v) for k, v in fields.items()):
            return e
    raise AssertionError(f"no event msg={msg!r} {fields} among:\n" + "\n".join(map(str, events)))


# -- helpers ----------------------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTPRINT_", "ELECTRICITYMAPS_", "WATTTIME_"))}
    return {**env, "PYTHONPATH": str(REPO)}


def wait_text(path: Path, needle: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in path.read_text():
        assert time.monotonic() < deadline, f"{needle!r} not logged:\n{path.read_text()}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def web_config(tmp_path: Path, cert: tuple[Path, Path]) -> Path:
    pw_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    crt, key = cert
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n"
                    f"basic_auth_users:\n  {USER}: '{pw_hash}'\n")
    return path


def provoke_http(port: int) -> None:
    """Unauthorized requests (three kinds), an authorized one, and two failed TLS handshakes."""
    url = f"https://127.0.0.1:{port}/metrics"
    assert requests.get(url, verify=False, timeout=5).status_code == 401
    assert requests.get(url, verify=False, timeout=5, auth=(USER, WRONG)).status_code == 401
    assert requests.get(url, verify=False, timeout=5, auth=("nobody", "x")).status_code == 401
    assert requests.get(url, verify=False, timeout=5, auth=(USER, PASSWORD)).status_code == 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:   # plain HTTP to the TLS port
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
    with socket.create_connection(("127.0.0.1", port), timeout=5):   # connects, says nothing, goes away
        pass
    ctx = ssl.create_default_context()   # verifies: refuses the self-signed certificate mid-handshake
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(s, server_hostname="127.0.0.1")


# -- the exporter -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_exporter_log_lines(fmt: str, cert: tuple[Path, Path], tmp_path: Path) -> None:
    port, fail = free_port(), tmp_path / "fail"
    log = tmp_path / "exporter.log"
    args = [sys.executable, "-m", "wattprint.exporter", "--web.listen-address", f"127.0.0.1:{port}",
            "--backend", "replay", "--replay-gpus", "2", "--poll-interval", "0.2", "--replay-fail-file", str(fail),
            "--web.config.file", str(web_config(tmp_path, cert)), "--no-collector.rapl", "--log.level", "debug"]
    env = clean_env()
    if fmt == "json":
        env["WATTPRINT_LOG_FORMAT"] = "json"    # the environment, as every flag
    with log.open("w") as err:
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        wait_http(f"https://127.0.0.1:{port}/-/healthy", timeout=20, verify=False)
        provoke_http(port)
        fail.write_text("1 7 x\n")                                    # GPU 1 fails; 7 and x are no GPUs
        wait_text(log, "failing_gpus" + ('":"1"' if fmt == "json" else "=1"))
    finally:
        rc = stop(proc)
    assert rc == 0
    text = log.read_text()
    events = check_lines(text, fmt)
    client = re.compile(r"127\.0\.0\.1:\d+")
    assert client.fullmatch(str(find(events, "unauthorized", reason="no-basic-credentials")["client"]))
    assert find(events, "unauthorized", reason="no-basic-credentials")["path"] == "/metrics"
    assert find(events, "unauthorized", reason="wrong-password")["user"] == USER
    unknown = find(events, "unauthorized", reason="unknown-user")
    assert unknown["level"] == "warning" and "user" not in unknown     # a password typed as a user name stays out
    failed = [e for e in events if e["msg"] == "tls handshake failed"]
    assert len(failed) >= 2 and all(client.fullmatch(str(e["client"])) and e["err"] for e in failed), failed
    assert any("http request" in str(e["err"]).lower() for e in failed), failed
    assert find(events, "replay fault injection", failing_gpus="1")["level"] == "info"
    ignoring = next(e for e in events if str(e["msg"]).startswith("--replay-fail-file: ignoring"))
    assert ignoring["level"] == "warning" and ignoring["file"] == str(fail)
    listening = find(events, "listening", caller="app", backend="replay")
    assert listening["address"] == f"127.0.0.1:{port}"
    assert listening["tls"] in (True, "true")
    assert find(events, "stopping", signal="SIGTERM")["caller"] == "app"
    assert find(events, "stopped", port=port)["caller"] == "web"
    assert PASSWORD not in text
    assert "wr0ng" not in text


# -- serve-intensity --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_serve_intensity_log_lines(fmt: str, cert: tuple[Path, Path], tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    # json through the global flag of `wattprint`, logfmt through serve-intensity's own (the default)
    fmt_global = ["--log.format", "json"] if fmt == "json" else []
    fmt_own = ["--log.format", "logfmt"] if fmt == "logfmt" else []
    args = [sys.executable, "-m", "wattprint.pipeline.cli", *fmt_global, "serve-intensity", "--source", "annual",
            "--zone", "FR", "--zone", "XX", "--web.listen-address", f"127.0.0.1:{port}",
            "--web.config.file", str(web_config(tmp_path, cert)), "--log.level", "debug", *fmt_own]
    with log.open("w") as err:
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
    try:
        wait_http(f"https://127.0.0.1:{port}/-/healthy", timeout=20, verify=False)
        provoke_http(port)
        wait_text(log, "handshake failed")
    finally:
        rc = stop(proc)
    assert rc == 0
    events = check_lines(log.read_text(), fmt)
    assert all(e["caller"] in ("serve_intensity", "web") for e in events), events
    find(events, "unauthorized", reason="no-basic-credentials")
    find(events, "unauthorized", reason="wrong-password", user=USER)
    find(events, "tls handshake failed")
    assert PASSWORD not in log.read_text() and "wr0ng" not in log.read_text()
    unserved = find(events, "zone not asked from the source: serving the shipped annual value with fallback=1",
                    zone="XX", source="annual")
    assert unserved["level"] == "warning" and unserved["reason"] == "no row in the shipped annual table"
    assert find(events, "listening", source="annual", zones="FR,XX")["address"] == f"127.0.0.1:{port}"
    assert find(events, "stopping", signal="SIGTERM")["level"] == "info"


# -- a batch verb -----------------------------------------------------------------------------------------------


class _Busy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'denied "now"\n'
        self.send_response(503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def busy_prometheus() -> Iterator[str]:
    srv, url = loopback_server(_Busy)
    yield url
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_batch_verb_log_lines(fmt: str, busy_prometheus: str, tmp_path: Path) -> None:
    # json through the global flag given after the verb; logfmt by default
    extra = ["--log.format", "json"] if fmt == "json" else []
    res = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", "ingest", "--prometheus",
                          busy_prometheus, "--start", "2024-03-01T00:00:00Z",
                          "--end", "2024-03-01T01:00:00Z", "--retries", "1", "--db", str(tmp_path / "w.duckdb"),
                          *extra], cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert CLI_ERROR.match(lines[-1]) and lines[-1].startswith("wattprint ingest: error: "), res.stderr
    assert sum(bool(CLI_ERROR.match(x)) for x in lines) == 1, res.stderr   # the error line as before
    events = check_lines(res.stderr, fmt, allow_cli_errors=True)
    retry = next(e for e in events if "retrying" in str(e["msg"]))
    assert retry["level"] == "warning" and 'denied "now"' in str(retry["msg"]), retry


def test_batch_log_level_flag_quiets_warnings(busy_prometheus: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", "--log.level", "error", "ingest",
                          "--prometheus", busy_prometheus, "--start", "2024-03-01T00:00:00Z",
                          "--end", "2024-03-01T01:00:00Z", "--retries", "1", "--db", str(tmp_path / "w.duckdb")],
                         cwd=REPO, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("wattprint ingest: error: "), res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr


# -- the formatter itself ---------------------------------------------------------------------------------------


def _record(msg: str, *args: object, fields: dict[str, object] | None = None,
            exc_info: object = None) -> logging.LogRecord:
    record = logging.LogRecord("wattprint.web", logging.WARNING, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    if fields is not None:
        record.fields = fields
    return record


def test_values_are_quoted_and_escaped_as_go_kit_does() -> None:
    from wattprint.common.logs import _LineFormatter, kv, typed

    fields = kv(client="10.0.0.7:5", err=ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)"),
                empty="", eq="a=b", quote='say "hi"', back="c:\\x", nl="a\nb\tc\x01", uni="été", n=3, f=0.5,
                ok=True, none=None, bug=typed(KeyError("k")), bare=OSError())
    line = _LineFormatter(debug=False).format(_record("tls handshake failed", fields=fields["fields"]))
    assert line.startswith("ts=") and ' level=warning caller=web msg="tls handshake failed" client=10.0.0.7:5 ' \
        'err="EOF occurred in violation of protocol (_ssl.c:2427)" empty="" eq="a=b" quote="say \\"hi\\"" ' \
        'back=c:\\x nl="a\\nb\\tc\\u0001" uni=été n=3 f=0.5 ok=true none="" bug="KeyError: \'k\'" bare=OSError' \
        in line, line
    pairs = dict(parse_logfmt(line))
    assert pairs["nl"] == "a\nb\tc\x01" and pairs["quote"] == 'say "hi"' and pairs["back"] == "c:\\x"

    doc = json.loads(_LineFormatter(debug=False, fmt="json").format(_record("x", fields=fields["fields"])))
    assert list(doc)[:4] == ["ts", "level", "caller", "msg"]
    assert doc["n"] == 3 and doc["ok"] is True and doc["nl"] == "a\nb\tc\x01" and doc["bare"] == "OSError"


def test_a_field_named_like_a_fixed_key_does_not_replace_it() -> None:
    from wattprint.common.logs import _LineFormatter

    line = _LineFormatter(debug=False).format(_record("m", fields={"msg": "x", "level": "y"}))
    assert [k for k, _ in parse_logfmt(line)] == ["ts", "level", "caller", "msg", "msg_", "level_"]


def test_traceback_only_at_debug_on_one_line() -> None:
    from wattprint.common.logs import _LineFormatter

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = _record("poll failed", fields={"err": "RuntimeError: boom"}, exc_info=exc_info)
    assert "exc=" not in _LineFormatter(debug=False).format(record)
    line = _LineFormatter(debug=True).format(record)
    assert "\n" not in line and "Traceback" in dict(parse_logfmt(line))["exc"]
    doc = json.loads(_LineFormatter(debug=True, fmt="json").format(record))
    assert "Traceback" in doc["exc"]


def test_urls_are_redacted_in_fields_and_messages() -> None:
    from wattprint.common.logs import _LineFormatter

    record = _record("failed %s", "http://bob:pw-1@h:9/m?api_key=k-1&gpu=0",
                     fields={"url": "https://u:p@h2/x?access_token=t-1 and more"})
    for fmt in ("logfmt", "json"):
        line = _LineFormatter(debug=False, fmt=fmt).format(record)
        assert "http://h:9/m?api_key=***&gpu=0" in line and "https://h2/x?access_token=***" in line, line
        assert not any(s in line for s in ("bob", "pw-1", "k-1", "u:p", "t-1")), line


def test_log_format_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from wattprint.exporter.config import parse_config

    assert parse_config([]).log_format == "logfmt"
    assert parse_config(["--log.format", "json"]).log_format == "json"
    monkeypatch.setenv("WATTPRINT_LOG_FORMAT", "json")
    assert parse_config([]).log_format == "json"
    monkeypatch.setenv("WATTPRINT_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit):
        parse_config([])
