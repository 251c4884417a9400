"""The node's energy counter from its BMC's readings, on a thread of its own (`--node-power-interval`).

A BMC answers in tenths of a second to seconds, and sometimes not at all: its reads never run in the GPU poll, and
a scrape only serialises the last NodeSnapshot. Energy is kept in integer millijoules, as the GPU's:
* counter (EnergyJoules, EnergykWh): each poll books the counter's delta since the last good reading, however long
  ago (the BMC counted meanwhile). A counter below the last one was reset (ResetMetrics, a BMC reboot): nothing is
  booked for that interval, wattprint_node_energy_resets_total rises, the new value is the baseline.
* power: the trapezoid (P_prev + P_now) / 2 x dt between two good readings, the same rule as a GPU without an
  energy counter, the sub-millijoule remainder carried to the next interval. Between two readings further apart
  than --node-power-max-gap nothing is booked: a straight line over minutes of an unknown load would invent
  energy. The interval is counted (wattprint_node_power_gaps_total, ..._gap_seconds_total) and the newer reading
  is the new baseline.
A change of method, reading or chassis (found again after a firmware update) restarts the baseline.

Across an exporter restart (--state-file, the GPU poller writes the file): `saved` gives the totals and, for a
counter, its last raw value with what it belongs to; `restore` takes them over. The first good reading after the
restart then books raw_now - raw_saved, whatever the downtime (the BMC counted it), when the method, reading, chassis
and BMC address are the saved ones; a lower raw value is a reset. Otherwise (power integration, or a baseline that
is not this counter's) the total continues and the downtime is a gap: counted, not booked.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...common.logs import kv, typed
from ..state import SavedNode, SavedNodeCounter
from ..ticker import run_every
from . import source as S

log = logging.getLogger("wattprint.node")

COLLECTOR = "node_power"   # the `collector` label of wattprint_exporter_collector_success
DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_GAP = 60.0


@dataclass(frozen=True)
class NodeSnapshot:
    source: str
    up: bool = False                  # the last poll read the BMC
    method: str = ""                  # "" until a first reading
    reading: str = ""
    chassis: str = ""
    energy_mj: int = 0
    power_watts: float | None = None
    errors: tuple[tuple[str, int], ...] = ()
    resets: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    polls: int = 0
    duration_seconds: float = 0.0     # of the last poll


class NodePowerPoller:
    def __init__(self, source: S.NodePowerSource, interval: float = DEFAULT_INTERVAL,
                 max_gap: float = DEFAULT_MAX_GAP, clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time, hostname: str = "") -> None:
        self.source = source
        self.hostname = hostname   # the `hostname` label: saved totals continue only on the same series
        self.interval = interval
        self.max_gap = max_gap
        self._clock = clock
        self._wallclock = wallclock
        self._errors: collections.Counter[str] = collections.Counter()
        self._logged: set[str] = set()      # reasons logged since the last good read
        self._failed_polls = 0
        self._key: tuple[str, str, str] | None = None    # (method, reading, chassis) of the baseline
        self._last_ts: float | None = None
        self._last_counter_mj: int | None = None
        self._last_power: float | None = None
        self._carry_mj = 0.0
        self._energy_mj = 0
        self._power: float | None = None
        self._resets = self._gaps = self._polls = 0
        self._gap_seconds = 0.0
        self._gap_logged = False
        self._last_unixtime: float | None = None   # wall clock of the last good reading, for the state file
        self._resume: SavedNode | None = None      # restored from the state file, until the first good reading
        # _lock guards the accounting (the GPU poller's thread reads it for the state file); _poll_lock serialises
        # polls and is held across the BMC request, so that saving never waits for a slow BMC.
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.snapshot = NodeSnapshot(source=source.name)

    # -- one poll ---------------------------------------------------------------------------------------------
    def poll_once(self) -> NodeSnapshot:
        with self._poll_lock:
            start = time.perf_counter()
            reading: S.NodeReading | None = None
            failure: tuple[str, str] | None = None
            try:
                reading = self.source.read()
            except S.NodePowerError as exc:
                failure = (exc.reason, str(exc))
            except Exception as exc:   # a bug must not stop the thread, nor hide the outage
                failure = (S.UNEXPECTED, typed(exc))
            with self._lock:
                if reading is None:
                    assert failure is not None
                    self._failed(*failure)
                else:
                    if self._failed_polls:
                        log.info("node power read again", extra=kv(source=self.source.name,
                                                                   failed_polls=self._failed_polls))
                    self._failed_polls = 0
                    self._logged.clear()
                    if self._resume is not None:
                        self._resume_from(self._resume, reading)
                        self._resume = None
                    self._book(reading)
                    self._last_unixtime = self._wallclock()
                self._polls += 1
                self.snapshot = self._snapshot(reading is not None, time.perf_counter() - start)
                return self.snapshot

    def _snapshot(self, up: bool, duration: float) -> NodeSnapshot:
        return NodeSnapshot(
            source=self.source.name, up=up, method=self._key[0] if self._key else "",
            reading=self._key[1] if self._key else "", chassis=self._key[2] if self._key else "",
            energy_mj=self._energy_mj, power_watts=self._power if up else None,
            errors=tuple(sorted(self._errors.items())), resets=self._resets, gaps=self._gaps,
            gap_seconds=self._gap_seconds, polls=self._polls, duration_seconds=duration)

    def _failed(self, reason: str, message: str) -> None:
        self._errors[reason] += 1
        self._failed_polls += 1
        if reason not in self._logged:   # once per reason until the BMC answers again
            self._logged.add(reason)
            log.warning("node power read failed (counted in wattprint_node_power_errors_total; logged once per "
                        "reason until it reads again)", extra=kv(source=self.source.name, reason=reason,
                                                                 err=message))

    def _book(self, r: S.NodeReading) -> None:
        key = (r.method, r.reading, r.chassis)
        if key != self._key:
            if self._key is not None:
                log.info("node power source changed, baseline restarted", extra=kv(
                    reading=r.reading, chassis=r.chassis, before=self._key[1]))
            self._key = key
            self._last_ts = self._last_counter_mj = self._last_power = None
            self._carry_mj = 0.0
        dt = None if self._last_ts is None else r.timestamp - self._last_ts
        delta = 0
        if r.method == S.METHOD_COUNTER:
            assert r.energy_joules is not None
            counter = round(r.energy_joules * 1000.0)
            measured = False   # whether this interval's energy is known (a delta, not a baseline or a reset)
            if self._last_counter_mj is not None:
                if counter >= self._last_counter_mj:
                    delta, measured = counter - self._last_counter_mj, True
                else:
                    self._resets += 1
                    log.warning("node energy counter went backwards, interval not booked", extra=kv(
                        reading=r.reading, from_j=self._last_counter_mj / 1000.0, to_j=counter / 1000.0))
            self._last_counter_mj = counter
            # Without a power reading beside the counter, the gauge is the last interval's average power.
            power = r.power_watts
            if power is None and measured and dt is not None and dt > 0:
                power = delta / 1000.0 / dt
            self._power = power
        else:
            assert r.power_watts is not None
            if dt is not None and self._last_power is not None:
                if dt > self.max_gap:
                    self._gaps += 1
                    self._gap_seconds += dt
                    if not self._gap_logged:
                        self._gap_logged = True
                        log.warning("node power readings too far apart, interval not integrated (counted in "
                                    "wattprint_node_power_gaps_total; logged once)",
                                    extra=kv(seconds=round(dt, 3), max_gap=self.max_gap))
                elif dt > 0:
                    exact = (self._last_power + r.power_watts) / 2.0 * dt * 1000.0 + self._carry_mj
                    delta = int(exact)
                    self._carry_mj = exact - delta
            self._last_power = r.power_watts
            self._power = r.power_watts
        self._energy_mj += delta
        self._last_ts = r.timestamp

    # -- the state file -------------------------------------------------------------------------------------
    def saved(self) -> SavedNode | None:
        """What the state file keeps (None before anything was read or restored). Called from the GPU poller's
        thread: it takes only the accounting lock, never waits for a BMC request."""
        with self._lock:
            if self._resume is not None:   # not read since the restart: the file's values, unchanged
                return self._resume
            if self._key is None:
                return None
            counter = None
            if self._key[0] == S.METHOD_COUNTER and self._last_counter_mj is not None:
                counter = SavedNodeCounter(method=self._key[0], reading=self._key[1], chassis=self._key[2],
                                           bmc=self.source.bmc, raw_mj=self._last_counter_mj)
            return SavedNode(source=self.source.name, hostname=self.hostname, energy_mj=self._energy_mj,
                             resets=self._resets, gaps=self._gaps, gap_seconds=self._gap_seconds,
                             last_unixtime=self._last_unixtime, counter=counter)

    def restore(self, saved: SavedNode) -> None:
        """Take over the totals of the state file (before the first poll); the saved counter, if any, is checked
        against the first good reading (_resume_from)."""
        with self._lock:
            if (saved.source, saved.hostname) != (self.source.name, self.hostname):
                # Another series (a file moved to another node, or --hostname changed): it starts at 0, as a new
                # counter must (the pipeline counts a new series' first value as energy used since it started).
                log.info("state file: node energy saved for another series, not taken over; node counters start "
                         "from 0", extra=kv(saved_source=saved.source, saved_hostname=saved.hostname,
                                            source=self.source.name, hostname=self.hostname))
                return
            self._resume = saved
            self._energy_mj, self._resets, self._gaps = saved.energy_mj, saved.resets, saved.gaps
            self._gap_seconds = saved.gap_seconds
            self._last_unixtime = saved.last_unixtime
            self.snapshot = self._snapshot(False, 0.0)

    def _resume_from(self, saved: SavedNode, r: S.NodeReading) -> None:
        """The first good reading after a restart: resume the saved counter, or count the downtime as a gap."""
        c = saved.counter
        why = _mismatch(c, r, self.source.bmc)
        if c is not None and why is None:
            # The BMC counted while the exporter was down: _book books raw_now - raw_saved (a lower raw: a reset).
            # No bound on the downtime: the counter's delta is the energy, however long ago the saved reading was.
            self._key = (r.method, r.reading, r.chassis)
            self._last_counter_mj = c.raw_mj
            assert r.energy_joules is not None
            delta_mj = round(r.energy_joules * 1000.0) - c.raw_mj
            if delta_mj >= 0:   # else _book counts the reset and says so
                downtime = None if saved.last_unixtime is None else round(self._wallclock() - saved.last_unixtime, 3)
                log.info("state file: node energy counter resumed; the BMC's count over the downtime is booked",
                         extra=kv(reading=r.reading, chassis=r.chassis, bmc=c.bmc, delta_j=delta_mj / 1000.0,
                                  downtime_s=downtime))
            return
        downtime = 0.0 if saved.last_unixtime is None else max(0.0, self._wallclock() - saved.last_unixtime)
        if saved.last_unixtime is not None:
            self._gaps += 1
            self._gap_seconds += downtime
        log.info("state file: node energy total continues, the downtime's energy is not booked (counted in "
                 "wattprint_node_power_gaps_total)", extra=kv(why=why, downtime_s=round(downtime, 3)))

    # -- thread -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wattprint-node-power", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        run_every(self.interval, self.poll_once, self._stop, self._clock, log, "node power poll")

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _mismatch(c: SavedNodeCounter | None, r: S.NodeReading, bmc: str) -> str | None:
    """Why the saved counter is not this reading's (None: it is), for the log."""
    if r.method != S.METHOD_COUNTER:
        return "power integration has no counter to resume"
    if c is None:
        return "no saved counter (the last process integrated power)"
    for what, saved, now in (("method", c.method, r.method), ("bmc", c.bmc, bmc), ("chassis", c.chassis, r.chassis),
                             ("reading", c.reading, r.reading)):
        if saved != now:
            return f"saved for {what} {saved!r}, this is {now!r}"
    return None
