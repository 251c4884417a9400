"""The node-power series (docs/metrics.md, "Node power"), from the NodePowerPoller's last snapshot.

Like the GPU series: while the BMC cannot be read the energy counter and the power gauge are absent (a gap, not
a flat line) and wattprint_node_power_up is 0; they resume, with the energy counted meanwhile, when it answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ... import contract as C
from ...common.logs import kv, typed
from .accounting import NodeSnapshot

log = logging.getLogger("wattprint.collectors")


class NodePowerCollector(Collector):
    def __init__(self, snapshot: Callable[[], NodeSnapshot], hostname: str,
                 static_labels: Sequence[tuple[str, str]] = ()) -> None:
        self._snapshot = snapshot
        self._hostname = hostname
        self._keys = [*C.NODE_LABELS, *(k for k, _ in static_labels)]
        self._static = [v for _, v in static_labels]

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._families(self._snapshot())
        except Exception as exc:   # a bug here must not take the whole page down
            log.error("rendering node power metrics failed", extra=kv(err=typed(exc)))
            families = []
        yield from families

    def _families(self, snap: NodeSnapshot) -> list[Metric]:
        lk, v = self._keys, [self._hostname, snap.source, *self._static]
        energy = CounterMetricFamily(
            C.NODE_ENERGY,
            "Whole-node energy from the BMC since the exporter started (with --state-file, since the file was first "
            "written): deltas of its energy counter, or its power integrated (method on "
            "wattprint_node_power_source_info).", labels=lk)
        power = GaugeMetricFamily(C.NODE_POWER, "Whole-node power as the BMC last reported it.", labels=lk)
        up = GaugeMetricFamily("wattprint_node_power_up", "1 if the last node-power poll read the BMC, 0 if it failed.",
                               labels=lk)
        info = GaugeMetricFamily(
            "wattprint_node_power_source_info",
            "Where the node's energy comes from: method counter (the BMC's energy counter) or power_integration "
            "(its power, trapezoid), the Redfish reading and chassis.", labels=[*lk, "method", "reading", "chassis"])
        errors = CounterMetricFamily("wattprint_node_power_errors", "Failed reads of the BMC, by reason.",
                                     labels=[*lk, "reason"])
        resets = CounterMetricFamily(
            "wattprint_node_energy_resets",
            "Times the BMC's energy counter went backwards (reset); each drops one poll interval of energy.", labels=lk)
        gaps = CounterMetricFamily(
            "wattprint_node_power_gaps",
            "Intervals with no node energy booked: two power readings further apart than --node-power-max-gap, or "
            "an exporter restart whose downtime the BMC's counter could not cover (--state-file).", labels=lk)
        gap_s = CounterMetricFamily("wattprint_node_power_gap_seconds",
                                    "The length of those intervals: node time with no energy booked.", labels=lk)
        up.add_metric(v, 1.0 if snap.up else 0.0)
        if snap.method:
            info.add_metric([*v, snap.method, snap.reading, snap.chassis], 1.0)
        if snap.up:
            energy.add_metric(v, snap.energy_mj / 1000.0)
            if snap.power_watts is not None:
                power.add_metric(v, snap.power_watts)
        for reason, n in snap.errors:
            errors.add_metric([*v, reason], float(n))
        resets.add_metric(v, float(snap.resets))
        gaps.add_metric(v, float(snap.gaps))
        gap_s.add_metric(v, snap.gap_seconds)
        return [energy, power, up, info, errors, resets, gaps, gap_s]
