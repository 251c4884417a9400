"""The metric contract (wattprint/contract.py) against what the exporter writes and what the pipeline reads.

The golden page (tests/golden/metrics.txt) is the real collectors' output (tests/test_golden_metrics.py keeps it
current). Every series the pipeline's ingest queries read with the default config must be on it, with every
label those queries take their hostname, GPU, UUID, model, job, socket and domain from: a rename on either side
fails here instead of silently emptying an ingest.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from wattprint import contract as C
from wattprint.pipeline.config import Config, WattprintMetrics
from wattprint.pipeline.settings import Settings


def _page() -> dict[str, list[dict[str, str]]]:
    """Sample name -> label sets, from the golden page."""
    out: dict[str, list[dict[str, str]]] = {}
    text = (REPO / "tests" / "golden" / "metrics.txt").read_text(encoding="utf-8")
    text = text.replace("<dynamic>", "0")  # the golden page masks timing values
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s.labels)
    return out


def test_every_series_the_pipeline_reads_is_on_the_page_with_its_labels() -> None:
    page = _page()
    queries = [q for q in Settings(Config(), None).queries() if q.source == "wattprint"]
    assert len(queries) == 12
    for q in queries:
        assert q.metric in page, f"the pipeline reads {q.metric}; the exporter does not write it"
        for labels in page[q.metric]:
            for role, keys in (("host", q.host_labels), ("job", q.job_labels), ("socket", q.socket_labels),
                               ("domain", q.domain_labels), ("cluster", q.cluster_labels)):
                if keys:
                    assert any(k in labels for k in keys), f"{q.metric}: no {role} label among {keys}: {labels}"
            if q.kind in ("job_energy", "gpu_energy", "idle_energy", "job_gpu_seconds", "job_held_idle_energy",
                          "job_held_idle_seconds", "job_equal_share_seconds"):
                assert labels.get(C.UUID) and labels.get(C.GPU), f"{q.metric}: GPU series without uuid/gpu"


def test_config_defaults_are_the_contract() -> None:
    m = WattprintMetrics()
    assert (m.job_energy, m.gpu_energy, m.idle_energy, m.job_gpu_seconds) == tuple(
        C.series(f) for f in (C.JOB_ENERGY, C.GPU_ENERGY, C.GPU_IDLE_ENERGY, C.JOB_GPU_SECONDS))
    assert (m.job_held_idle_energy, m.job_held_idle_seconds, m.job_equal_share_seconds) == tuple(
        C.series(f) for f in (C.JOB_HELD_IDLE_ENERGY, C.JOB_HELD_IDLE_SECONDS, C.JOB_EQUAL_SHARE_SECONDS))
    assert (m.cpu_energy, m.cpu_idle_energy, m.job_cpu_energy, m.job_cpu_seconds, m.cpu_rapl_up) == tuple(
        C.series(f) for f in (C.CPU_ENERGY, C.CPU_IDLE_ENERGY, C.JOB_CPU_ENERGY, C.JOB_CPU_SECONDS, C.CPU_RAPL_UP))
    page = _page()
    for family in C.COUNTERS:
        assert C.series(family) in page and family not in page   # counters carry _total on the page
