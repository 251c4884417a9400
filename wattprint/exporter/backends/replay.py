"""Replay a recorded NVML trace as N virtual GPUs, for machines with no GPU.

The trace is real H100 data (wattprint/exporter/data/h100_trace.csv; provenance in
tests/fixtures/nvml-h100/SOURCE.md). Each virtual GPU plays it from its own
offset (i * duration / N) and loops; its energy counter keeps rising across
loops so Prometheus never sees a reset. Wall time drives the position, so two
exporters started with the same --replay-epoch play in step.

For fault-injection tests, ``fail_file`` (``--replay-fail-file``) names a file
listing virtual GPU indices; while an index is listed, every read of that GPU
fails as a lost board does under NVML (``ok=False``, all calls failed), and
its counter keeps running, so the exporter's outage handling can be exercised
in a running process. The file is read at every poll; no file means no fault.

With ``mig`` (``--replay-mig 3g.40gb,2g.20gb,1g.10gb``) every virtual GPU is in MIG mode with those GPU instances
(ids 1, 2, ...), as dcgm-exporter would show them: the board's energy is the trace's, and each instance's
graphics-engine activity is the trace's utilisation played from its own offset, so the instances run at
different loads.
"""

from __future__ import annotations

import bisect
import csv
import logging
import re
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from ...common.logs import kv
from ..mig import BOARD_SLICES, profile_slices
from .base import BackendUnavailable, GpuInfo, GpuReading, MigInstance

REPLAY_MODEL = "NVIDIA H100 80GB HBM3"
REPLAY_POWER_LIMIT_WATTS = 700.0
REQUIRED_COLUMNS = ("ts", "power_mw", "energy_mj")
# What NVML reports for a lost board: every call on it fails.
FAILED_CALLS = ("energy", "power", "power_limit", "utilization", "memory")

log = logging.getLogger("wattprint.replay")


def default_trace_path() -> Path:
    return Path(str(resources.files("wattprint.exporter") / "data" / "h100_trace.csv"))


@dataclass(frozen=True)
class Trace:
    """A trace on a relative time axis: t[0] == 0, energy_mj[0] == 0, closed at ``duration``."""

    path: str
    t: tuple[float, ...]
    energy_mj: tuple[float, ...]
    power_mw: tuple[float, ...]
    util: tuple[float | None, ...]
    mem_used: tuple[int | None, ...]
    start_energy_mj: int
    duration: float
    loop_energy_mj: float

    def position(self, elapsed: float) -> tuple[int, float]:
        loops, pos = divmod(elapsed, self.duration)
        return int(loops), pos

    def energy_at(self, elapsed: float) -> float:
        """Cumulative energy (mJ, relative) after ``elapsed`` seconds of playback from position 0."""
        loops, pos = self.position(elapsed)
        i = bisect.bisect_right(self.t, pos) - 1
        t0, t1 = self.t[i], self.t[i + 1]
        e0, e1 = self.energy_mj[i], self.energy_mj[i + 1]
        return loops * self.loop_energy_mj + e0 + (e1 - e0) * (pos - t0) / (t1 - t0)

    def sample_at(self, elapsed: float) -> int:
        """Index of the row in force (sample-and-hold, like NVML's 1 s power average)."""
        _, pos = self.position(elapsed)
        return min(bisect.bisect_right(self.t, pos) - 1, len(self.power_mw) - 1)


def load_trace(path: str | Path) -> Trace:
    """Parse a trace CSV; any bad row is an error naming the file and line."""
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise BackendUnavailable(f"cannot read replay trace {path}: {exc.strerror}; check --replay-trace") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise BackendUnavailable(
                f"{path}:1: replay trace lacks column(s) {', '.join(missing)}; "
                f"it needs {', '.join(REQUIRED_COLUMNS)} (the format of wattprint/exporter/data/h100_trace.csv)"
            )
        ts: list[float] = []
        energy: list[float] = []
        power: list[float] = []
        util: list[float | None] = []
        mem: list[int | None] = []
        for row in reader:
            line = reader.line_num
            try:
                t, p, e = float(row["ts"]), float(row["power_mw"]), float(row["energy_mj"])
                u = float(row["util_gpu"]) / 100.0 if row.get("util_gpu") not in (None, "") else None
                m = int(float(row["mem_used"])) if row.get("mem_used") not in (None, "") else None
            except (TypeError, ValueError):
                raise BackendUnavailable(
                    f"{path}:{line}: not a number in ts/power_mw/energy_mj/util_gpu/mem_used; fix or drop the row"
                ) from None
            if ts and t <= ts[-1]:
                raise BackendUnavailable(f"{path}:{line}: ts {t} does not increase; rows must be in time order")
            if energy and e < energy[-1]:
                raise BackendUnavailable(
                    f"{path}:{line}: energy_mj goes backwards ({e} < {energy[-1]}); "
                    "a trace must come from one driver session"
                )
            if p < 0:
                raise BackendUnavailable(f"{path}:{line}: negative power_mw {p}")
            ts.append(t)
            energy.append(e)
            power.append(p)
            util.append(u)
            mem.append(m)
    if len(ts) < 2:
        raise BackendUnavailable(f"{path}: replay trace needs at least 2 rows, found {len(ts)}")
    # Close the loop: after the last row, hold its power for one median sample period.
    steps = sorted(b - a for a, b in zip(ts, ts[1:], strict=False))
    dt = steps[len(steps) // 2]
    rel_t = [t - ts[0] for t in ts] + [ts[-1] - ts[0] + dt]
    rel_e = [e - energy[0] for e in energy]
    rel_e.append(rel_e[-1] + power[-1] * dt)  # mW * s = mJ
    return Trace(
        path=str(path),
        t=tuple(rel_t),
        energy_mj=tuple(rel_e),
        power_mw=tuple(power),
        util=tuple(util),
        mem_used=tuple(mem),
        start_energy_mj=int(energy[0]),
        duration=rel_t[-1],
        loop_energy_mj=rel_e[-1],
    )


class ReplayBackend:
    name = "replay"

    def __init__(
        self,
        trace_path: str | Path | None = None,
        gpus: int = 1,
        epoch: float | None = None,
        hostname: str = "localhost",
        wallclock: Callable[[], float] = time.time,
        fail_file: str | Path | None = None,
        mig: tuple[str, ...] = (),
    ) -> None:
        if gpus < 1:
            raise BackendUnavailable(f"--replay-gpus must be at least 1, got {gpus}")
        self.mig_profiles = tuple(mig)    # checked at open(): a bad profile is a start-up error, not a traceback
        self.trace_path = Path(trace_path) if trace_path else default_trace_path()
        self.gpus = gpus
        self.epoch = epoch
        self.hostname = hostname
        self._wallclock = wallclock
        self.fail_file = Path(fail_file) if fail_file else None
        self.trace: Trace | None = None
        self.infos: list[GpuInfo] = []
        self._instances: list[tuple[MigInstance, ...]] = []
        self._fail_text: str | None = None
        self._failing: frozenset[str] = frozenset()

    def open(self) -> None:
        profiles = parse_mig_profiles(self.mig_profiles)
        self.trace = load_trace(self.trace_path)
        if self.epoch is None:
            self.epoch = self._wallclock()
        self.infos = [
            GpuInfo(
                index=str(i),
                uuid="GPU-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"wattprint-replay:{self.hostname}:{i}")),
                model=REPLAY_MODEL,
                driver="replay",
            )
            for i in range(self.gpus)
        ]
        self._instances = [
            tuple(MigInstance(gi_id=str(k + 1), profile=profile, slices=profile_slices(profile),
                              uuid="MIG-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{info.uuid}:{k + 1}")))
                  for k, profile in enumerate(profiles))
            for info in self.infos
        ]

    def offset(self, gpu: int) -> float:
        assert self.trace is not None
        return gpu * self.trace.duration / self.gpus

    def elapsed(self, gpu: int, wall: float) -> float:
        """Playback position of ``gpu`` at unix time ``wall`` (seconds since trace row 0, unwrapped)."""
        assert self.epoch is not None
        return max(0.0, wall - self.epoch) + self.offset(gpu)

    def failing(self) -> frozenset[str]:
        """GPU indices listed in the fail file now (empty without one)."""
        if self.fail_file is None:
            return frozenset()
        try:
            text = self.fail_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            text = ""
            log.warning("cannot read --replay-fail-file; no GPU fails", extra=kv(file=self.fail_file, err=exc.strerror))
        if text != self._fail_text:
            self._fail_text = text
            known = {info.index for info in self.infos}
            tokens = [t for t in re.split(r"[\s,]+", text) if t]
            unknown = sorted(t for t in tokens if t not in known)
            if unknown:
                log.warning("--replay-fail-file: ignoring %s (not a replayed GPU index 0..%d)",
                            ", ".join(repr(t) for t in unknown), len(self.infos) - 1, extra=kv(file=self.fail_file))
            self._failing = frozenset(t for t in tokens if t in known)
            failing = ",".join(sorted(self._failing, key=int)) or "none"
            log.info("replay fault injection", extra=kv(failing_gpus=failing))
        return self._failing

    def read(self) -> list[GpuReading]:
        tr = self.trace
        if tr is None:
            raise RuntimeError("ReplayBackend.read() before open()")
        # The trace's own clock times the readings: it drives the replayed energy, so the intervals the poller
        # books (held time included) span exactly the replayed energy, also under a test's scripted clock.
        wall = self._wallclock()
        failing = self.failing()
        out = []
        for i, info in enumerate(self.infos):
            if info.index in failing:
                out.append(GpuReading(info=info, timestamp=wall, ok=False, failed_calls=FAILED_CALLS))
                continue
            el = self.elapsed(i, wall)
            row = tr.sample_at(el)
            mig = tuple(
                replace(m, activity=tr.util[tr.sample_at(el + (k + 1) * tr.duration / (len(self._instances[i]) + 1))])
                for k, m in enumerate(self._instances[i])
            )
            out.append(
                GpuReading(
                    info=info,
                    timestamp=wall,
                    energy_mj=tr.start_energy_mj + int(tr.energy_at(el)),
                    power_watts=tr.power_mw[row] / 1000.0,
                    power_limit_watts=REPLAY_POWER_LIMIT_WATTS,
                    utilization_ratio=None if mig else tr.util[row],    # none for the board in MIG mode
                    memory_used_bytes=tr.mem_used[row],
                    mig=mig,
                    mig_slices=BOARD_SLICES if mig else 0,
                )
            )
        return out

    def close(self) -> None:
        pass


def parse_mig_profiles(profiles: tuple[str, ...]) -> tuple[str, ...]:
    """--replay-mig's GPU instance profiles, checked: each names its compute slices, together at most a board's."""
    for p in profiles:
        if profile_slices(p) < 1:
            raise BackendUnavailable(f"--replay-mig: {p!r} is not a MIG profile like 1g.10gb or 3g.40gb")
    total = sum(profile_slices(p) for p in profiles)
    if total > BOARD_SLICES:
        raise BackendUnavailable(f"--replay-mig: the profiles take {total} compute slices, an H100 has {BOARD_SLICES}")
    return tuple(profiles)
