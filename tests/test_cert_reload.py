"""Certificate and web-config reload without a restart, and the keep-alive idle timeout.

Real certificates from the openssl CLI (EC P-256, quick to make), a real server on 127.0.0.1 (MetricsServer in
process, and the exporter as a process), scrapers looping while the files change under them. Which certificate
a handshake got is read back from the peer certificate (SHA-256 of its DER form).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.conftest import require_tool
from tests.exporter_proc import running_exporter
from wattprint.common import web
from wattprint.common.web import IDLE_TIMEOUT_S, MetricsServer
from wattprint.common.webconfig import WebConfigError, load_web_config

EXPOSITION = b"# HELP wattprint_test_joules Test.\n# TYPE wattprint_test_joules counter\nwattprint_test_joules 42\n"


def fixed_render(accept: str | None) -> tuple[bytes, str]:
    return EXPOSITION, "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Pair:
    crt: bytes
    key: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(self.crt.decode())).hexdigest()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[Pair]:
    """Four distinct self-signed certificates for 127.0.0.1, each with its key."""
    openssl = require_tool("openssl")
    d = tmp_path_factory.mktemp("certs")
    out = []
    for i in range(4):
        crt, key = d / f"{i}.crt", d / f"{i}.key"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-subj", f"/CN=127.0.0.1/O=rotation {i}", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-days", "1", "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
        out.append(Pair(crt.read_bytes(), key.read_bytes()))
    assert len({p.fingerprint for p in out}) == 4
    return out


@pytest.fixture
def serve(serve: Callable[..., MetricsServer]) -> Callable[..., MetricsServer]:
    """The conftest's, started from a web-config file (so that it can reload it)."""
    return lambda config_path, **kw: serve(load_web_config(config_path), **kw)


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """The wattprint.web warnings (the logger may not propagate to pytest's caplog)."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                fields = getattr(record, "fields", {})  # extra=kv(...): the error is a field
                seen.append(" ".join([record.getMessage(), *(f"{k}={v}" for k, v in fields.items())]))

    handler = Keep()
    logger = logging.getLogger("wattprint.web")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test compares fingerprints instead of trusting a CA
    return ctx


def scrape(port: int, conn: http.client.HTTPSConnection | None = None,
           auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """GET /metrics on `conn` (a new connection when None): (status, fingerprint of the served certificate)."""
    own = conn is None
    c = conn or http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=_client_context())
    try:
        headers = {}
        if auth is not None:
            headers["Authorization"] = requests.auth._basic_auth_str(*auth)
        c.request("GET", "/metrics", headers=headers)
        resp = c.getresponse()
        body = resp.read()
        assert c.sock is not None
        der = c.sock.getpeercert(binary_form=True)
        assert der is not None
        if resp.status == 200:
            assert body == EXPOSITION or b"wattprint_" in body
        return resp.status, hashlib.sha256(der).hexdigest()
    finally:
        if own:
            c.close()


@dataclass
class Scrapers:
    """Two scrapers looping until stopped: one handshaking anew every scrape, one on a kept-alive connection."""

    port: int
    fresh: list[tuple[float, int | str, str]] = field(default_factory=list)  # (start, status, fingerprint)
    kept: list[int | str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Scrapers:
        self.threads = [threading.Thread(target=self._fresh, daemon=True),
                        threading.Thread(target=self._kept, daemon=True)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _fresh(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, fp = scrape(self.port)
                self.fresh.append((t0, status, fp))
            except (OSError, http.client.HTTPException) as exc:
                self.fresh.append((t0, type(exc).__name__, ""))

    def _kept(self) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=_client_context())
        while not self.stop.is_set():
            try:
                self.kept.append(scrape(self.port, conn)[0])
            except (OSError, http.client.HTTPException) as exc:
                self.kept.append(type(exc).__name__)
            time.sleep(0.005)
        conn.close()

    def wait_for(self, n: int = 10, timeout: float = 30.0) -> None:
        """Until both scrapers have done `n` more scrapes (rather than a fixed sleep: the CPUs may be busy)."""
        fresh, kept = len(self.fresh) + n, len(self.kept) + n
        deadline = time.monotonic() + timeout
        while (len(self.fresh) < fresh or len(self.kept) < kept) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.fresh) >= fresh and len(self.kept) >= kept, "the scrapers stalled"

    def failed(self) -> int:
        return sum(s != 200 for _, s, _ in self.fresh) + sum(s != 200 for s in self.kept)

    def old_after(self, changed: float, new_fp: str, until: float = float("inf")) -> int:
        """Handshakes started after `changed` (and before `until`) that got another certificate than `new_fp`."""
        return sum(1 for t0, _, fp in self.fresh if changed < t0 < until and fp != new_fp)


def _k8s_secret_dir(d: Path, pair: Pair, version: str) -> None:
    """Kubernetes' secret volume layout, as cert-manager's renewals reach a pod: tls.crt -> ..data/tls.crt,
    ..data -> ..<version>; a renewal writes a new ..<version> and swaps the ..data link by rename (atomic)."""
    target = d / f"..{version}"
    target.mkdir()
    (target / "tls.crt").write_bytes(pair.crt)
    (target / "tls.key").write_bytes(pair.key)
    tmp = d / "..data_tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, d / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (d / name).is_symlink():
            (d / name).symlink_to(f"..data/{name}")


def _tls_config(path: Path, crt: Path, key: Path, extra: str = "") -> Path:
    path.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n{extra}")
    return path


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:  # same inode: truncate and rewrite, as `cp` over the file does
        f.truncate(0)
        f.write(data)


# -- certificate rotation ------------------------------------------------------------------------------


def test_rotation_is_served_from_the_next_handshake_without_a_failed_scrape(
        serve: Callable[..., MetricsServer], tmp_path: Path, pairs: list[Pair]) -> None:
    a, b, c = pairs[:3]
    secret = tmp_path / "secret"
    secret.mkdir()
    _k8s_secret_dir(secret, a, "v1")
    srv = serve(_tls_config(tmp_path / "web.yml", secret / "tls.crt", secret / "tls.key"))
    assert scrape(srv.port) == (200, a.fingerprint)

    with Scrapers(srv.port) as loop:
        loop.wait_for()
        _k8s_secret_dir(secret, b, "v2")  # atomic: both files at once
        swapped = time.monotonic()
        assert scrape(srv.port) == (200, b.fingerprint)  # the very next handshake
        loop.wait_for()

        # In place, not atomic: the certificate first, then its key (a pair that does not match in between).
        crt_file, key_file = (secret / "tls.crt").resolve(), (secret / "tls.key").resolve()
        rewriting = time.monotonic()
        _write_in_place(crt_file, c.crt)
        time.sleep(0.05)
        _write_in_place(key_file, c.key)
        rewritten = time.monotonic()
        assert scrape(srv.port) == (200, c.fingerprint)
        loop.wait_for()

    fresh = len(loop.fresh)
    old_after_swap = loop.old_after(swapped, b.fingerprint, until=rewriting)
    print(f"\nrotation (symlink swap, then in place): {fresh} new-connection scrapes + {len(loop.kept)} kept-alive, "
          f"{loop.failed()} failed; old certificate after the swap: {old_after_swap} handshakes, "
          f"after the in-place rewrite: {loop.old_after(rewritten, c.fingerprint)}")
    assert loop.failed() == 0, (loop.fresh, loop.kept)
    assert old_after_swap == 0
    assert loop.old_after(rewritten, c.fingerprint) == 0
    assert {fp for _, _, fp in loop.fresh} == {a.fingerprint, b.fingerprint, c.fingerprint}


def test_a_broken_new_version_keeps_the_last_good_one(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                      pairs: list[Pair], warnings_logged: list[str]) -> None:
    a, b, c = pairs[:3]
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(a.crt)
    key.write_bytes(a.key)
    config = _tls_config(tmp_path / "web.yml", crt, key)
    good_yaml = config.read_text()
    srv = serve(config)

    def still_a(times: int = 3) -> None:
        for _ in range(times):
            assert scrape(srv.port) == (200, a.fingerprint)

    config.write_text(good_yaml + "  cert_file: twice\n")  # bad YAML (a duplicate key)
    still_a()
    config.write_text("tls_server_config: [\n")  # another YAML error
    still_a()
    assert len(warnings_logged) == 2, warnings_logged  # once per distinct failure, not per handshake
    assert "duplicate key" in warnings_logged[0] and "invalid YAML" in warnings_logged[1]
    config.write_text(good_yaml)
    still_a(1)

    key.write_bytes(b.key)  # the key of another certificate
    still_a()
    assert len(warnings_logged) == 3 and "key must match" in warnings_logged[2], warnings_logged
    crt.write_bytes(b.crt[: len(b.crt) // 2])  # half written
    still_a()
    assert len(warnings_logged) == 4 and "cert_file" in warnings_logged[3], warnings_logged
    (tmp_path / "web.yml.new").write_text("")  # plain HTTP: switching needs a restart
    os.replace(tmp_path / "web.yml.new", config)
    still_a()
    assert len(warnings_logged) == 5 and "restart" in warnings_logged[4], warnings_logged
    _tls_config(config, crt, key)

    crt.write_bytes(b.crt)  # complete now
    assert scrape(srv.port) == (200, b.fingerprint)
    n = len(warnings_logged)
    # the same failure again after a good version is logged again
    key.write_bytes(c.key)
    assert scrape(srv.port) == (200, b.fingerprint)
    assert len(warnings_logged) == n + 1


def test_exporter_process_serves_a_renewed_certificate(tmp_path: Path, pairs: list[Pair]) -> None:
    """The real exporter with --web.config.file: certificate and key replaced by rename (as an ACME client
    writing new files does), one after the other, while a scraper loops."""
    a, _, _, d = pairs
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(a.crt)
    key.write_bytes(a.key)
    config = _tls_config(tmp_path / "web.yml", crt, key)
    (tmp_path / "ca.crt").write_bytes(a.crt)
    with running_exporter("--backend", "replay", "--replay-gpus", "2", "--web.config.file", str(config),
                          scheme="https", verify=str(tmp_path / "ca.crt")) as (_, port):
        assert scrape(port) == (200, a.fingerprint)
        with Scrapers(port) as loop:
            loop.wait_for()
            for name, data in ((key, d.key), (crt, d.crt)):
                tmp = name.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, name)
                time.sleep(0.05)
            renewed = time.monotonic()
            assert scrape(port) == (200, d.fingerprint)
            loop.wait_for()
    print(f"\nexporter process, renewal by rename: {len(loop.fresh)} new-connection scrapes + {len(loop.kept)} "
          f"kept-alive, {loop.failed()} failed; old certificate after the renewal: "
          f"{loop.old_after(renewed, d.fingerprint)} handshakes")
    assert loop.failed() == 0, (loop.fresh, loop.kept)
    assert loop.old_after(renewed, d.fingerprint) == 0
    assert {fp for _, _, fp in loop.fresh} == {a.fingerprint, d.fingerprint}


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_reloaded_tls_keeps_old_protocols_and_client_certificates_refused(
        serve: Callable[..., MetricsServer], tmp_path: Path, pairs: list[Pair]) -> None:
    a, b = pairs[:2]
    for p, name in ((a, "a"), (b, "b")):
        (tmp_path / f"{name}.crt").write_bytes(p.crt)
        (tmp_path / f"{name}.key").write_bytes(p.key)
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(a.crt)
    key.write_bytes(a.key)
    # a is its own CA: a client presenting a's certificate is accepted
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {tmp_path / 'a.crt'}\n"
    srv = serve(_tls_config(tmp_path / "web.yml", crt, key, extra))

    def with_client_cert() -> str:
        ctx = _client_context()
        ctx.load_cert_chain(tmp_path / "a.crt", tmp_path / "a.key")
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=ctx)
        try:
            status, fp = scrape(srv.port, conn)
        finally:
            conn.close()
        assert status == 200
        return fp

    assert with_client_cert() == a.fingerprint
    crt.write_bytes(b.crt)
    key.write_bytes(b.key)
    assert with_client_cert() == b.fingerprint
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        scrape(srv.port)  # no client certificate
    old = _client_context()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            old.wrap_socket(raw).do_handshake()


def test_shutdown_is_fast_with_tls_connections_open(serve: Callable[..., MetricsServer], tmp_path: Path,
                                                   pairs: list[Pair]) -> None:
    """Connections are wrapped per connection now: shutdown must still find and wake them all."""
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(pairs[0].crt)
    key.write_bytes(pairs[0].key)
    srv = serve(_tls_config(tmp_path / "web.yml", crt, key))
    kept = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=5, context=_client_context())
    assert scrape(srv.port, kept)[0] == 200  # kept alive, idle
    silent = socket.create_connection(("127.0.0.1", srv.port))  # never starts its handshake
    deadline = time.monotonic() + 5
    while srv.open_connections() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.open_connections() == 2
    start = time.monotonic()
    srv.shutdown()
    assert time.monotonic() - start < 1.0
    assert silent.recv(1) == b""  # closed by the server, not left to its 10 s head deadline
    sock = kept.sock
    assert sock is not None
    sock.settimeout(2)
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        scrape(srv.port, kept)
    silent.close()
    kept.close()


# -- basic auth users ----------------------------------------------------------------------------------


def test_a_password_change_applies_to_the_next_request(serve: Callable[..., MetricsServer], tmp_path: Path) -> None:
    def users(password: str) -> str:
        return f"basic_auth_users:\n  prometheus: '{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}'\n"

    config = tmp_path / "web.yml"
    config.write_text(users("old password") + "http_server_config:\n  headers:\n    X-Version: one\n")
    srv = serve(config)
    url = f"http://127.0.0.1:{srv.port}/metrics"
    session = requests.Session()
    r = session.get(url, auth=("prometheus", "old password"), timeout=5)
    assert r.status_code == 200 and r.headers["X-Version"] == "one"
    before = srv.auth

    (tmp_path / "web.yml.new").write_text(users("new password") + "http_server_config:\n  headers:\n"
                                          "    X-Version: two\n")
    os.replace(tmp_path / "web.yml.new", config)
    r = session.get(url, auth=("prometheus", "old password"), timeout=5)
    assert r.status_code == 401
    r = session.get(url, auth=("prometheus", "new password"), timeout=5)
    assert r.status_code == 200 and r.headers["X-Version"] == "two"
    assert srv.auth is not before

    # Only the headers change (in place): the users' bcrypt cache is kept.
    auth = srv.auth
    config.write_text(config.read_text().replace("two", "three"))
    r = session.get(url, auth=("prometheus", "new password"), timeout=5)
    assert r.status_code == 200 and r.headers["X-Version"] == "three"
    assert srv.auth is auth


def test_prefer_server_cipher_suites_is_accepted_and_checked(tmp_path: Path, pairs: list[Pair]) -> None:
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(pairs[0].crt)
    key.write_bytes(pairs[0].key)
    for value in ("true", "false"):
        cfg = load_web_config(_tls_config(tmp_path / "web.yml", crt, key, f"  prefer_server_cipher_suites: {value}\n"))
        assert cfg.tls is not None
    with pytest.raises(WebConfigError, match="prefer_server_cipher_suites"):
        load_web_config(_tls_config(tmp_path / "web.yml", crt, key, "  prefer_server_cipher_suites: maybe\n"))


# -- keep-alive ----------------------------------------------------------------------------------------


def test_idle_keep_alive_outlasts_a_60s_scrape_interval_and_is_configurable(tmp_path: Path) -> None:
    assert IDLE_TIMEOUT_S > 60  # Prometheus' common intervals are 15 s to 60 s: one connection for good
    assert web.HEAD_TIMEOUT_S == 10.0 and web.WRITE_TIMEOUT_S <= 30.0  # the other bounds are unchanged
    with pytest.raises(ValueError, match="idle_timeout"):
        MetricsServer(("127.0.0.1", 0), fixed_render, idle_timeout=0)
    default = MetricsServer(("127.0.0.1", 0), fixed_render)
    short = MetricsServer(("127.0.0.1", 0), fixed_render, idle_timeout=0.5)
    assert default.idle_timeout == IDLE_TIMEOUT_S
    for srv in (default, short):
        srv.start()
    try:
        conns = {}
        for name, srv in (("default", default), ("short", short)):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            conn.request("GET", "/metrics")
            assert conn.getresponse().read() == EXPOSITION
            conns[name] = conn
        time.sleep(1.2)  # past the short idle timeout
        sock = conns["short"].sock
        assert sock is not None and sock.recv(1) == b""  # closed by the server
        sock = conns["default"].sock
        assert sock is not None
        conns["default"].request("GET", "/metrics")  # still open: the same socket answers
        assert conns["default"].getresponse().read() == EXPOSITION and conns["default"].sock is sock
        for conn in conns.values():
            conn.close()
    finally:
        default.shutdown()
        short.shutdown()
