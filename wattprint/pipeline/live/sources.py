"""Live intensity adapters for `wattprint serve-intensity`: the value in force now, per zone, from one source.

Each adapter answers `current(zone, now, session)` with one `LiveValue`, or raises `RefreshError` with one of
`REASONS` (the `reason` label of `wattprint_grid_intensity_refresh_errors_total`). They reuse the batch
pipeline's HTTP helper (`get_json`, secrets scrubbed from every message), parsers and checks; the only
differences are one attempt per refresh (the next refresh is the retry) and that a request's outcome is
read from the session (`RecordingSession`), not from message text.

Which request each API gets (a short window around now, or its "latest" endpoint):
  electricitymaps  GET /v3/carbon-intensity/latest?zone=Z (header auth-token): the current hour's record
  uk               GET /intensity/{now-3h}/{now+1h} (GB) or /regional/intensity/.../regionid/N (GB-N): half-hours
  watttime         GET /login (basic auth) then /v3/historical over [now-1h, now]: 5-minute co2_moer points
  csv              the generic CSV file (timestamp,zone,intensity_g_per_kwh), read once per change for all zones
  annual           the shipped annual table (wattprint/pipeline/data/intensity_annual.csv)
The point covering `now` wins; else the most recent one that ended at most `max_age` ago; else `no_data`.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import requests

from wattprint.common.logs import kv
from wattprint.common.safehttp import CrossOriginRedirect, SameOriginSession

from ..errors import InputError, UpstreamError
from ..records import IntensityPoint
from ..sources.intensity import electricitymaps, embedded, generic_csv, watttime
from ..sources.intensity._common import UnreadableFile, check_basis, iter_lines, open_regular
from ..sources.intensity._http import get_json, secret
from ..sources.intensity.checks import check_points
from ..sources.intensity.fetching import BASE_URLS
from ..sources.intensity.fetching import fetch as fetch_window
from ..timeutil import iso
from ..verb_requests import SERVE_SOURCES
from ..zones import canonical_zone, same_zone

log = logging.getLogger("wattprint.serve_intensity")

SOURCES = SERVE_SOURCES                # --source; defined with the flags' choices (verb_requests.py)
API_SOURCES = ("electricitymaps", "uk", "watttime")
REASONS = ("timeout", "connection", "http", "parse", "no_data")
ANNUAL_LABEL = "annual_table"          # the `source` label of a value from the shipped table
WORLD = "world"
HOUR = timedelta(hours=1)


class RefreshError(Exception):
    """One failed refresh: `reason` is one of REASONS, `message` one line without secrets."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LiveValue:
    """The intensity served for a zone, and the interval of the source's point it came from."""

    g_per_kwh: float
    basis: str
    source: str              # the metric's `source` label: electricitymaps, uk, watttime, csv, annual_table
    start: datetime | None = None
    end: datetime | None = None
    estimated: bool = False


class RecordingSession(SameOriginSession):
    """A requests session that remembers how its last request ended: timeout, connection, http (>= 400) or ok.

    The batch helper turns every failure into an UpstreamError with a human message; the refresh-error
    reason is taken from here instead, so it does not depend on that wording. Redirects stay on the
    configured origin (SameOriginSession); a refused one counts as `http`, as the answer was an HTTP one.
    """

    outcome = ""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> requests.Response:
        self.outcome = ""
        try:
            resp = super().request(method, url, *args, **kw)
        except CrossOriginRedirect:
            self.outcome = "http"
            raise
        except requests.Timeout:
            self.outcome = "timeout"
            raise
        except requests.RequestException as exc:
            # a body that stops arriving is a read timeout that requests reports as a ConnectionError
            self.outcome = "timeout" if "timed out" in str(exc).lower() else "connection"
            raise
        self.outcome = "http" if resp.status_code >= 400 else "ok"
        return resp


def classify(exc: Exception, session: RecordingSession | None) -> RefreshError:
    """The RefreshError for whatever a fetch raised."""
    if isinstance(exc, RefreshError):
        return exc
    message = exc.message() if isinstance(exc, UpstreamError | InputError) else f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    outcome = session.outcome if session is not None else ""
    if outcome in ("timeout", "connection", "http"):
        return RefreshError(outcome, message)
    # the request answered 2xx (or none was made) but its body was not the data expected
    return RefreshError("parse", message)


def pick(points: Sequence[IntensityPoint], zone: str, now: datetime, max_age: timedelta) -> IntensityPoint:
    """The point in force at `now`, else the most recent one that ended at most `max_age` ago."""
    mine = [p for p in points if same_zone(p.zone, zone)]
    covering = [p for p in mine if p.start <= now < p.end]
    if covering:
        return max(covering, key=lambda p: p.start)
    past = [p for p in mine if p.end <= now and now - p.end <= max_age]
    if past:
        return max(past, key=lambda p: p.end)
    latest = max((p.end for p in mine if p.end <= now), default=None)
    seen = f"the latest ended at {iso(latest)}" if latest else "none ended before now"
    raise RefreshError("no_data", f"no value for zone {zone} at {iso(now)}: {len(mine)} point(s), {seen}")


def _value(p: IntensityPoint, label: str) -> LiveValue:
    return LiveValue(g_per_kwh=p.g_per_kwh, basis=p.basis, source=label, start=p.start, end=p.end,
                     estimated=p.is_estimated)


def annual(zone: str) -> tuple[LiveValue, bool]:
    """The shipped annual value of a zone and True, or the world value and False when the zone has no row."""
    row = embedded.lookup(zone)
    found = row is not None
    row = row or embedded.world()
    return LiveValue(g_per_kwh=row.g_per_kwh, basis=row.basis, source=ANNUAL_LABEL), found


class _Credential:
    """A secret read at start-up (InputError then) and again on each use, so a rotated file is picked up.

    A later read that fails keeps the last value and logs once; the secret itself is never logged.
    """

    def __init__(self, name: str, file_arg: str | None, hint: str) -> None:
        self.name, self.file_arg, self.hint = name, file_arg, hint
        self._value = secret(name, file_arg, hint=hint)
        self._failing = False

    def get(self) -> str:
        try:
            self._value = secret(self.name, self.file_arg, hint=self.hint)
            self._failing = False
        except InputError as exc:
            if not self._failing:
                log.warning("credential re-reading failed, keeping the last one", extra=kv(credential=self.name,
                                                                                       err=exc.message()))
            self._failing = True
        return self._value


class Source:
    """One live source. `label` is the metric's `source` label; `basis` the basis it serves."""

    name = ""
    label = ""
    basis = "lifecycle"
    needs_session = False
    max_age = timedelta(hours=3)     # how old the latest point may be when none covers now (--max-age)

    def unserved(self, zone: str) -> str | None:
        """Why this source cannot serve `zone` at all (it then gets the annual value), or None."""
        return "the world average has no live source" if zone.lower() == WORLD else None

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        raise NotImplementedError


class AnnualSource(Source):
    name, label = "annual", ANNUAL_LABEL

    def unserved(self, zone: str) -> str | None:
        return None if embedded.lookup(zone) is not None else "no row in the shipped annual table"

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        value, found = annual(zone)
        if not found:
            raise RefreshError("no_data", f"zone {zone} has no row in the shipped annual table")
        return value


class ElectricityMapsSource(Source):
    name = label = "electricitymaps"
    needs_session = True
    PATH = "/v3/carbon-intensity/latest"

    def __init__(self, base_url: str | None, token_file: str | None, basis: str, timeout_s: float) -> None:
        if basis not in ("lifecycle", "direct"):
            raise InputError("--config", f"intensity.basis {basis!r} is not available from electricitymaps",
                             "set intensity.basis to lifecycle or direct")
        self.base = (base_url or BASE_URLS["electricitymaps"]).rstrip("/")
        self.basis = basis
        self.timeout_s = timeout_s
        self.token = _Credential("ELECTRICITYMAPS_TOKEN", token_file,
                                 "pass --token-file FILE, or set ELECTRICITYMAPS_TOKEN or ELECTRICITYMAPS_TOKEN_FILE")

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        assert session is not None
        token = self.token.get()
        params = {"zone": zone}
        if self.basis != "lifecycle":       # lifecycle is the API default; ask for direct explicitly
            params["emissionFactorType"] = self.basis
        url = f"{self.base}{self.PATH}"
        body = get_json(session, url, what=f"electricitymaps GET {url}?zone={zone}", params=params,
                        headers={"auth-token": token}, secrets=(token,), retries=0, timeout_s=self.timeout_s)
        try:
            points = electricitymaps.parse_obj(body, f"electricitymaps {self.PATH}?zone={zone}", zone=zone,
                                               basis=self.basis, empty_ok=True).points
        except InputError as exc:
            raise RefreshError("parse", f"unexpected response: {exc.message()}") from None
        return _value(pick(points, zone, now, self.max_age), self.label)


class UkSource(Source):
    name = label = "uk"
    basis = "direct"
    needs_session = True

    def __init__(self, base_url: str | None, timeout_s: float) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s

    def unserved(self, zone: str) -> str | None:
        z = zone.strip().upper()
        if z in ("GB", "UK") or (z.startswith("GB-") and z[3:].isdigit()) or z.isdigit():
            return None
        return "not a UK Carbon Intensity zone (GB, or GB-<regionid> 1-17)"

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        hour = now.replace(minute=0, second=0, microsecond=0)
        points = fetch_window("uk", zone, hour - 3 * HOUR, hour + HOUR, base_url=self.base_url, session=session,
                              retries=0, backoff_s=0.0, timeout_s=self.timeout_s)
        out_zone = points[0].zone if points else zone
        return _value(pick(points, out_zone, now, self.max_age), self.label)


class WattTimeSource(Source):
    name = label = "watttime"
    basis = "marginal"
    needs_session = True

    def __init__(self, base_url: str | None, password_file: str | None, timeout_s: float) -> None:
        self.base = (base_url or BASE_URLS["watttime"]).rstrip("/")
        self.timeout_s = timeout_s
        hint = "set WATTTIME_USERNAME and WATTTIME_PASSWORD (or --token-file / WATTTIME_PASSWORD_FILE)"
        self.user = _Credential("WATTTIME_USERNAME", None, hint)
        self.password = _Credential("WATTTIME_PASSWORD", password_file, hint)

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        assert session is not None
        user, password = self.user.get(), self.password.get()
        kw: dict[str, Any] = {"retries": 0, "timeout_s": self.timeout_s}
        login = get_json(session, f"{self.base}/login", what=f"watttime GET {self.base}/login", auth=(user, password),
                         secrets=(password,), **kw)
        token = login.get("token") if isinstance(login, dict) else None
        if not isinstance(token, str) or not token:
            raise RefreshError("parse", f"watttime GET {self.base}/login: no token in the login response")
        url = f"{self.base}/v3/historical"
        params = {"region": zone, "start": iso(now - HOUR), "end": iso(now), "signal_type": "co2_moer"}
        body = get_json(session, url, what=f"watttime GET {url}?region={zone}", params=params,
                        headers={"Authorization": f"Bearer {token}"}, secrets=(token, password), **kw)
        try:
            points = watttime.parse_obj(body, f"watttime /v3/historical?region={zone}", zone=zone,
                                        empty_ok=True).points
        except InputError as exc:
            raise RefreshError("parse", f"unexpected response: {exc.message()}") from None
        return _value(pick(points, zone, now, self.max_age), self.label)


US = timedelta(microseconds=1)
HOUR_US = 3600 * 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CSV_SIZE_HINT = ("keep the hours still to come and the last few in it (the hour in force is served; older rows are "
                 "never read again), or split it per zone and run one serve-intensity per file")


@dataclass(frozen=True)
class ZoneSeries:
    """One zone of the live CSV: the start (us since 1970) and value of each hour, sorted, disjoint."""

    starts: array[int]
    values: array[float]


class _Building:
    """One zone while the file is read: what the checks and their messages need, ~26 bytes a row."""

    def __init__(self) -> None:
        self.starts: array[int] = array("q")
        self.values: array[float] = array("d")
        self.lines: array[int] = array("Q")
        self.spelling: array[int] = array("H")
        self.spellings: dict[str, int] = {}
        self.ordered = True


def read_csv_table(f: BinaryIO, name: str, basis: str) -> dict[str, ZoneSeries]:
    """The generic CSV read as a stream into one ZoneSeries per canonical zone, with the checks (and messages) of
    `intensity import`: a bad row, two spellings of a zone in one hour, conflicting or overlapping hours.

    A row costs 16 bytes once read (26 while reading) instead of an IntensityPoint's ~470, and the text is
    never held whole: the file is bounded by MAX_INPUT_BYTES, the memory by the rows.
    """
    b = check_basis(basis, default="lifecycle")
    zones: dict[str, _Building] = {}
    canonical: dict[str, str] = {}
    rows = 0
    for row in generic_csv.iter_rows(iter_lines(f, name, hint=CSV_SIZE_HINT), name):
        rows += 1
        cz = canonical.get(row.zone)
        if cz is None:
            cz = canonical[row.zone] = canonical_zone(row.zone)
        z = zones.get(cz)
        if z is None:
            z = zones[cz] = _Building()
        if row.start < EPOCH:
            check_points([_point(row.zone, row.start, row.g_per_kwh, b, name, row.line)])   # raises its message
        start = (row.start - EPOCH) // US
        if z.starts and start < z.starts[-1]:
            z.ordered = False
        spelling = z.spellings.setdefault(row.zone, len(z.spellings))
        z.starts.append(start)
        z.values.append(row.g_per_kwh)
        z.lines.append(row.line)
        z.spelling.append(spelling)
    if not rows:
        raise generic_csv.no_rows(name)
    return {cz: _series(z, b, name) for cz, z in zones.items()}


def _point(zone: str, start: datetime, value: float, basis: str, name: str, line: int) -> IntensityPoint:
    return IntensityPoint(zone=zone, start=start, end=start + HOUR, g_per_kwh=value, basis=basis,
                          source=generic_csv.SOURCE, origin=f"{name}:{line}")


def _series(z: _Building, basis: str, name: str) -> ZoneSeries:
    """The zone's hours sorted, identical duplicates dropped; a conflict or overlap is check_points' InputError."""
    # sorted() is stable: rows of one start stay in file order, as `intensity import` sees them
    order: Sequence[int] = range(len(z.starts)) if z.ordered else sorted(range(len(z.starts)),
                                                                         key=z.starts.__getitem__)
    names = list(z.spellings)
    keep: array[int] = array("Q")
    for i in order:
        if keep and z.starts[i] - z.starts[keep[-1]] < HOUR_US:
            prev = keep[-1]
            pair = [_point(names[z.spelling[k]], EPOCH + z.starts[k] * US, z.values[k], basis, name, z.lines[k])
                    for k in (prev, i)]
            check_points(pair)             # raises unless the two rows are the same hour, value and spelling
            continue
        keep.append(i)
    if len(keep) == len(z.starts) and z.ordered:
        return ZoneSeries(z.starts, z.values)
    return ZoneSeries(array("q", (z.starts[i] for i in keep)), array("d", (z.values[i] for i in keep)))


class CsvSource(Source):
    """The generic CSV, read once per change of the file and shared by every zone's refresh thread.

    The file is opened non-blocking and must be a regular file of at most MAX_INPUT_BYTES (a FIFO once hung
    the start, or the refresh threads until a restart). A change is a new (device, inode, mtime, size), so an
    atomic replace (a ConfigMap update, `mv`) is seen even within one mtime tick. A file that fails is failed
    once per change too: the next refreshes count the same error without reading it again, and the zones keep
    serving their last good value until a good file appears.
    """

    name = label = "csv"

    def __init__(self, path: str, basis: str) -> None:
        self.path = Path(path)
        self.basis = check_basis(basis, default="lifecycle")
        self._lock = threading.Lock()     # one reader at a time: the other zones wait for its table
        self._stamp: tuple[int, int, int, int] | None = None
        self._table: dict[str, ZoneSeries] = {}
        self._failure: RefreshError | None = None
        try:
            self._load()                             # at start-up a bad file is a bad flag (exit 2)
        except RefreshError as exc:
            # a parse error's message already says what to change in the file
            raise InputError("--csv", exc.message, "check the path" if exc.reason == "connection" else "") from None

    def _load(self) -> dict[str, ZoneSeries]:
        with self._lock:
            try:
                f, st = open_regular(self.path, hint=CSV_SIZE_HINT)
            except UnreadableFile as exc:
                raise RefreshError("connection", f"{self.path}: cannot read the file ({exc.why})") from None
            except InputError as exc:           # too large: the content is the problem
                self._stamp, self._failure = None, None
                raise RefreshError("parse", exc.message()) from None
            with f:
                stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    if self._failure is not None:
                        raise RefreshError(self._failure.reason, self._failure.message)
                    return self._table
                t0 = time.monotonic()
                try:
                    table = read_csv_table(f, str(self.path), self.basis)
                except InputError as exc:
                    self._stamp, self._failure = stamp, RefreshError("parse", exc.message())
                    raise RefreshError("parse", exc.message()) from None
                except OSError as exc:
                    raise RefreshError("connection", f"{self.path}: cannot read the file ({exc.strerror})") from None
            self._stamp, self._table, self._failure = stamp, table, None
        log.info("csv read", extra=kv(file=self.path, bytes=st.st_size, zones=len(table),
                                      hours=sum(len(z.starts) for z in table.values()),
                                      took=f"{time.monotonic() - t0:.2f}s"))
        return table

    def current(self, zone: str, now: datetime, session: RecordingSession | None) -> LiveValue:
        series = self._load().get(canonical_zone(zone))
        starts, values = (series.starts, series.values) if series is not None else (array("q"), array("d"))
        t = (now - EPOCH) // US
        i = bisect.bisect_right(starts, t) - 1
        # hours are sorted and disjoint: the last one that started by now either covers now or is the last that
        # ended, which is served while it is at most --max-age old
        if i >= 0 and (t < starts[i] + HOUR_US or t - (starts[i] + HOUR_US) <= self.max_age // US):
            start = EPOCH + starts[i] * US
            return LiveValue(g_per_kwh=values[i], basis=self.basis, source=self.label, start=start, end=start + HOUR)
        seen = f"the latest ended at {iso(EPOCH + (starts[i] + HOUR_US) * US)}" if i >= 0 else "none ended before now"
        raise RefreshError("no_data", f"no value for zone {zone} at {iso(now)}: {len(starts)} point(s), {seen}")


def build(name: str, *, base_url: str | None, token_file: str | None, csv: str | None, basis: str,
          timeout_s: float, max_age_s: float) -> Source:
    """The source named by --source; InputError (exit 2) for a missing credential or an unusable file."""
    source: Source
    if name == "electricitymaps":
        source = ElectricityMapsSource(base_url, token_file, basis, timeout_s)
    elif name == "uk":
        source = UkSource(base_url, timeout_s)
    elif name == "watttime":
        source = WattTimeSource(base_url, token_file, timeout_s)
    elif name == "csv":
        assert csv is not None
        source = CsvSource(csv, basis)
    else:
        source = AnnualSource()
    source.max_age = timedelta(seconds=max_age_s)
    return source
