"""On a machine with a real NVIDIA GPU: the exported energy counter follows NVML's own counter.

Skips where NVML does not load (no GPU). Run it on a GPU machine with
`pytest -m gpu -s tests/test_gpu_real.py`; it prints scrape latency and poll cost.
A matmul load runs through PyTorch when it is installed (otherwise the GPU idles,
which still checks the counter path).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_proc import running_exporter

pytestmark = pytest.mark.gpu

LOAD = """
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + {seconds}
while time.time() < end:
    (a @ a).sum().item()
"""


@pytest.fixture(scope="module")
def nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no driver / no GPU here
        pytest.skip(f"no real GPU: NVML does not load ({exc})")
    yield pynvml
    pynvml.nvmlShutdown()


def _scrape(port: int) -> tuple[dict[str, float], dict[str, float], float]:
    t0 = time.perf_counter()
    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    took = time.perf_counter() - t0
    energy, poll = {}, {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == "wattprint_gpu_energy_joules_total":
                energy[s.labels["uuid"]] = s.value
            elif s.name == "wattprint_exporter_poll_duration_seconds":
                poll["poll"] = s.value
    return energy, poll, took


def test_exported_energy_matches_nvml_counter_under_load(nvml):
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    uuid = nvml.nvmlDeviceGetUUID(h)
    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
    interval = 0.5
    with running_exporter("--backend", "nvml", "--poll-interval", str(interval)) as (_, port):
        time.sleep(2 * interval)
        e0, _, _ = _scrape(port)
        n0 = nvml.nvmlDeviceGetTotalEnergyConsumption(h)
        try:
            import torch  # noqa: F401

            subprocess.run([sys.executable, "-c", LOAD.format(seconds=20)], check=True, timeout=120)
        except ImportError:
            time.sleep(20)
        n1 = nvml.nvmlDeviceGetTotalEnergyConsumption(h)
        time.sleep(2 * interval)  # let the poller pass the point where NVML was read
        latencies, polls = [], []
        for _ in range(50):
            _, poll, took = _scrape(port)
            latencies.append(took)
            polls.append(poll["poll"])
        e1, _, _ = _scrape(port)
    exported = e1[uuid] - e0[uuid]
    nvml_j = (n1 - n0) / 1000.0
    # The scrape brackets include up to one poll interval more at each end than NVML's two reads.
    max_power = nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
    slack = 2 * (interval + 2 * interval) * max_power
    print(
        f"\nnvml_delta_j={nvml_j:.1f} exported_delta_j={exported:.1f} "
        f"scrape_median_ms={statistics.median(latencies) * 1e3:.2f} "
        f"scrape_p99_ms={sorted(latencies)[int(0.99 * len(latencies)) - 1] * 1e3:.2f} "
        f"poll_median_ms={statistics.median(polls) * 1e3:.2f}"
    )
    assert nvml_j > 0
    assert exported >= nvml_j * 0.99
    assert exported <= nvml_j + slack


def test_mig_mode_as_nvml_reports_it(nvml):
    """What MIG mode each board reports, printed for the record (the settings are never changed), and the backend
    agrees: instances listed exactly when MIG is enabled, each with its slices, and the board's energy still read."""
    from wattprint.exporter.backends.nvml import NvmlBackend

    b = NvmlBackend(nvml)
    b.open()
    try:
        readings = b.read()
    finally:
        b.close()
    for r in readings:
        h = nvml.nvmlDeviceGetHandleByIndex(int(r.info.index))
        try:
            current, pending = nvml.nvmlDeviceGetMigMode(h)
            mode = f"current={current} pending={pending}"
        except nvml.NVMLError_NotSupported:
            current, mode = 0, "not supported"
        print(f"\nGPU {r.info.index} {r.info.model}: MIG mode {mode}; instances "
              f"{[(m.gi_id, m.profile, m.slices) for m in r.mig]}")
        assert bool(r.mig) == (current == nvml.NVML_DEVICE_MIG_ENABLE)
        assert r.energy_mj is not None and all(m.slices > 0 for m in r.mig)
