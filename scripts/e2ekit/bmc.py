"""The nodes' BMCs: a real Redfish server per BMC node (sushy-static, PyPI sushy-tools, over a copy of the mockup tree
tests/fixtures/redfish/), whose readings a thread keeps to the node's wall power.

A node's wall (AC) power is what its GPU boards and CPU sockets draw, plus what no GPU or RAPL counter sees (fans,
NICs, drives, the board and its BMC: OVERHEAD_W), all divided by the power supplies' efficiency:

    P_ac = (P_gpu + P_rapl + OVERHEAD_W) / PSU_EFFICIENCY

P_gpu is the replayed trace of the node's GPUs (the same ReplayBackend the node's exporter runs, so the same
energy at the same instant) and P_rapl the hosts' RAPL counters (hosts.py). So the node residual the pipeline
finds (node - GPU boards - RAPL) is OVERHEAD_W plus the PSUs' losses, give or take what the exporter's two pollers
(GPU, BMC) read at slightly different instants.

Two kinds of BMC (plan.Node.bmc):
  whole    the Modern chassis' EnvironmentMetrics: EnergyJoules (a counter of whole joules, as BMCs keep one),
           PowerWatts and EnergykWh; the exporter takes the counter (--redfish-chassis Modern)
  one-psu  the Legacy chassis' Power.PowerControl[0].PowerConsumedWatts (whole watts) holding one of the node's
           PSUS load-sharing power supplies: a BMC that lists one PowerControl member per supply, read as if the
           first were the node's. It reads a quarter of the node, less than its GPUs: the reports must flag it
           (data quality: node-hours below the GPU boards), not clamp it.
"""

from __future__ import annotations

import bisect
import shutil
import sys
import threading
import time
from pathlib import Path

from tests.redfishkit import Bmc, copy_mockup  # the repository is on the path (scripts/e2e.py)
from wattprint.exporter.backends.replay import ReplayBackend

from .hosts import HostLoad
from .plan import Node, StackError

OVERHEAD_W = 450.0        # fans, NICs, NVMe drives, the board and BMC of a 4-GPU node
PSU_EFFICIENCY = 0.94     # AC in / DC out at mid load (80 PLUS Titanium: 0.94-0.96)
PSUS = 4                  # load-sharing power supplies; a one-psu BMC reads the first
CHASSIS = {"whole": "Modern", "one-psu": "Legacy"}


def sushy_static() -> str:
    """sushy-static next to this Python (the venv's, `make setup`), else on PATH."""
    exe = Path(sys.executable).with_name("sushy-static")
    found = str(exe) if exe.exists() else shutil.which("sushy-static")
    if not found:
        raise StackError("sushy-static not found (the nodes' BMCs): `make setup` installs it (PyPI sushy-tools, in the "
                         "test extra)")
    return found


def mockup(node: Node, root: Path) -> Path:
    """A fresh mockup tree for the node's BMC."""
    if node.bmc not in CHASSIS or node.kind != "gpu":
        raise ValueError(f"{node.name}: a BMC needs a replay GPU node and one of {sorted(CHASSIS)}, not {node.bmc!r}")
    return copy_mockup(root)


class Meter:
    """One node's wall energy: the GPUs' replayed counters and RAPL, plus the overhead, through the PSUs."""

    def __init__(self, node: Node, hosts: HostLoad) -> None:
        self.node = node
        self.hosts = hosts
        self.gpus = ReplayBackend(gpus=node.gpus, epoch=node.epoch, hostname=node.name)
        self.gpus.open()
        self.dc_j = self._dc_j()           # the GPUs' and RAPL's energy at the last step
        self.energy_j = 0.0                # wall energy since the meter started
        self.overhead_j = 0.0              # of it, what no GPU or RAPL counter sees (OVERHEAD_W and the PSU losses)
        self.power_w = 0.0
        self.at = time.time()
        self.history: list[tuple[float, float, float]] = [(self.at, 0.0, 0.0)]  # (t, energy_j, overhead_j)

    def _dc_j(self) -> float:
        return sum(r.energy_mj or 0 for r in self.gpus.read()) / 1000.0 + self.hosts.energy_j(self.node.name)

    def step(self) -> None:
        now = time.time()
        dc = self._dc_j()
        dt = now - self.at
        if dt <= 0:
            return
        measured = dc - self.dc_j
        wall = (measured + OVERHEAD_W * dt) / PSU_EFFICIENCY
        self.energy_j += wall
        self.overhead_j += wall - measured
        self.power_w = wall / dt
        self.dc_j, self.at = dc, now
        self.history.append((now, self.energy_j, self.overhead_j))

    def overhead_at(self, t: float) -> float:
        """The overhead energy (J) by time t, interpolated between steps."""
        i = bisect.bisect_right([h[0] for h in self.history], t)
        if i == 0:
            return 0.0
        if i == len(self.history):
            return self.history[-1][2]
        (t0, _, o0), (t1, _, o1) = self.history[i - 1], self.history[i]
        return o0 + (o1 - o0) * (t - t0) / (t1 - t0)


class BmcLoad:
    """Keeps every BMC's Redfish readings to its node's meter, every `period` seconds, in a thread."""

    def __init__(self, hosts: HostLoad, bmcs: dict[str, tuple[Node, Bmc]], period: float = 0.25) -> None:
        self.period = period
        self.bmcs = bmcs
        self.meters = {name: Meter(node, hosts) for name, (node, _) in bmcs.items()}
        self.base_j = {name: bmc.doc("Chassis/Modern/EnvironmentMetrics")["EnergyJoules"]["Reading"]
                       for name, (_, bmc) in bmcs.items()}      # the counter's value since the BMC's reset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors = 0

    def _write(self) -> None:
        for name, (node, bmc) in self.bmcs.items():
            m = self.meters[name]
            m.step()
            if node.bmc == "whole":
                joules = float(int(self.base_j[name] + m.energy_j))
                bmc.set_environment(EnergyJoules=joules, PowerWatts=round(m.power_w, 2),
                                    EnergykWh=round(joules / 3.6e6, 3))
            else:
                bmc.set_power(round(m.power_w / PSUS))

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self._write()
            except OSError:
                self.errors += 1

    def __enter__(self) -> BmcLoad:
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
