"""The real exporter process: start-up errors, a full scrape through promtool, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, require_tool
from tests.exporter_proc import run_exporter, running_exporter


def test_full_scrape_is_valid_and_passes_promtool(tmp_path):
    promtool = require_tool("promtool")
    (tmp_path / "0").write_text("4242\n")
    with running_exporter(
        "--backend", "replay", "--replay-gpus", "2", "--job-discovery", "mapping-dir",
        "--mapping-dir", str(tmp_path), "--label", "cluster=jz", "--label", "region=FR", "--poll-interval", "0.2",
    ) as (_, port):
        time.sleep(0.5)
        r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(r.text)}
    for required in (
        "wattprint_gpu_energy_joules", "wattprint_gpu_power_watts", "wattprint_gpu_up", "wattprint_gpu_info",
        "wattprint_job_info", "wattprint_job_energy_joules", "wattprint_job_gpu_seconds",
        "wattprint_gpu_idle_energy_joules",
        "wattprint_exporter_collector_success", "process_resident_memory_bytes",
    ):
        assert required in names
    assert 'job_id="4242"' in r.text and 'cluster="jz"' in r.text
    res = subprocess.run([promtool, "check", "metrics"], input=r.text, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def test_sigterm_stops_cleanly_within_a_second():
    with running_exporter("--backend", "replay") as (proc, _):
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(5)
        elapsed = time.monotonic() - t0
        err = proc.stderr.read()
    assert rc == 0 and elapsed < 1.0, (elapsed, err)
    assert "Traceback" not in err and "stopping signal=SIGTERM" in err


def test_sigint_stops_cleanly():
    with running_exporter("--backend", "replay") as (proc, _):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
        assert "Traceback" not in proc.stderr.read()


def _nvml_loads() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


def test_nvml_unavailable_exits_2_with_one_line():
    if _nvml_loads():
        pytest.skip("a real GPU is present here, so NVML loads (tests/test_gpu_real.py covers that machine)")
    res = run_exporter("--backend", "nvml", "--web.listen-address", f"127.0.0.1:{free_port()}")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot initialise NVML" in lines[0] and "--backend replay" in lines[0], lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "bad-key=x"], "--label"),
        (["--label", "gpu=x"], "set by the exporter itself"),
        (["--label", "cluster=a", "--label", "cluster=b"], "more than once"),
        (["--poll-interval", "0"], "--poll-interval"),
        (["--job-discovery", "mapping-dir"], "needs --mapping-dir"),
        (["--web.config.file", "/nonexistent/web.yml"], "/nonexistent/web.yml"),
        (["--replay-trace", "/nonexistent/trace.csv"], "/nonexistent/trace.csv"),
        (["--web.listen-address", "nonsense"], "--web.listen-address"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(args, message):
    res = run_exporter("--backend", "replay", *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


def test_environment_sets_flags():
    import os
    import sys

    env = dict(os.environ, WATTPRINT_POLL_INTERVAL="-3")
    res = subprocess.run([sys.executable, "-m", "wattprint.exporter", "--backend", "replay"], capture_output=True,
                         text=True, env=env, timeout=20)
    assert res.returncode == 2 and "--poll-interval" in res.stderr


def test_port_in_use_is_a_clear_error():
    with running_exporter("--backend", "replay") as (_, port):
        res = run_exporter("--backend", "replay", "--web.listen-address", f"127.0.0.1:{port}")
    assert res.returncode == 2 and "cannot listen" in res.stderr and "Traceback" not in res.stderr
