"""The ``rapl`` collector: CPU package and DRAM energy per socket from Linux powercap.

Zones are the ``intel-rapl:N`` directories under ``<sysfs>/class/powercap`` (AMD's driver
uses the same names): a top-level zone named ``package-N`` (``package-N-die-M`` on multi-die
parts, summed into socket N) is socket N's package; its subzone named ``dram`` is that
socket's memory. The others are left out on purpose: ``core`` and ``uncore`` are parts of the
package (adding them would count that energy twice), ``psys`` is the whole platform and
overlaps everything, and ``intel-rapl-mmio:*`` repeats the package counter through another
interface on client parts.

``energy_uj`` is a free-running counter that wraps at ``max_energy_range_uj`` (minutes to
hours on a busy server). A reading below the previous one is a wrap: the delta is
``new + range - old``, as Kepler and Scaphandre compute it (the true modulus is one counter
unit, at most ~61 µJ, above the range the kernel reports). Energies stay integer µJ.

A zone that cannot be read keeps its last good value, so the energy of the outage is booked
when it reads again; its socket's domain is reported as not read for that poll.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ...common.logs import kv
from ..state import SavedZone
from .procstat import read_small

log = logging.getLogger("wattprint.rapl")

NAME = "rapl"
# (socket, domain): the unit of export and of attribution.
Domain = tuple[str, str]
DOMAINS = ("package", "dram")

_ZONE_DIR = re.compile(r"intel-rapl:(\d+)(?::(\d+))?", re.ASCII)
_PACKAGE = re.compile(r"package-(\d+)(?:-die-\d+)?", re.ASCII)

PERMISSION_HELP = (
    "kernels since the PLATYPUS fix (CVE-2020-8694; Linux 5.10 and stable backports) let only root read "
    "energy_uj. Fix one of: run the exporter as root (root owns energy_uj, so no capability is needed); run it as "
    "a user with CAP_DAC_READ_SEARCH (systemd: AmbientCapabilities=CAP_DAC_READ_SEARCH; in Kubernetes an added "
    "capability only takes effect in a container running as UID 0); or install "
    "deploy/udev/99-wattprint-rapl.rules, which makes energy_uj readable by all users (see its security note). "
    "CPU energy is not exported meanwhile"
)


def boottime() -> float:
    """Seconds since boot, suspend included: comparable across exporter restarts within one boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass
class _Zone:
    name: str
    energy_path: str
    range_path: str
    socket: str
    domain: str
    range_uj: int | None
    last_uj: int | None = None
    last_s: float | None = None
    peak_uw: int = 0
    wraps: int = 0


@dataclass(frozen=True)
class RaplPoll:
    # Whether any powercap zone was found at all.
    present: bool
    # True when every zone was read.
    ok: bool
    # µJ since the previous poll, for each domain whose zones were all read (absent otherwise).
    deltas: dict[Domain, int]


class RaplCollector:
    name = NAME

    def __init__(
        self,
        sysfs: str = "/sys",
        read_file: Callable[[str], bytes] = read_small,
        clock: Callable[[], float] = boottime,
    ) -> None:
        self.root = os.path.join(sysfs, "class", "powercap")
        self._read_file = read_file
        self._clock = clock
        self.errors: collections.Counter[str] = collections.Counter()
        self._zones: list[_Zone] = []
        # Energy of zones read while another zone of the same domain failed, booked with the next full read.
        self._carry: dict[Domain, int] = {}
        self._restored: dict[str, SavedZone] = {}
        self._logged: set[str] = set()

    # -- zones -------------------------------------------------------------------------
    def domains(self) -> list[Domain]:
        return sorted({(z.socket, z.domain) for z in self._zones}, key=domain_key)

    def _discover(self) -> list[_Zone]:
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            self._once("absent", logging.INFO, "no RAPL energy counters: %s does not exist (a VM, a non-x86 CPU, "
                       "or the intel_rapl_msr module not loaded); CPU energy is not exported", self.root)
            return []
        except OSError as exc:
            self._error("read_error", f"cannot list {self.root}: {exc.strerror or exc}")
            return []
        tops: dict[str, str] = {}  # top-level zone index -> socket
        subzones: list[tuple[str, str]] = []
        zones: list[_Zone] = []
        for entry in sorted(entries, key=_natural):
            m = _ZONE_DIR.fullmatch(entry)
            if m is None:
                continue  # the control type itself ("intel-rapl"), intel-rapl-mmio:*
            if m.group(2) is not None:
                subzones.append((entry, m.group(1)))
                continue
            label = self._zone_name(entry)
            pkg = _PACKAGE.fullmatch(label or "")
            if pkg is None:
                log.debug("rapl zone skipped (not a package)", extra=kv(zone=entry, name=label))
                continue
            tops[m.group(1)] = pkg.group(1)
            zones.append(self._zone(entry, pkg.group(1), "package"))
        for entry, parent in subzones:
            label = self._zone_name(entry)
            if label == "dram" and parent in tops:
                zones.append(self._zone(entry, tops[parent], "dram"))
            else:
                log.debug("rapl zone skipped (inside the package, or not DRAM)", extra=kv(zone=entry, name=label))
        if not zones:
            self._once("absent", logging.INFO, "no RAPL package zones under %s; CPU energy is not exported", self.root)
            return []
        for z in zones:
            saved = self._restored.pop(z.name, None)
            if saved is not None and (saved.socket, saved.domain) == (z.socket, z.domain):
                z.last_uj, z.peak_uw = saved.raw_uj, saved.peak_uw
                z.last_s = saved.boottime_ms / 1000.0
        self._restored.clear()
        zones.sort(key=lambda z: (domain_key((z.socket, z.domain)), z.name))
        log.info("rapl zones found", extra=kv(zones=",".join(f"{z.name}:socket{z.socket}/{z.domain}" for z in zones)))
        return zones

    def _zone_name(self, entry: str) -> str | None:
        try:
            return self._read_file(os.path.join(self.root, entry, "name")).decode("ascii", "replace").strip()
        except OSError as exc:
            log.debug("rapl zone name unreadable", extra=kv(zone=entry, err=exc))
            return None

    def _zone(self, entry: str, socket: str, domain: str) -> _Zone:
        base = os.path.join(self.root, entry)
        z = _Zone(entry, os.path.join(base, "energy_uj"), os.path.join(base, "max_energy_range_uj"), socket,
                  domain, None)
        z.range_uj = self._range(z)
        return z

    def _range(self, z: _Zone) -> int | None:
        try:
            value = int(self._read_file(z.range_path))
        except (OSError, ValueError) as exc:
            log.debug("rapl max_energy_range_uj unreadable", extra=kv(zone=z.name, err=exc))
            return None
        return value if value > 0 else None

    # -- one poll ------------------------------------------------------------------------
    def poll(self) -> RaplPoll:
        if not self._zones:
            self._zones = self._discover()
            if not self._zones:
                return RaplPoll(present=False, ok=False, deltas={})
        now = self._clock()
        partial: dict[Domain, int] = {}
        failed: set[Domain] = set()
        for z in self._zones:
            key = (z.socket, z.domain)
            delta = self._read_zone(z, now)
            if delta is None:
                failed.add(key)
            else:
                partial[key] = partial.get(key, 0) + delta
        deltas: dict[Domain, int] = {}
        for key, d in partial.items():
            if key in failed:
                self._carry[key] = self._carry.get(key, 0) + d
            else:
                deltas[key] = self._carry.pop(key, 0) + d
        return RaplPoll(present=True, ok=not failed, deltas=deltas)

    def _read_zone(self, z: _Zone, now: float) -> int | None:
        """µJ since the last good read (0 for the first), or None after counting why it failed."""
        try:
            raw = int(self._read_file(z.energy_path))
        except PermissionError:
            self._error("permission_denied", f"cannot read {z.energy_path}: permission denied; {PERMISSION_HELP}",
                        level=logging.ERROR)
            return None
        except OSError as exc:
            self._error("read_error", f"cannot read {z.energy_path}: {exc.strerror or exc}")
            return None
        except ValueError:
            self._error("bad_value", f"{z.energy_path} does not hold an integer")
            return None
        if raw < 0 or (z.range_uj is not None and raw > z.range_uj):
            self._error("bad_value", f"{z.energy_path} reads {raw}, outside 0..max_energy_range_uj ({z.range_uj})")
            return None
        last, last_s = z.last_uj, z.last_s
        z.last_uj, z.last_s = raw, now
        if last is None:
            return 0
        if raw >= last:
            delta = raw - last
        else:
            if z.range_uj is None:
                z.range_uj = self._range(z)  # unreadable at discovery: the wrap needs it now
            if z.range_uj is None or last > z.range_uj:
                self._error("bad_value", f"{z.energy_path} went from {last} to {raw} and max_energy_range_uj is "
                            "unknown; the interval is dropped")
                return 0
            delta = raw + z.range_uj - last
            z.wraps += 1
            log.debug("rapl counter wrapped",
                      extra=kv(zone=z.name, from_uj=last, to_uj=raw, delta_uj=delta, wraps=z.wraps))
        if last_s is not None and now > last_s:
            if z.range_uj and z.peak_uw and (now - last_s) * z.peak_uw >= z.range_uj:
                # Only a restart (same boot) or a long read outage spans this long. Wraps nobody saw cannot be
                # counted: whole ranges may be missing from what is booked, never added.
                log.warning("rapl zone %s was not read for %.0f s (exporter down, or read errors): at the %.0f W "
                            "peak seen so far its counter may have passed its whole range unseen, so the %d J booked "
                            "for that span is a lower bound", z.name, now - last_s, z.peak_uw / 1e6,
                            delta // 1_000_000)
            z.peak_uw = max(z.peak_uw, int(delta / (now - last_s)))
        return delta

    # -- the state file --------------------------------------------------------------------
    def restore(self, zones: Iterable[SavedZone]) -> None:
        """Baselines from the state file, saved in this same boot; applied when the zones are found."""
        self._restored = {z.zone: z for z in zones}

    def saved(self) -> list[SavedZone]:
        out = [SavedZone(zone=z.name, socket=z.socket, domain=z.domain, raw_uj=z.last_uj,
                         boottime_ms=int((z.last_s or 0.0) * 1000), peak_uw=z.peak_uw)
               for z in self._zones if z.last_uj is not None]
        return out + list(self._restored.values())

    @property
    def wraps(self) -> int:
        return sum(z.wraps for z in self._zones)

    # -- logging ------------------------------------------------------------------------------
    def _error(self, reason: str, msg: str, level: int = logging.WARNING) -> None:
        # Counted every time, logged once per reason: a denied counter fails every poll.
        self.errors[reason] += 1
        self._once(reason, level, "%s (logged once; counted in wattprint_cpu_collection_errors_total{reason=\"%s\"})",
                   msg, reason)

    def _once(self, key: str, level: int, msg: str, *args: object) -> None:
        log.log(level if key not in self._logged else logging.DEBUG, msg, *args)
        self._logged.add(key)


def domain_key(d: Domain) -> tuple[int, str, int]:
    socket, domain = d
    return (int(socket) if socket.isdigit() else 1 << 30, socket, DOMAINS.index(domain))


def _natural(entry: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", entry))
