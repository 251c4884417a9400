"""The node power section of the page (data_quality.node): the BMC's whole-node energy against the GPU boards and
RAPL, the node residual the node layer shares, and the node-hours in which the sensors disagree."""

from __future__ import annotations

from ..types import Report
from .common import _e, _qty, fmt
from .sections import _table, _tr


def _node_power(report: Report) -> str:
    n = report.data_quality.node
    if n is None:
        return ""
    identity = (f'<p>Node energy read by the BMC: <b>{_qty(n.node_energy_kwh, "kWh")}</b> = GPU boards '
                f'{_qty(n.gpu_energy_kwh, "kWh")} + RAPL {_qty(n.rapl_energy_kwh, "kWh")} + node residual '
                f'<b>{_qty(n.residual_kwh, "kWh")}</b>'
                + (f' \u2212 deficit {_qty(n.deficit_kwh, "kWh")}' if n.deficit_hours else "")
                + f', over {_qty(n.bmc_hours, "node-hours", "int")} of {_qty(n.node_hours, "", "int")} on '
                f'{_qty(n.nodes_with_bmc, "", "int")} of {_qty(n.nodes, "nodes", "int")} '
                f'({_qty(n.power_integrated_share, "%", "share")} of it integrated from a power gauge). '
                "The node layer shares the residual among each node\u2019s jobs by GPU-seconds (CPU-seconds "
                "without GPU jobs); the rest is node idle.</p>")
    rows = [_tr([("Node-hours without BMC data (node layer absent)", False), (fmt(n.hours_without_bmc, "int"), True)],
                "poor" if n.hours_without_bmc else ""),
            _tr([("Node-hours the BMC read less than GPUs + RAPL (residual counted as 0)", False),
                 (fmt(n.deficit_hours, "int"), True)], "poor" if n.deficit_hours else ""),
            _tr([("\u2026 of which less than the GPU boards alone", False), (fmt(n.below_gpu_hours, "int"), True)],
                "poor" if n.below_gpu_hours else ""),
            _tr([("Node-hours without RAPL (residual holds the CPUs)", False),
                 (fmt(n.hours_without_rapl, "int"), True)]),
            _tr([("Node-hours integrated from a power gauge", False), (fmt(n.power_integrated_hours, "int"), True)])]
    issues = ""
    if n.issues:
        issues = _table([("Cluster", False), ("Node", False), ("Hours", True), ("Without BMC", True),
                         ("BMC < GPUs + RAPL", True), ("BMC < GPU boards", True), ("Deficit (kWh)", True),
                         ("First such hours (UTC)", False)],
                        (_tr([(_e(i.cluster), False), (_e(i.hostname), False), (fmt(i.hours, "int"), True),
                              (fmt(i.hours_without_bmc, "int"), True), (fmt(i.deficit_hours, "int"), True),
                              (fmt(i.below_gpu_hours, "int"), True), (fmt(i.deficit_kwh), True),
                              (_e(", ".join(i.deficit_at[:5]) + (", \u2026" if i.deficit_hours > 5 else "")), False)],
                             "poor" if i.deficit_hours else "") for i in n.issues), "node compact")
    return ('<section id="node-power"><h2>Node power (BMC)</h2>' + identity
            + _table([("Check", False), ("", True)], rows, "dq") + issues + "</section>")
