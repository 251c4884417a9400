"""The demo's whole-node power: what the BMCs of the Jean Zay nodes read, minute by minute (the node layer's input).

Nothing here computes a result: it generates the series a real deployment's Prometheus would hold, for
`demo_fleet.FleetPrometheus` to serve beside the exporter's:

* ``jzxh101``: the wattprint exporter's BMC collector (Redfish), ``wattprint_node_energy_joules_total{hostname,
  source="redfish"}``, a counter in joules to the millijoule, running since before the month;
* ``jzxh102``: the Prometheus community ipmi_exporter, ``ipmi_dcmi_power_consumption_watts``, a gauge in whole watts
  (DCMI "Get Power Reading" returns integer watts) with no label of its own: its host is the scrape's ``instance``
  (``jzxh102:9290``, ipmi_exporter's default port), which the pipeline reads with the port dropped;
* the AWS nodes have no BMC data (a cloud VM has no BMC access): the reports count their node-hours as without.

A node's AC input power is its IT load (the GPU boards, from the exporter's GPU counters, and the CPU sockets'
package + DRAM, from its RAPL counters; jzxh102's RAPL is not readable, so its CPUs are modelled from its jobs' CPU
time the way demo_fleet.host_telemetry does, at the middle of the idle ranges) plus what no GPU or RAPL counter sees:
a floor of BASE_W (fans at their minimum, NICs, NVMe drives, the board and the BMC), fans that follow the heat
(FAN_SHARE of the IT load) and the PSUs' losses (PSU_EFFICIENCY, an 80 PLUS Titanium-class supply at mid load). Under
a full training load that residual is about 15 % of the IT power, about 20 % at the month's mean load and nearly
30 % on an idle node. Demo
parameters, round figures of the order a DGX-class node shows, not measurements.

One glitch, so the reports' data quality has a case to show: for GLITCH_HOURS hours from GLITCH_START, jzxh102's
BMC reads GLITCH_FACTOR of the true power (a stale sensor after a BMC firmware update), less than its GPU boards
alone. Everything is deterministic: no random draw, so the rest of the demo is unchanged by it.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from .. import contract as C

if TYPE_CHECKING:
    from .demo_fleet import Fleet

NODE_ENERGY_METRIC = C.NODE_ENERGY + "_total"
IPMI_METRIC = C.IPMI_DCMI_POWER
COUNTER_HOST = "jzxh101"        # read by the wattprint exporter's Redfish collector
GAUGE_HOST = "jzxh102"          # read by ipmi_exporter
IPMI_PORT = 9290                # ipmi_exporter's default --web.listen-address
BASE_W = 120.0
FAN_SHARE = 0.06
PSU_EFFICIENCY = 0.94
GLITCH_START = (13 * 24 + 9) * 60   # minute: 2026-10-14 09:00 UTC
GLITCH_HOURS = 3
GLITCH_FACTOR = 0.4
COUNTER_BASE_J = 4.2e9          # the exporter had been integrating the BMC's power for a while before the month


def _diffs(values: array) -> list[float]:
    return [b - a for a, b in zip(values, values[1:], strict=False)]


def _add(into: list[float], start: int, values: list[float]) -> None:
    for i, v in enumerate(values):
        into[start + i] += v


def it_watts(fleet: Fleet, host: str) -> list[float]:
    """The node's IT power (W) in each minute of the month: its GPU boards + its CPUs' package and DRAM."""
    from .demo_fleet import (
        BACKGROUND_CORES,
        CORES_PER_SOCKET,
        DRAM_IDLE_W,
        DRAM_W_PER_CORE,
        MINUTES,
        PACKAGE_IDLE_W,
        PACKAGE_TDP_W,
        SOCKETS,
    )

    joules = [0.0] * MINUTES
    starts = {j.job_id: j.start_min for j in fleet.jobs}
    for g, gpu in enumerate(fleet.gpus):
        if gpu.host == host:
            _add(joules, 0, _diffs(fleet.idle_counters[g]))
    for (job_id, g), values in fleet.job_counters.items():
        if fleet.gpus[g].host == host:
            _add(joules, starts[job_id], _diffs(values))
    hs = fleet.host
    rapl = [k for k in hs.idle if k[0] == host]
    if rapl:                        # the sockets' own energy, as the exporter's RAPL counters count it
        for key in rapl:
            _add(joules, 0, _diffs(hs.idle[key]))
        for (job_id, name, _, _), values in hs.jobs.items():
            if name == host:
                _add(joules, starts[job_id], _diffs(values))
    else:                           # RAPL not readable: the CPUs still draw, from the busy cores
        busy = [BACKGROUND_CORES] * MINUTES
        for (job_id, name), seconds in hs.cpu_seconds.items():
            if name == host:
                _add(busy, starts[job_id], [s / 60 for s in _diffs(seconds)])
        pkg = sum(PACKAGE_IDLE_W) / 2
        dram = sum(DRAM_IDLE_W) / 2
        per_core = (PACKAGE_TDP_W - pkg) / CORES_PER_SOCKET + DRAM_W_PER_CORE
        _add(joules, 0, [60 * SOCKETS * (pkg + dram + per_core * b / SOCKETS) for b in busy])
    return [j / 60 for j in joules]


def bmc_watts(fleet: Fleet, host: str) -> list[float]:
    """What the node's BMC reads (W, AC input) in each minute, the glitch included."""
    out = [(it + BASE_W + FAN_SHARE * it) / PSU_EFFICIENCY for it in it_watts(fleet, host)]
    if host == GAUGE_HOST:
        for m in range(GLITCH_START, GLITCH_START + 60 * GLITCH_HOURS):
            out[m] *= GLITCH_FACTOR
    return out


def series(fleet: Fleet, metric: str) -> Iterator[tuple[dict[str, str], int, array]]:
    """(labels, first minute, values at each minute 0..MINUTES) of the demo's node series, as Prometheus stores
    them: the exporter's labels plus the scrape's `job` and `instance`."""
    from .demo_fleet import CLUSTERS

    cluster = next(c.name for c in CLUSTERS if COUNTER_HOST in c.nodes)
    if metric == NODE_ENERGY_METRIC:
        watts = bmc_watts(fleet, COUNTER_HOST)
        values = array("d", (round(v, 3) for v in accumulate((w * 60 for w in watts), initial=COUNTER_BASE_J)))
        yield ({"__name__": metric, "cluster": cluster, "hostname": COUNTER_HOST, C.NODE_SOURCE: "redfish",
                "instance": f"{COUNTER_HOST}:9835", "job": "wattprint-exporter"}, 0, values)
    elif metric == IPMI_METRIC:
        watts = bmc_watts(fleet, GAUGE_HOST)
        # the reading at each scrape: the power of the minute that ended there (the first: of the minute after it)
        readings = array("q", (round(w) for w in [watts[0], *watts]))
        yield {"__name__": metric, "instance": f"{GAUGE_HOST}:{IPMI_PORT}", "job": "ipmi"}, 0, readings
