"""Market-based Scope 2: the contractual instruments and residual mixes of the config (`scope2:`), checked at load.

GHG Protocol Scope 2 Guidance (2015): a company reports Scope 2 twice, location-based (grid average x energy, what
every other figure of wattprint is) and market-based (the emission factors its contracts convey). The market-based
factor of a kWh follows the Guidance's hierarchy (Table 6.3): an energy attribute certificate or a contract (PPA,
GO, REC, I-REC) that covers it, else a supplier-specific factor, else the residual mix of its zone, else the grid
average (flagged). This module holds the declarations; report/scope2.py matches them to consumption.

    scope2:                         # or a path: scope2: instruments.yaml (relative to the config file)
      matching: monthly             # monthly | hourly (24/7-style): the period instruments are matched in
      instruments:
        - name: ppa-wind-2024       # unique
          kind: ppa                 # ppa | certificate | supplier
          certificate: GO           # certificates only: GO | REC | I-REC
          clusters: [jean-zay]      # or zone: FR (every configured cluster of that zone)
          start: 2024-01-01         # UTC, inclusive; a date or an ISO instant on a whole hour
          end: 2025-01-01           # exclusive; monthly matching: both on the first of a month
          mwh: 120                  # > 0, for the whole validity period; a supplier factor may say: all
          g_per_kwh: 0              # the instrument's emission factor, >= 0
          registry_id: GO-FR-2024-0042   # optional: the contract's or certificates' reference (claimed once)
          source: "..."             # optional free text
      residual_mix:
        - {zone: FR, year: 2023, g_per_kwh: 57.0, source: "AIB European Residual Mixes 2023"}

Refused at load, with the offending names: two instruments of one name, two naming the same registry id with
overlapping validity (the same MWh claimed twice), two "all consumption" supplier factors whose scopes and
validity overlap, `mwh: all` on a PPA or certificates (they are finite).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .sources.jobs.common import suggest
from .timeutil import iso, parse_instant
from .verb_requests import SCOPE2_BASES
from .zones import canonical_zone

if TYPE_CHECKING:
    from .config import _Ctx

MATCHING = ("monthly", "hourly")
KINDS = ("ppa", "certificate", "supplier")   # the order instruments are applied in (docs/methodology.md, section 7)
CERTIFICATES = ("GO", "REC", "I-REC")
BASES = SCOPE2_BASES     # defined with the flags' choices: the command line is parsed without this module
J_PER_MWH = 3.6e9


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str                       # ppa | certificate | supplier
    clusters: tuple[str, ...]       # the scope, as clusters (a zone scope: the configured clusters of that zone)
    start: datetime                 # UTC, inclusive
    end: datetime                   # UTC, exclusive
    mwh: float | None               # None: all consumption in scope (supplier factors only)
    g_per_kwh: float
    certificate: str | None = None  # GO | REC | I-REC
    zone: str | None = None         # the zone it was declared for, if any
    registry_id: str | None = None
    source: str = ""
    order: int = 0                  # position in the file (ties within a kind)

    @property
    def rank(self) -> tuple[int, int]:
        """The order instruments are matched in: PPAs, then certificates, then supplier factors; file order."""
        return KINDS.index(self.kind), self.order

    @property
    def label(self) -> str:
        """What it is, in a word: PPA, GO, REC, I-REC, certificate, supplier."""
        if self.kind == "certificate":
            return self.certificate or "certificate"
        return "PPA" if self.kind == "ppa" else "supplier"


@dataclass(frozen=True)
class ResidualMix:
    zone: str
    year: int
    g_per_kwh: float
    source: str


@dataclass(frozen=True)
class Scope2Config:
    matching: str = "monthly"
    instruments: tuple[Instrument, ...] = ()
    residual_mix: tuple[ResidualMix, ...] = ()
    source: str | None = None       # the file the section came from (a separate instruments file), if any


def parse(ctx: _Ctx, data: dict[Any, Any], path: str, zones: Mapping[str, str | None]) -> Scope2Config:
    """The `scope2` mapping `data` (errors through ctx: file:line, key path, what to do). `zones`: each configured
    cluster's zone, for the cluster and zone scopes."""
    ctx.keys(data, ("matching", "instruments", "residual_mix"), path)
    matching = ctx.opt_str(data, "matching", f"{path}.matching") or "monthly"
    if matching not in MATCHING:
        ctx.fail(data, "matching", f"{path}.matching", f"unknown matching {matching!r}{suggest(matching, MATCHING)}",
                 "use monthly (the default) or hourly")
    items = _list(ctx, data, "instruments", f"{path}.instruments")
    instruments = tuple(_instrument(ctx, items, i, f"{path}.instruments[{i}]", matching, zones)
                        for i in range(len(items)))
    _refuse_double_claims(ctx, items, instruments, f"{path}.instruments")
    mixes_raw = _list(ctx, data, "residual_mix", f"{path}.residual_mix")
    mixes = tuple(_mix(ctx, mixes_raw, i, f"{path}.residual_mix[{i}]") for i in range(len(mixes_raw)))
    seen: dict[tuple[str, int], int] = {}
    for i, m in enumerate(mixes):
        if (m.zone, m.year) in seen:
            ctx.fail(mixes_raw, i, f"{path}.residual_mix[{i}]", f"zone {m.zone} year {m.year} is already given "
                     f"(residual_mix[{seen[(m.zone, m.year)]}])", "keep one factor per zone and year")
        seen[(m.zone, m.year)] = i
    return Scope2Config(matching=matching, instruments=instruments, residual_mix=mixes)


def _list(ctx: _Ctx, data: dict[Any, Any], key: str, path: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.fail(data, key, path, "expected a list of mappings", f"e.g. {key}:\\n  - name: ...")
    return value


def _instrument(ctx: _Ctx, items: list[Any], i: int, path: str, matching: str,
                zones: Mapping[str, str | None]) -> Instrument:
    body = items[i]
    if not isinstance(body, dict):
        ctx.fail(items, i, path, "expected a mapping (name, kind, clusters or zone, start, end, mwh, g_per_kwh)")
    ctx.keys(body, ("name", "kind", "certificate", "clusters", "zone", "start", "end", "mwh", "g_per_kwh",
                    "registry_id", "source"), path)
    name = _required_str(ctx, body, "name", path, "give each instrument a unique name")
    kind = _required_str(ctx, body, "kind", path, f"one of {', '.join(KINDS)}")
    if kind not in KINDS:
        ctx.fail(body, "kind", f"{path}.kind", f"unknown kind {kind!r}{suggest(kind, KINDS)}",
                 "ppa (a power purchase agreement), certificate (GO, REC, I-REC) or supplier (a supplier-specific "
                 "emission factor)")
    cert = ctx.opt_str(body, "certificate", f"{path}.certificate", empty_ok=False)
    if cert is not None and kind != "certificate":
        ctx.fail(body, "certificate", f"{path}.certificate", f"only a certificate instrument has a type, not a {kind}",
                 "remove the key or use kind: certificate")
    if cert is not None and cert.upper() not in CERTIFICATES:
        ctx.fail(body, "certificate", f"{path}.certificate", f"unknown certificate type {cert!r}"
                 f"{suggest(cert, CERTIFICATES)}", f"use one of {', '.join(CERTIFICATES)}")
    clusters, zone = _scope(ctx, body, path, zones)
    start = _instant(ctx, body, "start", path)
    end = _instant(ctx, body, "end", path)
    if end <= start:
        ctx.fail(body, "end", f"{path}.end", f"the validity ends ({iso(end)}) before it starts ({iso(start)})",
                 "end is exclusive: e.g. start: 2024-01-01, end: 2025-01-01 for the year 2024")
    if matching == "monthly":
        for key, t in (("start", start), ("end", end)):
            if (t.day, t.hour) != (1, 0):
                ctx.fail(body, key, f"{path}.{key}", f"{iso(t)} is not the start of a UTC month, and instruments are "
                         "matched per month", "use the first of a month (e.g. 2024-03-01), or matching: hourly")
    mwh: float | None
    if body.get("mwh") == "all":
        if kind != "supplier":
            ctx.fail(body, "mwh", f"{path}.mwh", f"over-claimed: a {kind} covers a finite quantity, not all "
                     "consumption", "give its MWh (only a supplier-specific factor may say mwh: all)")
        mwh = None
    else:
        mwh = ctx.opt_number(body, "mwh", f"{path}.mwh", minimum=0.0, exclusive=True)
        if mwh is None:
            ctx.fail(body, "name", f"{path}.mwh", "missing: the quantity in MWh of the validity period",
                     "e.g. mwh: 120 (a supplier factor for all its consumption: mwh: all)")
    g = ctx.opt_number(body, "g_per_kwh", f"{path}.g_per_kwh", minimum=0.0)
    if g is None:
        ctx.fail(body, "name", f"{path}.g_per_kwh", "missing: the instrument's emission factor (gCO2eq/kWh)",
                 "e.g. g_per_kwh: 0 for a PPA or certificates of wind power")
    return Instrument(name=name, kind=kind, clusters=clusters, start=start, end=end, mwh=mwh, g_per_kwh=g,
                      certificate=cert.upper() if cert else None, zone=zone,
                      registry_id=ctx.opt_str(body, "registry_id", f"{path}.registry_id", empty_ok=False),
                      source=ctx.opt_str(body, "source", f"{path}.source") or "", order=i)


def _required_str(ctx: _Ctx, body: dict[Any, Any], key: str, path: str, hint: str) -> str:
    value: str | None = ctx.opt_str(body, key, f"{path}.{key}", empty_ok=False)
    if value is None:
        ctx.fail(body, next(iter(body), key), f"{path}.{key}", "missing", hint)
    return value


def _scope(ctx: _Ctx, body: dict[Any, Any], path: str,
           zones: Mapping[str, str | None]) -> tuple[tuple[str, ...], str | None]:
    if ("clusters" in body) == ("zone" in body):
        ctx.fail(body, next(iter(body)), path, "give its scope as either clusters or zone (one of them)",
                 "e.g. clusters: [jean-zay], or zone: FR for every configured cluster in that zone")
    if "clusters" in body:
        names = ctx.str_list(body, "clusters", f"{path}.clusters", ())
        for n in names:
            if n not in zones:
                ctx.fail(body, "clusters", f"{path}.clusters", f"{n!r} is not under clusters{suggest(n, list(zones))}",
                         "an instrument covers configured clusters: " + (", ".join(zones) or "none configured"))
        if not names:
            ctx.fail(body, "clusters", f"{path}.clusters", "an empty scope", "name at least one cluster")
        return tuple(dict.fromkeys(names)), None
    zone = canonical_zone(ctx.opt_str(body, "zone", f"{path}.zone", empty_ok=False) or "")
    names = tuple(c for c, z in zones.items() if z == zone)
    if not names:
        ctx.fail(body, "zone", f"{path}.zone", f"no configured cluster is in zone {zone}",
                 "clusters in zones: " + (", ".join(f"{c} ({z})" for c, z in zones.items()) or "none configured"))
    return names, zone


def _instant(ctx: _Ctx, body: dict[Any, Any], key: str, path: str) -> datetime:
    raw = body.get(key)
    if raw is None:
        ctx.fail(body, next(iter(body)), f"{path}.{key}", "missing: the validity period needs start and end",
                 "e.g. start: 2024-01-01, end: 2025-01-01 (UTC, end exclusive)")
    if not isinstance(raw, str):
        ctx.fail(body, key, f"{path}.{key}", f"expected a date or an ISO 8601 instant, got {raw!r}")
    text = raw.strip()
    try:
        t = datetime.fromisoformat(text).replace(tzinfo=UTC) if len(text) == 10 else \
            parse_instant(text, f"{path}.{key}")
    except (ValueError, InputError):
        ctx.fail(body, key, f"{path}.{key}", f"{text!r} is not a date or an ISO 8601 instant with an offset",
                 "e.g. 2024-03-01 (UTC) or 2024-03-01T00:00:00Z")
    if (t.minute, t.second, t.microsecond) != (0, 0, 0):
        ctx.fail(body, key, f"{path}.{key}", f"{iso(t)} is not on a whole UTC hour", "instruments cover whole hours")
    return t


def _mix(ctx: _Ctx, items: list[Any], i: int, path: str) -> ResidualMix:
    body = items[i]
    if not isinstance(body, dict):
        ctx.fail(items, i, path, "expected a mapping {zone, year, g_per_kwh, source}")
    ctx.keys(body, ("zone", "year", "g_per_kwh", "source"), path)
    zone = _required_str(ctx, body, "zone", path, "the zone the factor is for, e.g. FR")
    year = ctx.opt_int(body, "year", f"{path}.year", minimum=1990)
    g = ctx.opt_number(body, "g_per_kwh", f"{path}.g_per_kwh", minimum=0.0)
    source = ctx.opt_str(body, "source", f"{path}.source", empty_ok=False)
    for key, value in (("year", year), ("g_per_kwh", g), ("source", source)):
        if value is None:
            ctx.fail(body, "zone", f"{path}.{key}", "missing: a residual mix needs zone, year, g_per_kwh and source",
                     "e.g. {zone: FR, year: 2023, g_per_kwh: 57.0, source: \"AIB European Residual Mixes 2023\"}")
    assert year is not None and g is not None and source is not None
    return ResidualMix(zone=canonical_zone(zone), year=year, g_per_kwh=g, source=source)


def _refuse_double_claims(ctx: _Ctx, items: list[Any], instruments: tuple[Instrument, ...], path: str) -> None:
    """The same MWh claimed twice: refused, naming both instruments."""
    for b in instruments:
        for a in instruments[:b.order]:
            if a.name == b.name:
                ctx.fail(items, b.order, f"{path}[{b.order}].name", f"instrument name {b.name!r} is used twice "
                         f"({path}[{a.order}])", "give each instrument its own name")
            overlap = a.start < b.end and b.start < a.end
            if not overlap:
                continue
            if a.registry_id and a.registry_id == b.registry_id:
                ctx.fail(items, b.order, f"{path}[{b.order}]", f"over-claimed: instruments {a.name!r} and {b.name!r} "
                         f"both claim registry id {a.registry_id!r} in {_when(a, b)}",
                         "the same contract or certificates count once: keep one instrument (scope it to every "
                         "cluster it covers)")
            shared = [c for c in b.clusters if c in a.clusters]
            if a.mwh is None and b.mwh is None and shared:
                ctx.fail(items, b.order, f"{path}[{b.order}]", f"overlapping: instruments {a.name!r} and {b.name!r} "
                         f"both claim all consumption of {', '.join(shared)} in {_when(a, b)}",
                         "one supplier factor per cluster and period: end one where the other starts")


def _when(a: Instrument, b: Instrument) -> str:
    return f"{iso(max(a.start, b.start))} .. {iso(min(a.end, b.end))}"
