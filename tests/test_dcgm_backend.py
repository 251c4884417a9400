"""DcgmBackend against a real local HTTP server (no mocked requests)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wattprint.exporter.backends.base import BackendError, BackendUnavailable
from wattprint.exporter.backends.dcgm import DcgmBackend
from wattprint.exporter.jobs.base import NoDiscovery
from wattprint.exporter.poller import Poller

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dcgm"
REAL_PAGE = FIXTURES / "cloud-native-docs__gpu-telemetry__dcgm-exporter.rst.L245-266.metrics.txt"
MODERN_PAGE = FIXTURES / "modern-mig-2boards.metrics.txt"
REAL_UUID = "GPU-34319582-d595-d1c7-d1d2-179bcfa61660"
UUID0 = "GPU-aaaaaaaa-0000-1111-2222-333333333333"
UUID1 = "GPU-bbbbbbbb-4444-5555-6666-777777777777"


class FakeDcgm:
    """A tiny dcgm-exporter: serves ``body`` with ``status`` after ``delay`` seconds."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                time.sleep(owner.delay)
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dcgm() -> Iterator[FakeDcgm]:
    srv = FakeDcgm()
    yield srv
    srv.stop()


def _backend(url: str, **kw: float) -> DcgmBackend:
    b = DcgmBackend(url, **kw)  # type: ignore[arg-type]
    b.open()
    return b


def test_real_fixture_a100_mig(dcgm: FakeDcgm) -> None:
    dcgm.body = REAL_PAGE.read_bytes()
    b = _backend(dcgm.url)
    readings = b.read()
    b.close()

    assert len(readings) == 1
    r = readings[0]
    assert r.info.uuid == REAL_UUID
    assert r.info.index == "0"
    assert r.info.has_energy_counter is True
    assert r.ok and r.failed_calls == ()
    assert r.energy_mj == 319159391 and isinstance(r.energy_mj, int)
    assert r.power_watts == pytest.approx(409.692)
    assert r.memory_used_bytes == 4845 * 1024 * 1024
    assert r.utilization_ratio is None and r.power_limit_watts is None
    assert r.pids is None
    assert b.hostname == "ub20-a100-k8s"  # old "Hostname" spelling


def test_modern_page_mig_not_double_counted(dcgm: FakeDcgm) -> None:
    dcgm.body = MODERN_PAGE.read_bytes()
    b = _backend(dcgm.url)
    by_uuid = {r.info.uuid: r for r in b.read()}
    b.close()

    assert set(by_uuid) == {UUID0, UUID1}  # one reading per board, none per MIG instance
    r0, r1 = by_uuid[UUID0], by_uuid[UUID1]
    # Board 0: whole-board line and two MIG lines carry the same values; not summed.
    assert r0.info.index == "0"
    assert r0.info.model == "NVIDIA A100-SXM4-80GB"
    assert r0.info.driver == "550.54.15"
    assert r0.energy_mj == 987654321
    assert r0.power_watts == pytest.approx(250.5)
    assert r0.power_limit_watts == pytest.approx(400.0)
    assert r0.utilization_ratio == pytest.approx(0.87)
    assert r0.memory_used_bytes == 20480 * 1024 * 1024  # whole-board line, not the MIG slice
    # Board 1: only MIG lines carry power/energy; one of them is used, not their sum.
    assert r1.info.index == "1"
    assert r1.energy_mj == 123456789
    assert r1.power_watts == pytest.approx(300.25)
    assert r1.power_limit_watts == pytest.approx(350.0)  # enforced limit preferred over mgmt limit
    assert r0.ok and r1.ok and r0.info.has_energy_counter and r1.info.has_energy_counter
    assert b.hostname == "node-a"


def test_power_only_board_and_board_with_nothing(dcgm: FakeDcgm) -> None:
    dcgm.body = (
        b'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-p"} 100.5\n'
        b'DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-q"} 40\n'
    )
    b = _backend(dcgm.url)
    by_uuid = {r.info.uuid: r for r in b.read()}
    b.close()
    p, q = by_uuid["GPU-p"], by_uuid["GPU-q"]
    assert p.ok and not p.info.has_energy_counter and p.energy_mj is None and p.power_watts == 100.5
    assert not q.ok and q.failed_calls == ("energy", "power")


def test_endpoint_down_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = _backend(f"http://127.0.0.1:{port}/metrics", timeout=1.0, retries=2)  # open() does not need it up
    t0 = time.monotonic()
    with pytest.raises(BackendError) as ei:
        b.read()
    assert time.monotonic() - t0 < 2.0
    assert "Traceback" not in str(ei.value) and len(str(ei.value)) < 200


def test_slow_endpoint_bounded(dcgm: FakeDcgm) -> None:
    timeout, retries = 0.3, 2
    dcgm.body = MODERN_PAGE.read_bytes()
    dcgm.delay = 3.0
    b = _backend(dcgm.url, timeout=timeout, retries=retries)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="timed out"):
        b.read()
    assert time.monotonic() - t0 < (retries + 1) * timeout + 2.0
    assert dcgm.requests == retries + 1


@pytest.mark.parametrize(
    "body",
    [
        os.urandom(4096),
        b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>",
        b"node_cpu_seconds_total 1\n",  # valid exposition, but not dcgm-exporter
        b"",
    ],
    ids=["random-bytes", "html", "not-dcgm", "empty"],
)
def test_garbage_body(dcgm: FakeDcgm, body: bytes) -> None:
    dcgm.body = body
    b = _backend(dcgm.url, timeout=1.0, retries=0)
    with pytest.raises(BackendError) as ei:
        b.read()
    assert len(str(ei.value)) < 250  # never the whole body


def test_http_500(dcgm: FakeDcgm) -> None:
    dcgm.status = 500
    dcgm.body = b"internal error"
    b = _backend(dcgm.url, timeout=1.0, retries=1)
    with pytest.raises(BackendError, match="HTTP 500"):
        b.read()
    assert dcgm.requests == 2


@pytest.mark.parametrize(
    "url", ["", "localhost:9400/metrics", "ftp://host/metrics", "http:///metrics", "http://host:99999/"]
)
def test_invalid_url(url: str) -> None:
    with pytest.raises(BackendUnavailable, match="--dcgm-url"):
        DcgmBackend(url).open()


def test_poller_integration(dcgm: FakeDcgm) -> None:
    template = REAL_PAGE.read_text()
    dcgm.body = template.encode()
    poller = Poller(_backend(dcgm.url, timeout=1.0, retries=0), NoDiscovery())

    first = poller.poll_once()
    dcgm.body = template.replace(" 319159391", " 319164391").encode()  # +5000 mJ
    second = poller.poll_once()
    (g1,), (g2,) = first.gpus, second.gpus
    assert g2.info.uuid == REAL_UUID and g2.up and g2.energy_source == "counter"
    assert g2.energy_mj - g1.energy_mj == 5000
    assert g2.idle_mj - g1.idle_mj == 5000

    dcgm.body = b"<html>garbage</html>"
    third = poller.poll_once()  # must not raise
    (g3,) = third.gpus
    assert g3.up is False
    assert dict(g3.errors).get("backend") == 1
    assert ("gpu", False) in [(name, ok) for name, ok, _ in third.collectors]
    assert g3.energy_mj == g2.energy_mj


def test_exporter_process_on_the_real_dcgm_sample(dcgm: FakeDcgm) -> None:
    """The whole exporter, --backend dcgm, against the real A100 sample on a local HTTP server."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from tests.exporter_proc import running_exporter

    dcgm.body = REAL_PAGE.read_bytes()
    with running_exporter("--backend", "dcgm", "--dcgm-url", dcgm.url, "--poll-interval", "0.2") as (_, port):
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {s.name: s for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples["wattprint_gpu_power_watts"].value == pytest.approx(409.692)
    assert samples["wattprint_gpu_power_watts"].labels["uuid"] == REAL_UUID
    assert samples["wattprint_gpu_up"].value == 1
    assert samples["wattprint_gpu_info"].labels["energy_source"] == "counter"
    assert samples["wattprint_gpu_info"].labels["backend"] == "dcgm"
