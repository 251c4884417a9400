"""`--node-power redfish`: the node's power or energy from its BMC's Redfish service (DMTF DSP0268).

Discovery (first read, and again after the chosen resource went missing): the chassis collection
(/redfish/v1/Chassis), then each chassis, those not contained in another chassis (`Links.ContainedBy`) first,
so that a GPU tray or a power-supply chassis of the same BMC is never taken for the node. --redfish-chassis names
one instead. The first chassis offering a reading is kept, with the best reading it offers, in this order:
  1. EnvironmentMetrics.EnergyJoules.Reading   an energy counter in J (EnvironmentMetrics v1.2+)
  2. EnvironmentMetrics.EnergykWh.Reading      an energy counter in kWh (coarser)
  3. EnvironmentMetrics.PowerWatts.Reading     power (W), integrated by the exporter
  4. Power.PowerControl[0].PowerConsumedWatts  power (W) from the older Power resource (deprecated in favour of
                                               PowerSubsystem and EnvironmentMetrics, but what most BMCs serve)
A counter wins because it counts between polls and across outages; integrated power only knows the samples.
The choice stays for the process (a method switching back and forth would lose an interval at each switch): a
later poll whose reading is missing is an error (no_reading), and the next poll discovers again.
Each later poll is one GET of the chosen resource. No query string is used ($select, $expand): many BMCs and
sushy-static do not take one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...common.logs import kv
from . import source as S
from .redfish_http import ROOT, RedfishHttp

log = logging.getLogger("wattprint.redfish")

CHASSIS_FLAG = "--redfish-chassis"
JOULES_PER_KWH = 3_600_000.0
# A chassis collection longer than this is not a node's BMC (an enclosure manager): name the chassis instead.
MAX_CHASSIS = 64


@dataclass(frozen=True)
class _Kind:
    name: str          # the `reading` label
    resource: str      # the chassis property linking to the resource
    method: str
    scale: float       # to J (counter) or W (power)


ENERGY_JOULES = _Kind("EnvironmentMetrics.EnergyJoules", "EnvironmentMetrics", S.METHOD_COUNTER, 1.0)
ENERGY_KWH = _Kind("EnvironmentMetrics.EnergykWh", "EnvironmentMetrics", S.METHOD_COUNTER, JOULES_PER_KWH)
POWER_WATTS = _Kind("EnvironmentMetrics.PowerWatts", "EnvironmentMetrics", S.METHOD_POWER, 1.0)
POWER_CONSUMED = _Kind("Power.PowerControl[0].PowerConsumedWatts", "Power", S.METHOD_POWER, 1.0)
KINDS = (ENERGY_JOULES, ENERGY_KWH, POWER_WATTS, POWER_CONSUMED)


@dataclass(frozen=True)
class _Choice:
    chassis: str       # @odata.id of the chassis
    resource: str      # @odata.id of its EnvironmentMetrics or Power resource
    kind: _Kind


def _raw(doc: dict[str, Any], kind: _Kind) -> object:
    """The property's raw value in the resource document, None when absent."""
    if kind.resource == "Power":
        controls = doc.get("PowerControl")
        if not isinstance(controls, list) or not controls or not isinstance(controls[0], dict):
            return None
        return controls[0].get("PowerConsumedWatts")
    excerpt = doc.get(kind.name.split(".", 1)[1])
    return excerpt.get("Reading") if isinstance(excerpt, dict) else None


def _number(value: object, kind: _Kind, where: str) -> float:
    """A reading as a finite number >= 0, scaled to J or W; else S.NodePowerError(bad_value)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise S.NodePowerError(S.BAD_VALUE, f"Redfish {where}: {kind.name} is {value!r}, not a number >= 0")
    return float(value) * kind.scale


def _link(doc: dict[str, Any], prop: str) -> str | None:
    ref = doc.get(prop)
    target = ref.get("@odata.id") if isinstance(ref, dict) else None
    return target if isinstance(target, str) and target else None


def _contained(chassis: dict[str, Any]) -> bool:
    links = chassis.get("Links")
    return isinstance(links, dict) and _link(links, "ContainedBy") is not None


def _members(doc: dict[str, Any]) -> list[str]:
    members = doc.get("Members")
    if not isinstance(members, list):
        return []
    return [m["@odata.id"] for m in members if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)]


class RedfishSource:
    name = "redfish"

    def __init__(self, http: RedfishHttp, chassis: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.http = http
        self.chassis = chassis or None
        self._clock = clock
        self._choice: _Choice | None = None

    @property
    def bmc(self) -> str:
        return self.http.bmc

    def open(self) -> None:
        self.http.open()
        if self.http.plain_http and self.http.user:
            log.warning("the BMC's password goes over plain http: use an https:// --redfish-url", extra=kv(
                url=self.http.where))

    def close(self) -> None:
        self.http.close()

    def read(self) -> S.NodeReading:
        if self._choice is None:
            self._choice = self._discover()
            c = self._choice
            log.info("node power source found", extra=kv(chassis=c.chassis, reading=c.kind.name, method=c.kind.method))
        choice = self._choice
        t0 = self._clock()
        try:
            doc = self.http.get(choice.resource)
            value = _raw(doc, choice.kind)
            if value is None:
                raise S.NodePowerError(S.NO_READING, f"Redfish {choice.resource}: {choice.kind.name} is missing "
                                                     "(the chassis is looked for again at the next poll)")
        except S.NodePowerError as exc:
            if exc.reason in (S.NOT_FOUND, S.NO_READING):
                self._choice = None   # firmware updates move resources: find them again
            raise
        stamp = (t0 + self._clock()) / 2.0   # the reading's time: the middle of its request
        number = _number(value, choice.kind, choice.resource)
        power = number if choice.kind.method == S.METHOD_POWER else self._power_beside(doc)
        return S.NodeReading(timestamp=stamp, method=choice.kind.method,
                             energy_joules=number if choice.kind.method == S.METHOD_COUNTER else None,
                             power_watts=power, reading=choice.kind.name, chassis=choice.chassis)

    @staticmethod
    def _power_beside(doc: dict[str, Any]) -> float | None:
        """With an energy counter, EnvironmentMetrics' PowerWatts for the power gauge, when it is a good number."""
        value = _raw(doc, POWER_WATTS)
        try:
            return _number(value, POWER_WATTS, "") if value is not None else None
        except S.NodePowerError:
            return None

    # -- discovery ------------------------------------------------------------------------------------------
    def _discover(self) -> _Choice:
        members = _members(self.http.get(f"{ROOT}/Chassis"))
        if self.chassis:
            wanted = [m for m in members if m.rstrip("/") == self.chassis.rstrip("/")
                      or m.rstrip("/").rsplit("/", 1)[-1] == self.chassis]
            if not wanted:
                names = ", ".join(m.rstrip("/").rsplit("/", 1)[-1] for m in members[:10]) or "none"
                raise S.NodePowerError(S.NO_READING, f"Redfish service at {self.http.where}: no chassis "
                                                     f"{self.chassis!r} ({CHASSIS_FLAG}); it has: {names}")
            members = wanted
        if len(members) > MAX_CHASSIS:
            raise S.NodePowerError(S.NO_READING, f"Redfish service at {self.http.where}: {len(members)} chassis; "
                                                 f"name the node's with {CHASSIS_FLAG}")
        docs = [(m, self.http.get(m)) for m in members]
        # Top-level chassis first (stable): a contained one (GPU tray, PSU, backplane) is not the node.
        docs.sort(key=lambda md: _contained(md[1]))
        for chassis, doc in docs:
            choice = self._best(chassis, doc)
            if choice is not None:
                return choice
        raise S.NodePowerError(S.NO_READING, f"Redfish service at {self.http.where}: no chassis offers "
                                             "EnvironmentMetrics (EnergyJoules, EnergykWh, PowerWatts) or "
                                             "Power.PowerControl[0].PowerConsumedWatts; the BMC cannot give node power")

    def _best(self, chassis: str, doc: dict[str, Any]) -> _Choice | None:
        for prop in ("EnvironmentMetrics", "Power"):
            link = _link(doc, prop)
            if link is None:
                continue
            try:
                resource = self.http.get(link)
            except S.NodePowerError as exc:
                if exc.reason != S.NOT_FOUND:
                    raise
                continue   # a link to nothing: some firmware announce resources they do not serve
            for kind in KINDS:
                if kind.resource == prop and _raw(resource, kind) is not None:
                    return _Choice(chassis=chassis, resource=link, kind=kind)
        return None
