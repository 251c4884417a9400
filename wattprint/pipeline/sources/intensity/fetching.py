"""Fetch hourly/half-hourly intensity from Electricity Maps, the UK Carbon Intensity API and WattTime.

Each source limits the range of one request, so [start, end) is split into contiguous windows.
Points are filtered to those overlapping [start, end) and checked with check_points (which also
drops the identical points that neighbouring windows both return).

Credentials (never logged, never in errors):
  electricitymaps: ELECTRICITYMAPS_TOKEN, or a file via token_file / ELECTRICITYMAPS_TOKEN_FILE (header auth-token)
  watttime:        WATTTIME_USERNAME (or WATTTIME_USERNAME_FILE) and WATTTIME_PASSWORD, or a file via
                   password_file / WATTTIME_PASSWORD_FILE; exchanged at /login (basic auth) for a bearer token
  uk:              none
A redirect is followed only within the origin of --base-url (wattprint.common.safehttp.SameOriginSession): a custom
header such as auth-token would otherwise go to whatever host a 302 names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wattprint.common.safehttp import SameOriginSession

from ...errors import InputError, UpstreamError
from ...records import IntensityPoint
from ...timeutil import iso
from ...zones import canonical_zone
from .._text import check_no_surrogates
from . import electricitymaps, uk, watttime
from ._common import ParseResult
from ._http import get_json, secret
from .checks import check_points

BASE_URLS = {
    "electricitymaps": "https://api.electricitymaps.com",
    "uk": "https://api.carbonintensity.org.uk",
    "watttime": "https://api.watttime.org",
}
SOURCES = tuple(BASE_URLS)
# Per-request range limits. Electricity Maps past-range: 10 days at hourly granularity (API docs);
# UK Carbon Intensity: 14 days for /intensity and /regional/intensity; WattTime v3 historical: 32 days.
MAX_WINDOW = {"electricitymaps": timedelta(days=10), "uk": timedelta(days=14), "watttime": timedelta(days=32)}


def windows(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Contiguous [a, b) windows of at most `size` covering [start, end)."""
    a = start
    while a < end:
        b = min(a + size, end)
        yield a, b
        a = b


def _uk_minute(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _as_input(e: InputError) -> UpstreamError:
    return UpstreamError(e.where, f"unexpected response: {e.problem}", "the API returned data wattprint cannot read")


class _Client:
    def __init__(self, source: str, base_url: str | None, session: SameOriginSession | None,
                 retries: int, backoff_s: float, timeout_s: float) -> None:
        self.source = source
        self.base = (base_url or BASE_URLS[source]).rstrip("/")
        if "@" in urlsplit(self.base).netloc:
            # requests would send them as basic auth, and every message names the URL
            raise InputError("--base-url", "the URL contains credentials (user:password@)",
                             "remove them; API credentials come from --token-file or the environment")
        self.session = session or SameOriginSession()
        self.kw: dict[str, Any] = {"retries": retries, "backoff_s": backoff_s, "timeout_s": timeout_s}

    def get(self, path: str, parse: Callable[[Any, str], ParseResult], *, secrets: tuple[str, ...] = (),
            **kw: Any) -> ParseResult:
        url = f"{self.base}{path}"
        params = kw.get("params")
        label = f"{url}?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else url
        body = get_json(self.session, url, what=f"{self.source} GET {url}", secrets=secrets, **kw, **self.kw)
        try:
            check_no_surrogates(body, label)
            return parse(body, label)
        except InputError as e:
            raise _as_input(e) from None


def _electricitymaps(c: _Client, zone: str, a: datetime, b: datetime, basis: str | None,
                     token_file: str | Path | None) -> Iterator[ParseResult]:
    token = secret("ELECTRICITYMAPS_TOKEN", token_file,
                   hint="set ELECTRICITYMAPS_TOKEN or ELECTRICITYMAPS_TOKEN_FILE (a file holding the token)")
    for wa, wb in windows(a, b, MAX_WINDOW["electricitymaps"]):
        params = {"zone": zone, "start": iso(wa), "end": iso(wb)}
        if basis:
            params["emissionFactorType"] = basis
        yield c.get("/v3/carbon-intensity/past-range", partial(electricitymaps.parse_obj, basis=basis, empty_ok=True),
                    params=params, headers={"auth-token": token}, secrets=(token,))


def _uk(c: _Client, zone: str, a: datetime, b: datetime) -> Iterator[ParseResult]:
    z = zone.strip().upper()
    region = z[3:] if z.startswith("GB-") else (z if z.isdigit() else None)
    if region is None and z not in ("GB", "UK"):
        raise InputError("--zone", f"{zone!r} is not a UK Carbon Intensity zone",
                         "use GB for the national series or GB-<regionid> (1-17) for a region, e.g. GB-13 for London")
    if region is not None and not region.isdigit():
        raise InputError("--zone", f"region {region!r} is not a number", "use GB-<regionid>, e.g. GB-13 for London")
    out_zone = f"GB-{region}" if region else "GB"
    for wa, wb in windows(a, b, MAX_WINDOW["uk"]):
        rng = f"{_uk_minute(wa)}/{_uk_minute(wb)}"
        path = f"/regional/intensity/{rng}/regionid/{region}" if region else f"/intensity/{rng}"
        yield c.get(path, partial(uk.parse_obj, zone=out_zone, empty_ok=True))


def _watttime(c: _Client, zone: str, a: datetime, b: datetime, password_file: str | Path | None,
              username: str | None) -> Iterator[ParseResult]:
    hint = "set WATTTIME_USERNAME and WATTTIME_PASSWORD (or WATTTIME_PASSWORD_FILE)"
    user = username or secret("WATTTIME_USERNAME", hint=hint)
    password = secret("WATTTIME_PASSWORD", password_file, hint=hint)
    login = get_json(c.session, f"{c.base}/login", what=f"watttime GET {c.base}/login", auth=(user, password),
                     secrets=(password,), **c.kw)
    token = login.get("token") if isinstance(login, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamError(f"watttime GET {c.base}/login", "no token in the login response", "check the credentials")
    for wa, wb in windows(a, b, MAX_WINDOW["watttime"]):
        params = {"region": zone, "start": iso(wa), "end": iso(wb), "signal_type": "co2_moer"}
        yield c.get("/v3/historical", partial(watttime.parse_obj, zone=zone, empty_ok=True), params=params,
                    headers={"Authorization": f"Bearer {token}"}, secrets=(token, password))


def fetch(source: str, zone: str, start: datetime, end: datetime, *, base_url: str | None = None,
          basis: str | None = None, token_file: str | Path | None = None, password_file: str | Path | None = None,
          username: str | None = None, session: SameOriginSession | None = None, retries: int = 2,
          backoff_s: float = 1.0, timeout_s: float = 30.0) -> list[IntensityPoint]:
    """Intensity points of `zone` overlapping [start, end) from `source` (electricitymaps, uk, watttime), with the
    zone in canonical spelling (`pipeline.zones`).

    `basis` (electricitymaps only): lifecycle (API default) or direct. For uk, zone is GB or GB-<regionid>;
    for watttime it is a WattTime region such as CAISO_NORTH. A range the API has no data for gives [].
    """
    if source not in BASE_URLS:
        raise InputError("--source", f"unknown intensity source {source!r}", f"use one of {', '.join(SOURCES)}")
    for flag, dt in (("--start", start), ("--end", end)):
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise InputError(flag, "time has no timezone", "give an ISO 8601 time with Z or an offset")
    if end <= start:
        raise InputError("--end", f"end {iso(end)} is not after start {iso(start)}", "swap or widen the range")
    if not zone or not zone.strip():
        raise InputError("--zone", "no zone given", "pass --zone")
    zone = canonical_zone(zone)     # the APIs' zone ids are upper case (FR, US-CAL-CISO, CAISO_NORTH, GB-13)
    if basis is not None and (source != "electricitymaps" or basis not in ("lifecycle", "direct")):
        raise InputError("--basis", f"basis {basis!r} is not available from {source}",
                         "use lifecycle or direct with electricitymaps; uk is direct and watttime marginal")
    c = _Client(source, base_url, session, retries, backoff_s, timeout_s)
    if source == "electricitymaps":
        results = _electricitymaps(c, zone, start, end, basis, token_file)
    elif source == "uk":
        results = _uk(c, zone, start, end)
    else:
        results = _watttime(c, zone, start, end, password_file, username)
    try:
        points = [p for r in results for p in r.points if p.end > start and p.start < end]
    finally:
        if session is None:
            c.session.close()
    try:
        return check_points(points)
    except InputError as e:
        raise _as_input(e) from None
