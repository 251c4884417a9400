"""A real Redfish server for the node-power tests: sushy-static (PyPI sushy-tools) over a copy of the mockup tree
tests/fixtures/redfish/ (SOURCE.md there), on a free loopback port. sushy-static re-reads a resource's index.json
on every GET, so a test changes the BMC's readings between polls by rewriting that file. scripts/e2e.py drives its
BMCs with `Bmc` too (nothing here imports pytest until sushy_static is called)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MOCKUP = Path(__file__).resolve().parent / "fixtures" / "redfish"

LEGACY_POWER = "Chassis/Legacy/Power"
MODERN_ENV = "Chassis/Modern/EnvironmentMetrics"


class Bmc:
    """The mockup tree of one BMC and the URL sushy-static serves it at."""

    def __init__(self, root: Path, url: str, log: Path) -> None:
        self.root, self.url, self.log = root, url, log

    def path(self, resource: str) -> Path:
        return self.root / resource / "index.json"

    def doc(self, resource: str) -> dict[str, Any]:
        return json.loads(self.path(resource).read_text())

    def write(self, resource: str, doc: dict[str, Any] | str) -> None:
        """Replace a resource atomically (a GET never sees half a file)."""
        p = self.path(resource)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        os.replace(tmp, p)

    def remove(self, resource: str) -> None:
        self.path(resource).unlink()

    def set_power(self, watts: object) -> None:
        """The Legacy chassis' Power.PowerControl[0].PowerConsumedWatts."""
        doc = self.doc(LEGACY_POWER)
        doc["PowerControl"][0]["PowerConsumedWatts"] = watts
        self.write(LEGACY_POWER, doc)

    def set_environment(self, **readings: object) -> None:
        """The Modern chassis' EnvironmentMetrics readings, e.g. EnergyJoules=1000.0, PowerWatts=None (removed)."""
        doc = self.doc(MODERN_ENV)
        for prop, value in readings.items():
            if value is None:
                doc.pop(prop, None)
            else:
                doc[prop] = {"Reading": value}
        self.write(MODERN_ENV, doc)


def copy_mockup(root: Path) -> Path:
    """A fresh copy of the mockup tree at `root` (without its SOURCE.md), for one BMC."""
    shutil.copytree(MOCKUP, root, ignore=shutil.ignore_patterns("*.md"))
    return root


@contextmanager
def sushy_static(tmp: Path, cert: tuple[Path, Path] | None = None) -> Iterator[Bmc]:
    """sushy-static serving a fresh copy of the mockup tree (over TLS with `cert`: (certificate, key))."""
    from tests.conftest import free_port, require_tool, wait_http

    exe = require_tool("sushy-static")
    root = copy_mockup(tmp / "mockup")
    port = free_port()
    args = [exe, "-m", str(root), "-i", "127.0.0.1", "-p", str(port)]
    scheme = "http"
    if cert is not None:
        args += ["-c", str(cert[0]), "-k", str(cert[1])]
        scheme = "https"
    log = tmp / "sushy-static.log"
    with open(log, "w") as out:
        # sushy-static prints every request's headers (Authorization included) to stdout: kept in a file for the
        # tests that check what the exporter sent.
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"{scheme}://127.0.0.1:{port}"
        wait_http(f"{url}/redfish/v1/Chassis", timeout=20, verify=str(cert[0]) if cert else True)
        yield Bmc(root, url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
