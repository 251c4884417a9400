"""200 concurrent scrapers for 30 s against one exporter: every response complete and valid, memory flat."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_proc import rss_bytes, running_exporter

pytestmark = pytest.mark.slow

CLIENTS = 200
SECONDS = 30.0


def test_200_concurrent_scrapes_for_30_seconds():
    with running_exporter("--backend", "replay", "--replay-gpus", "8", "--poll-interval", "0.5") as (proc, port):
        url = f"http://127.0.0.1:{port}/metrics"
        requests.get(url, timeout=5)
        ok = [0] * CLIENTS
        bad: list[str] = []
        start = threading.Barrier(CLIENTS + 1)
        deadline = [0.0]

        def client(i: int) -> None:
            s = requests.Session()
            start.wait()
            while time.monotonic() < deadline[0]:
                try:
                    r = s.get(url, timeout=30)
                    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
                    gpus = {smp.labels["gpu"] for smp in fams["wattprint_gpu_energy_joules"].samples}
                    if r.status_code != 200 or len(gpus) != 8 or not r.text.endswith("\n"):
                        bad.append(f"status={r.status_code} gpus={len(gpus)}")
                    else:
                        ok[i] += 1
                except Exception as exc:  # any failure is a finding, recorded not raised
                    bad.append(repr(exc)[:200])

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline[0] = time.monotonic() + SECONDS
        start.wait()
        time.sleep(SECONDS / 3)
        rss_early = rss_bytes(proc.pid)
        for t in threads:
            t.join(SECONDS + 60)
        rss_late = rss_bytes(proc.pid)
        assert proc.poll() is None, "exporter died under load"
    served = sum(ok)
    mib = 2**20
    print(f"\nserved={served} failed={len(bad)} rss_early={rss_early / mib:.1f}MiB rss_late={rss_late / mib:.1f}MiB")
    assert not bad, bad[:5]
    assert served >= CLIENTS  # every client got at least one complete page
    assert all(n > 0 for n in ok)
    # flat: no growth beyond noise between a third of the way in and the end
    assert rss_late - rss_early < 16 * 2**20, (rss_early, rss_late)
