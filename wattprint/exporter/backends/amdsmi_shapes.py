"""What amdsmi's getters return, across its releases, turned into wattprint's units. Pure functions: no library here.

The shapes (read in the amdsmi Python package's ``amdsmi_interface.py`` of 6.1.2, 6.2.4, 6.3.3, 6.4.x and 7.0.2;
docs/exporter.md, "amdsmi", has the table):

* ``amdsmi_get_energy_count``: the accumulator is ``power`` up to 6.2 (despite its name), ``energy_accumulator``
  from 6.4, both in 6.3; ``counter_resolution`` (a C float) is the micro-joules per count. amdsmi's own
  documentation: "energy_accumulator * counter_resolution = total_energy_consumption in micro-Joules".
* ``amdsmi_get_power_info``: ``socket_power`` (7.0), ``current_socket_power`` (MI300 and later),
  ``average_socket_power`` (MI200 and earlier), in W; a field the GPU does not have is the string ``"N/A"``
  (the library turns 0xFFFF into it).
* ``amdsmi_get_gpu_process_list``: a list of dicts with ``pid`` and ``engine_usage["gfx"]``, the process's
  cumulative time on the graphics engine in ns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

ENERGY_KEYS = ("energy_accumulator", "power")          # 6.4+ first; 6.3 has both (the same counter)
POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")


def number(value: Any) -> float | None:
    """A reading as a float, or None for "N/A", empty and other non-numbers (bool is not a reading)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def energy_mj(count: Mapping[str, Any]) -> int | None:
    """The accumulator in whole millijoules: floor(accumulator x resolution / 1000), or None if unreadable.

    Exact: the resolution is taken as the exact binary value the library returned (a C float, e.g.
    15.300000190734863 for the 15.3 µJ rocm_smi hard-codes), so the product is computed in integers, with no
    float rounding however large the accumulator. The floor is a monotone function of the accumulator, so the
    sum of the deltas the poller books telescopes to floor(last) - floor(first): the sub-millijoule remainder is
    never lost, only carried in the accumulator itself, and the total is within 1 mJ of the exact energy.
    """
    accumulator = next((count[k] for k in ENERGY_KEYS if k in count), None)
    resolution = number(count.get("counter_resolution"))
    if isinstance(accumulator, bool) or not isinstance(accumulator, int) or accumulator < 0:
        return None
    if resolution is None or not resolution > 0 or resolution == float("inf"):
        return None
    exact = Fraction(resolution)
    return accumulator * exact.numerator // (exact.denominator * 1000)


def socket_power_watts(info: Mapping[str, Any]) -> float | None:
    """The socket power (W): the first of POWER_KEYS that reads above 0; 0 if every readable one is 0 (the
    secondary die of an MI250X reads 0); None when none is readable."""
    readable = [v for v in (number(info.get(k)) for k in POWER_KEYS) if v is not None and v >= 0]
    return next((v for v in readable if v > 0), readable[0] if readable else None)


def percent_ratio(value: Any) -> float | None:
    """An amdsmi percentage (``gfx_activity``) as a ratio 0-1, or None for "N/A"."""
    v = number(value)
    return None if v is None or v < 0 else min(v, 100.0) / 100.0


def gfx_ns_by_pid(processes: Iterable[Mapping[str, Any]]) -> tuple[set[int], dict[int, int]]:
    """The PIDs in a process list and, for those that report it, their cumulative graphics-engine time (ns),
    summed per PID (a process with several DRM clients may be listed once per client)."""
    pids: set[int] = set()
    gfx: dict[int, int] = {}
    for p in processes:
        pid = p.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            continue
        pids.add(pid)
        usage = p.get("engine_usage")
        ns = usage.get("gfx") if isinstance(usage, Mapping) else None
        if isinstance(ns, int) and not isinstance(ns, bool) and ns >= 0:
            gfx[pid] = gfx.get(pid, 0) + ns
    return pids, gfx


def gfx_deltas(last: Mapping[int, int], now: Mapping[int, int]) -> dict[int, float]:
    """Per PID, the graphics-engine ns since the previous read: the weights of the job split. A PID seen for the
    first time, or whose time went back (a reused PID), has no interval yet and weighs 0 this time."""
    return {pid: float(ns - last[pid]) for pid, ns in now.items() if pid in last and ns >= last[pid]}


def socket_key(bdf: str) -> str:
    """The physical GPU a processor handle belongs to: domain:bus:device of its BDF. amdsmi groups its GPU
    sockets the same way ("The BD part of the BDF is used as GPU socket to represent a physical device",
    amd_smi_system.h), so the compute partitions of one MI300X share a key."""
    return bdf.rsplit(".", 1)[0].lower()
