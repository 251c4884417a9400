"""The node layer in the report: whether the store has node (BMC) data in the window, and the data quality of the
node residual (rpt_quality_node.sql over fct_node_hour): how many node-hours had BMC data, how much of it was
integrated from a power gauge, the identity node = GPU boards + RAPL + residual - deficit, and the node-hours in
which the BMC read less than the GPUs and RAPL (counted as 0 in the layer, never clamped silently), or less than the
GPU boards alone."""

from __future__ import annotations

import duckdb

from ..timeutil import iso
from .layers import fraction
from .query import inline, rows
from .scope import ReportOptions
from .types import NodeIssue, NodePower

MAX_LISTED = 20     # nodes listed among the issues, and deficit hours listed per node


def has_node_data(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> bool:
    """Whether any node had BMC data in the report's window (then the node layer is listed, selected or not)."""
    return bool(inline(con, "SELECT EXISTS (SELECT 1 FROM fct_node_hour WHERE node_j IS NOT NULL"
                            " AND hour_ts >= $start AND hour_ts < $end) AS any",
                       {"start": o.window.start, "end": o.window.end})[0]["any"])


def node_power(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> NodePower | None:
    """The node layer's data quality over the report's node-hours (rpt_rows must be built); None without node data."""
    if not o.node_data:
        return None
    nodes = rows(con, "rpt_quality_node", {"start": o.window.start, "end": o.window.end, "fleet": o.kind == "fleet",
                                           "max_listed": MAX_LISTED})
    node_j = sum(n["node_j"] for n in nodes)
    issues = [NodeIssue(cluster=n["cluster"], hostname=n["hostname"], hours=int(n["hours"]),
                        hours_without_bmc=int(n["hours"] - n["bmc_hours"]), deficit_hours=int(n["deficit_hours"]),
                        below_gpu_hours=int(n["below_gpu_hours"]), deficit_kwh=n["deficit_j"] / 3.6e6,
                        deficit_at=tuple(iso(t) for t in n["deficit_at"]))
              for n in nodes if n["deficit_hours"] or n["hours"] > n["bmc_hours"]]
    # the sensors' disagreements first, then the nodes missing the most BMC hours
    issues.sort(key=lambda i: (-i.deficit_hours, -i.hours_without_bmc, i.cluster, i.hostname))
    return NodePower(
        nodes=len(nodes), nodes_with_bmc=sum(1 for n in nodes if n["bmc_hours"]),
        node_hours=sum(int(n["hours"]) for n in nodes), bmc_hours=sum(int(n["bmc_hours"]) for n in nodes),
        hours_without_bmc=sum(int(n["hours"] - n["bmc_hours"]) for n in nodes),
        power_integrated_hours=sum(int(n["power_hours"]) for n in nodes),
        power_integrated_share=fraction(sum(n["power_j"] for n in nodes), node_j),
        node_energy_kwh=node_j / 3.6e6, gpu_energy_kwh=sum(n["gpu_j"] for n in nodes) / 3.6e6,
        rapl_energy_kwh=sum(n["rapl_j"] for n in nodes) / 3.6e6,
        residual_kwh=sum(n["attributed_j"] for n in nodes) / 3.6e6,
        deficit_kwh=sum(n["deficit_j"] for n in nodes) / 3.6e6,
        deficit_hours=sum(int(n["deficit_hours"]) for n in nodes),
        below_gpu_hours=sum(int(n["below_gpu_hours"]) for n in nodes),
        hours_without_rapl=sum(int(n["without_rapl_hours"]) for n in nodes),
        issues=tuple(issues[:MAX_LISTED]))


def warnings(node: NodePower | None, o: ReportOptions) -> list[str]:
    """The node layer's warnings: only when it is in the headline (a listed layer warns nobody of its headline)."""
    if node is None or not o.inc_node:
        return []
    out = []
    if node.deficit_hours:
        worst = ", ".join(f"{i.hostname} {i.deficit_hours} h" for i in node.issues if i.deficit_hours)
        out.append(f"the BMC read less than the GPUs and RAPL in {node.deficit_hours} node-hours ({worst}; below "
                   f"the GPU boards alone in {node.below_gpu_hours}): the sensors disagree, the node residual of "
                   "those hours is counted as 0")
    if node.hours_without_bmc:
        out.append(f"{node.hours_without_bmc} of the {node.node_hours} node-hours have no BMC data: the node layer "
                   "is absent there (ingest ipmi_exporter's or the exporter's node power for those nodes)")
    return out
