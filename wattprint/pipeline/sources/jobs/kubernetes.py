"""Kubernetes pods as jobs, from kube-state-metrics series (Prometheus range queries).

`jobs_from_kube_series` joins ``kube_pod_info`` and ``kube_pod_labels`` results by the pod ``uid``. The job id
is the pod uid (what the wattprint exporter labels a pod's energy with), the name ``namespace/pod``, the
account the namespace, and the node(s) those kube_pod_info reports (in order seen; several series per pod
when a label such as ``node`` or ``pod_ip`` changed are merged).

Time window: the pod runs from its first sample on a node (pending time before scheduling is not counted)
to its last sample plus one query step (a sample at t stands for [t, t + step)). With `query_end`, a pod
whose last sample is within one step of the end of the queried range is still running (end None). A pod
never seen on a node (still pending) is skipped and counted as ``unscheduled``, unless
`include_unscheduled`, when its window runs from its first sample and it has no nodes.

Project: the `project_label` of kube_pod_labels, else the first matching phase rule's project, else the
namespace. Phase: the `phase_label`, else the rules, else ``unclassified``; a label value that is not a
phase is ignored with a warning. kube-state-metrics only exports pod labels named in its
``--metric-labels-allowlist`` (e.g. ``pods=[wattprint.io/project,wattprint.io/phase]``), with the key
sanitised: ``wattprint.io/project`` becomes ``label_wattprint_io_project``. Rules see every exported label
as ``label.<key>`` and also match ``namespace``, ``name``, ``project`` and ``cluster``.

`sync_from_prometheus` runs the two range queries against a Prometheus client and calls it, with the end
of the window as `query_end`. `series_from_scrapes` / `series_from_ksm_text` turn kube-state-metrics text
scrapes into the same range-query shape (for tests and for importing saved scrapes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from ...errors import InputError
from ...records import PHASES, JobRecord
from .common import ImportResult, classify, valid_phase
from .rules import Rules

Series = dict[str, Any]   # {"metric": {label: value}, "values": [[ts, "1"], ...]}


@dataclass
class _Pod:
    uid: str
    namespace: str = ""
    pod: str = ""
    first: float = math.inf
    first_on_node: float = math.inf
    last: float = -math.inf
    nodes: dict[str, None] = field(default_factory=dict)


def jobs_from_kube_series(
    pod_info: Sequence[Series],
    pod_labels: Sequence[Series],
    *,
    cluster: str,
    project_label: str = "label_wattprint_io_project",
    phase_label: str = "label_wattprint_io_phase",
    step_s: float,
    rules: Rules | None = None,
    query_end: float | None = None,
    include_unscheduled: bool = False,
) -> ImportResult:
    """Pods as JobRecords; see the module docstring for the join and the time window."""
    if not cluster:
        raise InputError("--cluster", "Kubernetes pods need a cluster name", "pass --cluster NAME")
    if not (step_s > 0 and math.isfinite(step_s)):
        raise InputError("--step", f"step must be a positive number of seconds, got {step_s!r}")
    result = ImportResult()
    pods = _pods(pod_info, result)
    labels = _labels(pod_labels, pods, result)
    for pod in pods.values():
        if not pod.nodes and not include_unscheduled:
            result.skip("unscheduled")
            continue
        result.records.append(_record(pod, labels.get(pod.uid, {}), cluster, project_label, phase_label, step_s,
                                      rules, query_end, result))
    return result


def _samples(series: Series, what: str, i: int) -> list[float]:
    values = series.get("values")
    if values is None and "value" in series:          # an instant-query result
        values = [series["value"]]
    if not isinstance(values, list):
        raise InputError(f"{what}[{i}]", "series without 'values'", "pass Prometheus query_range results")
    out = []
    for v in values:
        try:
            ts, val = float(v[0]), float(v[1])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"{what}[{i}]", f"bad sample {v!r}", "samples are [timestamp, \"value\"]") from None
        if math.isfinite(ts) and val != 0 and not math.isnan(val):
            out.append(ts)
    return out


def _pods(pod_info: Sequence[Series], result: ImportResult) -> dict[str, _Pod]:
    pods: dict[str, _Pod] = {}
    for i, series in enumerate(pod_info):
        metric = series.get("metric") or {}
        uid = str(metric.get("uid") or "")
        if not uid:
            result.skip("pod_info_without_uid")
            continue
        times = _samples(series, "kube_pod_info", i)
        if not times:
            continue
        pod = pods.setdefault(uid, _Pod(uid))
        pod.namespace = pod.namespace or str(metric.get("namespace") or "")
        pod.pod = pod.pod or str(metric.get("pod") or "")
        pod.first, pod.last = min(pod.first, min(times)), max(pod.last, max(times))
        node = str(metric.get("node") or "")
        if node:
            pod.nodes.setdefault(node, None)
            pod.first_on_node = min(pod.first_on_node, min(times))
    return pods


def _labels(pod_labels: Sequence[Series], pods: dict[str, _Pod], result: ImportResult) -> dict[str, dict[str, str]]:
    """uid -> the label_* of its latest kube_pod_labels series."""
    best: dict[str, tuple[float, dict[str, str]]] = {}
    for i, series in enumerate(pod_labels):
        metric = series.get("metric") or {}
        uid = str(metric.get("uid") or "")
        times = _samples(series, "kube_pod_labels", i)
        if not uid or not times:
            continue
        if uid not in pods:
            result.skip("labels_without_pod_info")
            continue
        last = max(times)
        if uid not in best or last >= best[uid][0]:
            best[uid] = (last, {str(k): str(v) for k, v in metric.items() if str(k).startswith("label_")})
    return {uid: labels for uid, (_, labels) in best.items()}


def _record(pod: _Pod, labels: dict[str, str], cluster: str, project_label: str, phase_label: str, step_s: float,
            rules: Rules | None, query_end: float | None, result: ImportResult) -> JobRecord:
    origin = f"kube_pod_info{{uid={pod.uid!r}}}"
    name = f"{pod.namespace}/{pod.pod}"
    explicit_phase = None
    raw_phase = labels.get(phase_label, "")
    if raw_phase:
        explicit_phase = valid_phase(raw_phase)
        if explicit_phase is None:
            result.warn(f"pod {name} ({pod.uid}): {phase_label}={raw_phase!r} is not one of {', '.join(PHASES)}; "
                        "ignored")
    project_value = labels.get(project_label, "")
    fields = {"name": name, "namespace": pod.namespace, "cluster": cluster, "project": project_value or pod.namespace,
              "account": pod.namespace}
    fields.update({"label." + k[len("label_"):]: v for k, v in labels.items()})
    phase, project = classify(explicit_phase, project_value or None, fields, rules, fallback_project=pod.namespace)
    start_ts = pod.first_on_node if pod.nodes else pod.first
    running = query_end is not None and pod.last + step_s >= query_end
    end = None if running else datetime.fromtimestamp(pod.last + step_s, tz=UTC)
    return JobRecord(cluster=cluster, job_id=pod.uid, project=project or pod.uid, phase=phase,
                     start=datetime.fromtimestamp(start_ts, tz=UTC), end=end, name=name, account=pod.namespace,
                     nodes=tuple(pod.nodes), source="kubernetes", origin=origin)


class _Chunk(Protocol):
    @property
    def series(self) -> list[dict[str, Any]]: ...


class RangeQuerier(Protocol):
    """What sync_from_prometheus needs of a client (pipeline.promapi.PromClient has it)."""

    def query_range(self, query: str, start: datetime, end: datetime, step_s: float) -> Iterable[_Chunk]: ...


def sync_from_prometheus(
    client: RangeQuerier,
    start: datetime,
    end: datetime,
    *,
    cluster: str,
    step_s: float,
    project_label: str = "label_wattprint_io_project",
    phase_label: str = "label_wattprint_io_phase",
    rules: Rules | None = None,
    selector: str = "",
) -> ImportResult:
    """Pods seen in [start, end]: kube_pod_info and kube_pod_labels at step_s, joined as in jobs_from_kube_series.

    `selector` (e.g. ``cluster="jz"``) is added to both queries inside {...} when Prometheus holds several clusters.
    """
    sel = f"{{{selector}}}" if selector else ""
    info = [s for chunk in client.query_range(f"kube_pod_info{sel}", start, end, step_s) for s in chunk.series]
    labels = [s for chunk in client.query_range(f"kube_pod_labels{sel}", start, end, step_s) for s in chunk.series]
    return jobs_from_kube_series(info, labels, cluster=cluster, project_label=project_label, phase_label=phase_label,
                                 step_s=step_s, rules=rules, query_end=end.timestamp())


def series_from_scrapes(scrapes: Iterable[tuple[float, str]]) -> tuple[list[Series], list[Series]]:
    """(kube_pod_info, kube_pod_labels) range-query results from kube-state-metrics scrapes taken at given times."""
    acc: dict[str, dict[tuple[tuple[str, str], ...], list[list[Any]]]] = {"kube_pod_info": {}, "kube_pod_labels": {}}
    for ts, text in scrapes:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise InputError(f"scrape at {ts}", f"not Prometheus text format: {exc}") from None
        for family in families:
            for sample in family.samples:
                if sample.name in acc:
                    key = tuple(sorted(sample.labels.items()))
                    acc[sample.name].setdefault(key, []).append([ts, repr(float(sample.value))])
    info, labels = ([{"metric": dict(k), "values": v} for k, v in acc[name].items()]
                    for name in ("kube_pod_info", "kube_pod_labels"))
    return info, labels


def series_from_ksm_text(text: str, *, at: float) -> tuple[list[Series], list[Series]]:
    """One scrape as range-query results with a single sample at `at`."""
    return series_from_scrapes([(at, text)])
