"""Node-wide facts from procfs: total CPU time, CPU model per socket, boot id.

The node's CPU time is the denominator of every job's share of the socket energy: the
``cpu`` line of ``/proc/stat`` counts every online CPU's time, busy or idle, in USER_HZ
ticks. Reads use ``os.open``/``os.read`` because they run every poll.
"""

from __future__ import annotations

import os
from pathlib import Path

# user nice system idle iowait irq softirq steal; guest and guest_nice are already inside user and nice.
_STAT_FIELDS = 8


class ProcStatError(Exception):
    """/proc/stat could not be read or parsed; the reason is the message."""


def read_small(path: str, limit: int = 4096) -> bytes:
    """The first ``limit`` bytes of a (pseudo-)file, with as few syscalls as Python allows."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def user_hz() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def node_cpu_usec(procfs: str, hz: int) -> int:
    """CPU time of every online CPU since boot, busy or idle, in microseconds."""
    path = os.path.join(procfs, "stat")
    try:
        head = read_small(path, 1024)  # the aggregate "cpu" line comes first
    except OSError as exc:
        raise ProcStatError(f"cannot read {path}: {exc.strerror or exc}") from None
    line = head.split(b"\n", 1)[0].split()
    if len(line) < 5 or line[0] != b"cpu":
        raise ProcStatError(f"{path}: first line is not the aggregate cpu line")
    try:
        ticks = sum(int(v) for v in line[1:1 + _STAT_FIELDS])
    except ValueError:
        raise ProcStatError(f"{path}: cpu line holds a non-integer") from None
    return ticks * 1_000_000 // hz


def cpu_models(procfs: str) -> dict[str, str]:
    """Socket ("physical id") -> CPU model name from /proc/cpuinfo; {} where it says neither (ARM, some VMs)."""
    try:
        text = Path(procfs, "cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    models: dict[str, str] = {}
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        socket, model = fields.get("physical id"), fields.get("model name")
        if socket is not None and model:
            models.setdefault(socket, model)
    return models


def boot_id(procfs: str) -> str | None:
    """This boot's random id (``/proc/sys/kernel/random/boot_id``), or None if unreadable."""
    try:
        value = Path(procfs, "sys", "kernel", "random", "boot_id").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None
