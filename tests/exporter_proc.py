"""Run the real wattprint-exporter as a subprocess on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

from tests.conftest import REPO, free_port, wait_http


@contextmanager
def running_exporter(*args: str, port: int | None = None, scheme: str = "http", env: dict[str, str] | None = None,
                     **http_kw: object):
    port = port or free_port()
    cmd = [sys.executable, "-m", "wattprint.exporter", "--web.listen-address", f"127.0.0.1:{port}", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        try:
            wait_http(f"{scheme}://127.0.0.1:{port}/-/healthy", timeout=20, **http_kw)
        except TimeoutError:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"exporter did not start: rc={proc.returncode} stderr={err}") from None
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()


def run_exporter(*args: str, timeout: float = 20,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run to completion (for start-up errors)."""
    cmd = [sys.executable, "-m", "wattprint.exporter", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def wait_until(pred, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False
