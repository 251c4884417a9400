"""The rapl collector on scripted powercap trees: zones, wraps, faults, and the permission error with its fixes."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool, tools_required
from tests.hostfs import INTEL_RANGE_UJ, HostTree
from wattprint.exporter.host.procstat import read_small
from wattprint.exporter.host.rapl import RaplCollector

PKG0, DRAM0, PKG1, DRAM1 = ("0", "package"), ("0", "dram"), ("1", "package"), ("1", "dram")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def collector(host: HostTree, **kw) -> RaplCollector:
    kw.setdefault("clock", Clock())
    return RaplCollector(str(host.sysfs), **kw)


def test_two_sockets_package_and_dram_and_nothing_else(tmp_path):
    host = HostTree(tmp_path)
    rapl = collector(host)
    first = rapl.poll()
    # core (inside the package), psys (the whole platform) and intel-rapl-mmio (the package again) are left out
    assert rapl.domains() == [PKG0, DRAM0, PKG1, DRAM1]
    assert first.present and first.ok and first.deltas == {PKG0: 0, DRAM0: 0, PKG1: 0, DRAM1: 0}
    host.add_energy("0", "package", 150_000_000)
    host.add_energy("0", "dram", 20_000_000)
    host.add_energy("1", "package", 90_000_123)
    second = rapl.poll()
    assert second.ok and second.deltas == {PKG0: 150_000_000, DRAM0: 20_000_000, PKG1: 90_000_123, DRAM1: 0}
    assert rapl.errors == {}


def test_wrap_at_max_energy_range(tmp_path):
    host = HostTree(tmp_path, sockets=1)
    host.set_energy("0", "package", INTEL_RANGE_UJ - 1_000)
    rapl = collector(host)
    rapl.poll()
    host.add_energy("0", "package", 250_000)  # passes the range: the file now reads 249,000
    assert host.energy("0", "package") == 249_000
    assert rapl.poll().deltas[PKG0] == 250_000
    assert rapl.wraps == 1
    host.add_energy("0", "package", 5)
    assert rapl.poll().deltas[PKG0] == 5 and rapl.wraps == 1


def test_amd_package_only_and_multi_die_packages_are_summed(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.add_zone("intel-rapl:7", "package-1-die-0", ("1", "die0"), 10)
    host.add_zone("intel-rapl:8", "package-1-die-1", ("1", "die1"), 20)
    rapl = collector(host)
    rapl.poll()
    assert rapl.domains() == [PKG0, PKG1]
    host.set_energy("1", "die0", 110)
    host.set_energy("1", "die1", 1_020)
    assert rapl.poll().deltas == {PKG0: 0, PKG1: 1_100}


def test_values_out_of_range_are_refused_and_the_baseline_kept(tmp_path, caplog):
    host = HostTree(tmp_path, sockets=1, dram=False)
    rapl = collector(host)
    rapl.poll()
    host.energy_path("0", "package").write_text("garbage\n")
    with caplog.at_level(logging.WARNING, logger="wattprint.rapl"):
        p = rapl.poll()
        host.set_energy("0", "package", INTEL_RANGE_UJ + 1)
        p2 = rapl.poll()
    assert not p.ok and p.deltas == {} and not p2.ok and rapl.errors == {"bad_value": 2}
    assert len(caplog.records) == 1  # once per reason
    host.set_energy("0", "package", 1_000_000 + 42)
    assert rapl.poll().deltas == {PKG0: 42}  # from the last good value: nothing lost, nothing invented


def test_a_zone_failing_mid_run_books_its_outage_when_it_reads_again(tmp_path):
    host = HostTree(tmp_path, sockets=1)
    reads = {"fail": False}

    def flaky(path: str) -> bytes:
        if reads["fail"] and path.endswith("intel-rapl:0:0/energy_uj"):
            raise OSError(errno.EIO, "Input/output error")
        return read_small(path)

    rapl = collector(host, read_file=flaky)
    rapl.poll()
    reads["fail"] = True
    for _ in range(3):
        host.add_energy("0", "package", 1_000)
        host.add_energy("0", "dram", 100)
        p = rapl.poll()
        assert not p.ok and p.deltas == {PKG0: 1_000}  # the package still reads; dram: no delta at all
    reads["fail"] = False
    host.add_energy("0", "dram", 100)
    assert rapl.poll().deltas == {PKG0: 0, DRAM0: 400}
    assert rapl.errors == {"read_error": 3}


def test_unknown_range_is_read_again_when_a_wrap_needs_it(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    rng = host.powercap / "intel-rapl:0" / "max_energy_range_uj"
    rng.write_text("")  # unreadable at discovery
    host.set_energy("0", "package", 1_000)
    rapl = collector(host)
    rapl.poll()
    rng.write_text("5000\n")
    host.set_energy("0", "package", 300)
    assert rapl.poll().deltas == {PKG0: 4_300}


def test_no_powercap_is_absent_hardware_logged_once_at_info(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="wattprint.rapl"):
        rapl = RaplCollector(str(tmp_path / "sys"))
        polls = [rapl.poll() for _ in range(3)]
    assert all(not p.present and not p.ok and p.deltas == {} for p in polls)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert "does not exist" in caplog.records[0].message and rapl.errors == {}


def _denied(path: str) -> bytes:
    if path.endswith("energy_uj") and "max_energy" not in path:
        raise PermissionError(errno.EACCES, "Permission denied", path)
    return read_small(path)


def test_permission_denied_is_one_error_line_with_the_fix_and_no_energy(tmp_path, caplog):
    # As root, open() never fails on mode bits; the reader's file access is injected here, and the real kernel
    # behaviour (a non-root user, then the same user with CAP_DAC_READ_SEARCH) is checked in the next test.
    host = HostTree(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="wattprint.rapl"):
        rapl = collector(host, read_file=_denied)
        polls = [rapl.poll() for _ in range(3)]
    assert all(p.present and not p.ok and p.deltas == {} for p in polls)
    assert rapl.errors == {"permission_denied": 12}  # 4 zones x 3 polls
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    msg = errors[0].getMessage()
    for fix in ("run the exporter as root", "CAP_DAC_READ_SEARCH", "AmbientCapabilities",
                "deploy/udev/99-wattprint-rapl.rules", "CVE-2020-8694", "not exported"):
        assert fix in msg, fix


PROBE = """
import json, sys
from wattprint.exporter.host.rapl import RaplCollector
r = RaplCollector(sys.argv[1])
p = r.poll()
print(json.dumps({"ok": p.ok, "errors": dict(r.errors)}))
"""


def test_real_permission_error_as_an_unprivileged_user_and_the_capability_fix():
    """energy_uj mode 0400 owned by root, as the kernel makes it: nobody is refused; nobody with
    CAP_DAC_READ_SEARCH (what AmbientCapabilities= grants) reads it. Needs root to build and to drop to nobody."""
    if os.geteuid() != 0:
        if tools_required():
            pytest.fail("needs root to switch to nobody; required because CI=true or WATTPRINT_REQUIRE_TOOLS=1")
        pytest.skip("needs root to switch to nobody")
    setpriv = require_tool("setpriv")
    with tempfile.TemporaryDirectory(prefix="wattprint-rapl-") as tmp:  # /tmp/x is walkable by nobody after chmod
        os.chmod(tmp, 0o755)
        host = HostTree(Path(tmp), sockets=1, dram=False)
        for p in host.powercap.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o444)
        host.energy_path("0", "package").chmod(0o400)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}

        def probe(*caps: str) -> str:
            res = subprocess.run([*nobody, *caps, sys.executable, "-c", PROBE, str(host.sysfs)], cwd="/",
                                 capture_output=True, text=True, timeout=30, env=env)
            assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
            return res.stdout.strip() + " | " + res.stderr

        denied = probe()
        assert denied.startswith('{"ok": false, "errors": {"permission_denied": 1}}'), denied
        assert "CAP_DAC_READ_SEARCH" in denied  # the one error line, with the fix
        granted = probe("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")
        assert granted.startswith('{"ok": true, "errors": {}}'), granted
