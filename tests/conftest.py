"""Shared test helpers: the CI guard for tools, free ports, waiting on HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def tools_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("WATTPRINT_REQUIRE_TOOLS") == "1"


# Tools that come from the test venv (requirements/test.txt), not from Debian: the console script of a package.
PIP_TOOLS = {"sushy-static": "sushy-tools"}


def require_tool(name: str) -> str:
    """Path of a tool; skip without it on a laptop, fail without it in CI (CI=true / WATTPRINT_REQUIRE_TOOLS=1)."""
    # A pip tool is installed beside the interpreter running the tests, which need not be on PATH.
    path = shutil.which(name) or (shutil.which(name, path=str(Path(sys.executable).parent)) if name in PIP_TOOLS
                                  else None)
    if path:
        return path
    package = {"victoria-metrics": "victoria-metrics", "curl": "curl", "chromium": "chromium",
               "openssl": "openssl", "setpriv": "util-linux", "unshare": "util-linux",
               "systemd-analyze": "systemd"}.get(name, "prometheus")
    msg = f"{name} not found on PATH (Debian: apt-get install --no-install-recommends {package})"
    if name in PIP_TOOLS:
        msg = (f"{name} not found beside {sys.executable} nor on PATH (the {PIP_TOOLS[name]} package of "
               "requirements/test.txt: scripts/bootstrap.sh installs it)")
    if tools_required():
        pytest.fail(f"{msg}; required because CI=true or WATTPRINT_REQUIRE_TOOLS=1")
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_server(handler: type[BaseHTTPRequestHandler],
                    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> tuple[ThreadingHTTPServer, str]:
    """A real HTTP server on a free 127.0.0.1 port, served from a daemon thread, and its base URL.
    Stop it with ``httpd.shutdown(); httpd.server_close()``."""
    httpd = server_class(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def wait_http(url: str, timeout: float = 20.0, **kw: object) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = requests.get(url, timeout=2, **kw)  # type: ignore[arg-type]
            if r.status_code < 500:
                return r
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s: {last}")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (TLS tests of the exporter and the Prometheus client)."""
    openssl = require_tool("openssl")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


@pytest.fixture(scope="session")
def report_fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The known fleet of tests/reportkit.py, built once (about 8 s) and only read: (database, config)."""
    from tests import reportkit

    return reportkit.build(tmp_path_factory.mktemp("report-fleet"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden files (review the diff)")


@pytest.fixture
def serve(request: pytest.FixtureRequest):
    """Start MetricsServers on 127.0.0.1:0 (``serve(web_config=None, render=None, **kw)``), all shut down after
    the test. The page is the test module's ``fixed_render`` unless ``render`` is given."""
    from wattprint.common.web import MetricsServer

    servers: list[MetricsServer] = []
    default = getattr(request.module, "fixed_render", None) or (
        lambda accept: (b"wattprint_test 1\n", "text/plain; version=0.0.4"))

    def start(web_config=None, render=None, **kw):  # type: ignore[no-untyped-def]
        srv = MetricsServer(("127.0.0.1", 0), render or default, web_config, **kw)
        servers.append(srv)
        srv.start()
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
