"""MetricsServer and the web-config loader against a real server on 127.0.0.1 (no mocks).

Certificates come from the openssl CLI and password hashes from bcrypt (cost 4, for speed), so TLS and
basic auth are exercised exactly as a scraping Prometheus would.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge

from tests.conftest import require_tool
from wattprint.common.web import BasicAuth, CachedRenderer, MetricsServer, parse_listen_address
from wattprint.common.webconfig import WebConfigError, load_web_config

EXPOSITION = b"# HELP wattprint_test_joules Test.\n# TYPE wattprint_test_joules counter\nwattprint_test_joules 42\n"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PASSWORD = "correct horse"


def fixed_render(accept: str | None) -> tuple[bytes, str]:
    return EXPOSITION, CONTENT_TYPE


@pytest.fixture(scope="module")
def pw_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tls_yaml(crt: Path, key: Path, extra: str = "") -> str:
    return f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n{extra}"


def url(srv: MetricsServer, path: str = "/metrics", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{srv.port}{path}"


# -- plain HTTP ---------------------------------------------------------------------------------------


def test_metrics_landing_health_and_404(serve: Callable[..., MetricsServer]) -> None:
    srv = serve()
    r = requests.get(url(srv), timeout=5)
    assert r.status_code == 200
    assert r.content == EXPOSITION
    assert r.headers["Content-Type"] == CONTENT_TYPE

    r = requests.get(url(srv, "/"), timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert 'href="metrics"' in r.text

    r = requests.get(url(srv, "/-/healthy"), timeout=5)
    assert (r.status_code, r.text) == (200, "OK")

    for path in ("/nope", "/metrics/extra"):
        assert requests.get(url(srv, path), timeout=5).status_code == 404
    assert requests.get(url(srv, "/metrics?x=1"), timeout=5).content == EXPOSITION


def test_head_sends_headers_without_body(serve: Callable[..., MetricsServer]) -> None:
    srv = serve()
    r = requests.head(url(srv), headers={"Accept-Encoding": "identity"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(EXPOSITION))
    assert r.content == b""


def test_gzip_on_request_only(serve: Callable[..., MetricsServer]) -> None:
    srv = serve()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    raw = resp.read()
    assert resp.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(raw) == EXPOSITION
    # Same keep-alive connection, no gzip asked (q=0 refuses it).
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Encoding") is None
    assert resp.read() == EXPOSITION
    conn.close()


def test_cached_renderer_with_gauge(serve: Callable[..., MetricsServer]) -> None:
    registry = CollectorRegistry()
    Gauge("wattprint_test_watts", "A test gauge.", registry=registry).set(123.5)
    srv = serve(render=CachedRenderer(registry))
    r = requests.get(url(srv), timeout=5)
    assert r.status_code == 200
    assert "wattprint_test_watts 123.5" in r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    r = requests.get(url(srv), headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5)
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_render_error_is_500_and_server_survives(serve: Callable[..., MetricsServer]) -> None:
    calls = []

    def flaky(accept: str | None) -> tuple[bytes, str]:
        calls.append(accept)
        if len(calls) == 1:
            raise RuntimeError("collector bug")
        return fixed_render(accept)

    srv = serve(render=flaky)
    assert requests.get(url(srv), timeout=5).status_code == 500
    assert requests.get(url(srv), timeout=5).content == EXPOSITION


def test_configured_headers_are_sent(serve: Callable[..., MetricsServer], tmp_path: Path) -> None:
    cfg = load_web_config(write(tmp_path / "web.yml", "http_server_config:\n  headers:\n"
                                "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"))
    srv = serve(cfg)
    for path in ("/metrics", "/", "/nope"):
        r = requests.get(url(srv, path), timeout=5)
        assert r.headers["X-Frame-Options"] == "deny"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


# -- basic auth ---------------------------------------------------------------------------------------


def test_basic_auth(serve: Callable[..., MetricsServer], tmp_path: Path, pw_hash: str) -> None:
    cfg = load_web_config(write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{pw_hash}'\n"))
    srv = serve(cfg)
    r = requests.get(url(srv), timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="wattprint"'
    assert b"wattprint_test_joules" not in r.content

    for user, pw in (("prometheus", "wrong"), ("nobody", PASSWORD), ("prometheus", "x" * 100)):
        r = requests.get(url(srv), auth=(user, pw), timeout=5)
        assert r.status_code == 401, (user, pw)
        assert b"wattprint_test_joules" not in r.content
    assert requests.get(url(srv), headers={"Authorization": "Basic !!!"}, timeout=5).status_code == 401
    assert requests.get(url(srv), headers={"Authorization": "Bearer abc"}, timeout=5).status_code == 401
    assert requests.get(url(srv, "/"), timeout=5).status_code == 401

    r = requests.get(url(srv), auth=("prometheus", PASSWORD), timeout=5)
    assert r.status_code == 200 and r.content == EXPOSITION
    # Liveness probes need no credentials.
    assert requests.get(url(srv, "/-/healthy"), timeout=5).status_code == 200


def test_basic_auth_caches_outcomes(pw_hash: str) -> None:
    auth = BasicAuth({"prometheus": pw_hash.encode()}, cache_size=2)
    assert auth.check("prometheus", PASSWORD.encode())
    assert auth.check("prometheus", PASSWORD.encode())
    assert (auth.misses, auth.hits) == (1, 1)
    assert not auth.check("prometheus", b"wrong")
    assert not auth.check("prometheus", b"wrong")
    assert not auth.check("ghost", PASSWORD.encode())  # unknown user: a bcrypt check, still refused
    assert (auth.misses, auth.hits) == (3, 2)
    # Bounded: the oldest entry (the right password) was evicted and is verified again.
    assert auth.check("prometheus", PASSWORD.encode())
    assert auth.misses == 4


# -- TLS ----------------------------------------------------------------------------------------------


def test_tls(serve: Callable[..., MetricsServer], tmp_path: Path, cert: tuple[Path, Path]) -> None:
    crt, key = cert
    srv = serve(load_web_config(write(tmp_path / "web.yml", tls_yaml(crt, key))))
    r = requests.get(url(srv, scheme="https"), verify=str(crt), timeout=5)
    assert r.status_code == 200 and r.content == EXPOSITION

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url(srv), timeout=5)  # plain HTTP to the TLS port
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url(srv, scheme="https"), timeout=5)  # not trusting the self-signed cert

    r = requests.get(url(srv, scheme="https"), verify=str(crt), timeout=5)
    assert r.status_code == 200 and r.content == EXPOSITION


def test_stalled_tls_client_does_not_block_others(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                  cert: tuple[Path, Path]) -> None:
    crt, key = cert
    srv = serve(load_web_config(write(tmp_path / "web.yml", tls_yaml(crt, key))))
    with socket.create_connection(("127.0.0.1", srv.port)):  # connects, never starts the handshake
        r = requests.get(url(srv, scheme="https"), verify=str(crt), timeout=3)
        assert r.status_code == 200


def test_tls_relative_paths_and_basic_auth(serve: Callable[..., MetricsServer], tmp_path: Path,
                                           cert: tuple[Path, Path], pw_hash: str) -> None:
    crt, key = cert
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "s.crt").write_bytes(crt.read_bytes())
    (tmp_path / "certs" / "s.key").write_bytes(key.read_bytes())
    cfg_path = write(tmp_path / "web.yml", tls_yaml(Path("certs/s.crt"), Path("certs/s.key"),
                                                    f"basic_auth_users:\n  prometheus: {pw_hash}\n"))
    cfg = load_web_config(cfg_path)
    assert cfg.tls is not None and cfg.tls.cert_file == str(tmp_path / "certs" / "s.crt")
    srv = serve(cfg)
    r = requests.get(url(srv, scheme="https"), verify=str(crt), timeout=5)
    assert r.status_code == 401 and b"wattprint_test_joules" not in r.content
    r = requests.get(url(srv, scheme="https"), verify=str(crt), auth=("prometheus", "nope"), timeout=5)
    assert r.status_code == 401
    r = requests.get(url(srv, scheme="https"), verify=str(crt), auth=("prometheus", PASSWORD), timeout=5)
    assert r.status_code == 200 and r.content == EXPOSITION


def test_tls_client_certificates(serve: Callable[..., MetricsServer], tmp_path: Path,
                                 cert: tuple[Path, Path]) -> None:
    crt, key = cert  # self-signed, so it is its own CA and doubles as the client certificate
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {crt}\n"
    srv = serve(load_web_config(write(tmp_path / "web.yml", tls_yaml(crt, key, extra))))
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url(srv, scheme="https"), verify=str(crt), timeout=5)
    r = requests.get(url(srv, scheme="https"), verify=str(crt), cert=(str(crt), str(key)), timeout=5)
    assert r.status_code == 200 and r.content == EXPOSITION


# -- web config errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cert_fil: c\n", "cert_fil"),
        ("http_server_config:\n  header: {}\n", "http_server_config.header"),
        ("basic_auth_users:\n  prometheus: hunter2\n", "basic_auth_users.prometheus"),
        ("basic_auth_users:\n  prometheus: 12345\n", "basic_auth_users.prometheus"),
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "cert_file"),
        ("tls_server_config:\n  key_file: x.key\n", "cert_file"),
        ("tls_server_config: [\n", "invalid YAML"),
        ("basic_auth_users:\n  a: x\n  a: y\n", "duplicate key"),
        ("- just a list\n", "top level"),
        ("http_server_config:\n  headers:\n    Content-Length: '1'\n", "headers.Content-Length"),
        ("http_server_config:\n  headers:\n    X-Bad: \"a\\r\\nb\"\n", "headers.X-Bad"),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites"),
    ],
)
def test_web_config_errors(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "web.yml", text)
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_web_config_tls_errors(tmp_path: Path, cert: tuple[Path, Path], pw_hash: str) -> None:
    crt, key = cert
    cases = [
        ("  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file"),
        ("  client_auth_type: VerifyClientCertIfGiven\n", "client_ca_file"),
        ("  client_auth_type: Sometimes\n", "client_auth_type"),
        (f"  client_ca_file: {crt}\n", "client_ca_file"),
        ("  min_version: TLS10\n", "min_version"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "min_version"),
    ]
    for extra, word in cases:
        path = write(tmp_path / "web.yml", tls_yaml(crt, key, extra))
        with pytest.raises(WebConfigError) as err:
            load_web_config(path)
        assert str(path) in str(err.value) and word in str(err.value), extra
    # A key that does not belong to the certificate.
    other = tmp_path / "other.key"
    subprocess.run([require_tool("openssl"), "genpkey", "-algorithm", "RSA", "-out", str(other)],
                   check=True, capture_output=True)
    path = write(tmp_path / "web.yml", tls_yaml(crt, other))
    with pytest.raises(WebConfigError, match="key_file"):
        load_web_config(path)


def test_web_config_unreadable_and_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(WebConfigError, match="nope.yml"):
        load_web_config(missing)
    cfg = load_web_config(write(tmp_path / "empty.yml", ""))
    assert cfg.ssl_context() is None and not cfg.basic_auth_users


# -- listen addresses and lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:9835", ("localhost", 9835)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        (":9835", ("0.0.0.0", 9835)),
        ("[::1]:9835", ("::1", 9835)),
        ("[::]:80", ("::", 80)),
    ],
)
def test_parse_listen_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["", "9835", "host", "host:", "host:http", "host:70000", ":-1", "::1:9835",
                                  "[::1]9835", "[nothost]:1", " :9835", "a b:1"])
def test_parse_listen_address_errors(text: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen_address(text)


def test_shutdown_is_fast_even_with_open_connections(serve: Callable[..., MetricsServer]) -> None:
    srv = serve()
    session = requests.Session()  # keeps its connection alive after the request
    assert session.get(url(srv), timeout=5).status_code == 200
    start = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - start < 1.0
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url(srv), timeout=2)
    srv.shutdown()  # idempotent


def test_shutdown_before_start_and_port_in_use() -> None:
    srv = MetricsServer(("127.0.0.1", 0), fixed_render)
    assert srv.port > 0
    with pytest.raises(OSError, match=f"127.0.0.1:{srv.port}") as err:
        MetricsServer(("127.0.0.1", srv.port), fixed_render)
    assert err.value.errno is not None and err.value.strerror
    start = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - start < 1.0
