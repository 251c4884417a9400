"""The exporter process with --node-power redfish against a real Redfish server (sushy-static): both node series on
/metrics beside the GPUs, start-up faults, and a BMC that never answers, which must not slow the GPU poll."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, loopback_server, require_tool
from tests.exporter_proc import run_exporter, running_exporter, wait_until
from tests.redfishkit import sushy_static


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def node_energy(port: int) -> float | None:
    samples = scrape(port).get("wattprint_node_energy_joules_total")
    return samples[0][1] if samples else None


def test_exporter_serves_node_energy_and_power_from_redfish(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    secret = tmp_path / "bmc-password"
    secret.write_text("calvin-0f-the-bmc\n")
    with sushy_static(tmp_path) as bmc:
        bmc.set_environment(EnergyJoules=2_000_000.0, PowerWatts=1800.0)
        with running_exporter(
            "--backend", "replay", "--replay-gpus", "2", "--hostname", "gpu-node-7", "--label", "cluster=jz",
            "--node-power", "redfish", "--redfish-url", bmc.url + "/", "--redfish-chassis", "Modern",
            "--redfish-user", "root", "--redfish-password-file", str(secret),
            "--node-power-interval", "0.2", "--poll-interval", "0.2",
        ) as (proc, port):
            assert wait_until(lambda: node_energy(port) is not None, timeout=10)
            bmc.set_environment(EnergyJoules=2_003_600.5, PowerWatts=1900.0)
            assert wait_until(lambda: node_energy(port) == 3600.5, timeout=10), scrape(port)
            page = scrape(port)
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            # a broken answer then, logged once
            bmc.write("Chassis/Modern/EnvironmentMetrics", "not json")
            assert wait_until(lambda: "wattprint_node_energy_joules_total" not in scrape(port), timeout=10)
            proc.terminate()
            proc.wait(5)
            err = proc.stderr.read()
    labels = {"hostname": "gpu-node-7", "source": "redfish", "cluster": "jz"}
    assert page["wattprint_node_energy_joules_total"] == [(labels, 3600.5)]
    assert page["wattprint_node_power_watts"] == [(labels, 1900.0)]
    assert page["wattprint_node_power_source_info"][0][0]["method"] == "counter"
    assert ({"collector": "node_power"}, 1.0) in page["wattprint_exporter_collector_success"]
    assert len(page["wattprint_gpu_energy_joules_total"]) == 2   # the GPUs are served beside
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
    assert "node power source found" in err and err.count("node power read failed") == 1
    assert "calvin-0f-the-bmc" not in err and base64.b64encode(b"root:calvin-0f-the-bmc").decode() not in err
    assert "Traceback" not in err


def test_the_node_counter_continues_across_an_exporter_restart(tmp_path: Path) -> None:
    """--state-file: stopped, the BMC counts on; started again, the served counter is the saved total plus the BMC's
    count over the downtime, exactly (no reset for Prometheus, no energy lost)."""
    state = tmp_path / "state.json"
    with sushy_static(tmp_path) as bmc:
        args = ("--backend", "replay", "--node-power", "redfish", "--redfish-url", bmc.url,
                "--redfish-chassis", "Modern", "--state-file", str(state),
                "--node-power-interval", "0.2", "--poll-interval", "0.2")
        bmc.set_environment(EnergyJoules=1_000_000.0)
        with running_exporter(*args) as (proc, port):
            assert wait_until(lambda: node_energy(port) == 0.0, timeout=10)
            bmc.set_environment(EnergyJoules=1_000_123.25)
            assert wait_until(lambda: node_energy(port) == 123.25, timeout=10), scrape(port)
            proc.terminate()
            assert proc.wait(5) == 0
        saved = json.loads(state.read_text())["node"]
        bmc.set_environment(EnergyJoules=1_004_000.5)   # counted by the BMC while no exporter ran
        with running_exporter(*args) as (proc, port):
            assert wait_until(lambda: node_energy(port) is not None, timeout=10)
            page = scrape(port)
            proc.terminate()
            proc.wait(5)
            err = proc.stderr.read()
    assert saved["energy_mj"] == 123_250 and saved["counter"]["raw_mj"] == 1_000_123_250
    assert saved["counter"]["bmc"] == bmc.url.split("//", 1)[1] and saved["counter"]["chassis"].endswith("/Modern")
    assert page["wattprint_node_energy_joules_total"][0][1] == 123.25 + (1_004_000.5 - 1_000_123.25) == 4000.5
    assert page["wattprint_node_energy_resets_total"][0][1] == 0.0
    assert page["wattprint_node_power_gaps_total"][0][1] == 0.0
    assert "node energy counter resumed" in err and "Traceback" not in err


class _Silent(BaseHTTPRequestHandler):
    """A BMC that accepts the connection and answers nothing for 3 s."""

    def do_GET(self) -> None:
        time.sleep(3)

    def log_message(self, *args: object) -> None:
        pass


def test_a_bmc_that_never_answers_does_not_slow_the_gpu_poll() -> None:
    httpd, url = loopback_server(_Silent)
    try:
        with running_exporter("--backend", "replay", "--poll-interval", "0.1", "--node-power", "redfish",
                              "--redfish-url", url, "--node-power-interval", "0.5", "--node-power-timeout", "0.3",
                              "--node-power-max-gap", "5") as (_, port):
            assert wait_until(lambda: "wattprint_node_power_errors_total" in scrape(port), timeout=10)
            polls_before = scrape(port)["wattprint_exporter_polls_total"][0][1]
            time.sleep(1.0)
            page = scrape(port)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert page["wattprint_exporter_polls_total"][0][1] - polls_before >= 7   # 10 polls a second, undisturbed
    assert page["wattprint_node_power_up"][0][1] == 0.0
    assert {lab["reason"] for lab, _ in page["wattprint_node_power_errors_total"]} == {"timeout"}
    assert "wattprint_node_energy_joules_total" not in page
    assert ({"collector": "node_power"}, 0.0) in page["wattprint_exporter_collector_success"]


@pytest.mark.parametrize(("args", "message"), [
    (["--node-power", "redfish"], "needs --redfish-url"),
    (["--node-power", "redfish", "--redfish-url", "https://root:calvin@bmc/"], "contains credentials"),
    (["--node-power", "redfish", "--redfish-url", "https://bmc/", "--redfish-user", "root",
      "--redfish-password-file", "/nonexistent/pw"], "/nonexistent/pw"),
    (["--node-power", "redfish", "--redfish-url", "https://bmc/", "--redfish-ca-file", "/nonexistent/ca.pem"],
     "/nonexistent/ca.pem"),
    (["--node-power", "redfish", "--redfish-url", "https://bmc/", "--node-power-interval", "90"],
     "--node-power-max-gap"),
    (["--node-power", "ipmi"], "--node-power"),
])
def test_node_power_faults_exit_2_with_one_clear_line(args: list[str], message: str) -> None:
    res = run_exporter("--backend", "replay", "--web.listen-address", f"127.0.0.1:{free_port()}", *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert "calvin" not in res.stderr
