"""Client for the Prometheus HTTP query API (Prometheus, VictoriaMetrics, Mimir, Cortex, Thanos).

Why a module of its own: everything the batch pipeline knows about a metrics store goes through
five endpoints, and each has a failure that silently corrupts a carbon report if handled casually:

* query_range refuses more than 11,000 points per series, so long reports must be split. A split that
  repeats or skips one evaluation point double-counts or loses that step's energy, so chunks are cut
  on the caller's start + k*step grid and each point lands in exactly one chunk.
* Stores restart, sit behind load balancers and rate-limit; transient failures (connection errors,
  timeouts, 429, 5xx) are retried with capped exponential backoff, while a bad query (400/422) or
  bad credentials (401/403) fail at once with a message that says what to change.
* Label values are user data (job names, namespaces). Selectors are built with `selector()`, which
  escapes them, so a value with quotes, backslashes or newlines matches exactly that series and can
  never change the shape of the query.
* Credentials come from the environment or files, never argv; they are kept out of every repr,
  log line and exception message, also when the server echoes them back raw, base64- or URL-encoded.
* Credentials go only to the configured origin: a redirect is followed only when scheme, host and
  port stay the same (wattprint.common.safehttp.SameOriginSession), else the call fails at once. requests
  strips Authorization on a cross-host redirect, but not X-Scope-OrgID or custom headers.

Results are returned raw (the JSON `data.result` lists, values as strings such as "NaN" or "+Inf"):
decoding millions of points into objects here would cost more than the HTTP round trips, so callers
convert them in bulk; `parse_value()` does one value.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from wattprint.common import safehttp
from wattprint.common.safehttp import CrossOriginRedirect, SameOriginSession, Scrubber

from . import __version__
from .errors import InputError, UpstreamError

log = logging.getLogger(__name__)

TOKEN_ENV = "WATTPRINT_PROMETHEUS_TOKEN"
PASSWORD_ENV = "WATTPRINT_PROMETHEUS_PASSWORD"
# The flag names used in messages; the CLI defines flags with these names.
URL_FLAG = "--prometheus"
TOKEN_FLAG = "--prometheus-token-file"
USER_FLAG = "--prometheus-user"
PASSWORD_FLAG = "--prometheus-password-file"
CA_FLAG = "--prometheus-ca-file"
TENANT_HEADER = "X-Scope-OrgID"  # Mimir and Cortex; Thanos needs extra_headers={"THANOS-TENANT": ...}

PROMETHEUS_MAX_POINTS = 11000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RETRY_AFTER_CAP_S = 300.0  # a server asking for more than this is down, not busy
_SNIPPET = 200
_SNIPPET_SCAN = 65536  # how much of an error body is read for the snippet (and scrubbed)


# -- values, selectors ----------------------------------------------------------------------------


def parse_value(s: str) -> float:
    """A sample value as Prometheus writes it ("1.5", "NaN", "+Inf", "-Inf") as a float."""
    try:
        return float(s)  # float() already accepts NaN/+Inf/-Inf in Prometheus' spelling
    except (TypeError, ValueError):
        raise UpstreamError("Prometheus response", f"sample value {s!r} is not a number") from None


def escape_label_value(v: str) -> str:
    """`v` escaped for a double-quoted PromQL string (without the quotes)."""
    # Backslash first, or the escapes added below would be doubled. \r and \t are not required by
    # PromQL but keep selectors on one readable line in logs; both Prometheus and MetricsQL decode them.
    return (
        v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


MATCH_OPS = ("=", "!=", "=~", "!~")


def selector(metric: str, matchers: Mapping[str, str] | None = None,
             extra: Sequence[tuple[str, str, str]] = ()) -> str:
    """A PromQL selector matching `metric` with each label exactly equal to its value.

    The name goes in a `__name__` matcher rather than in front of the braces: a bare name that is
    also a keyword or aggregation in some dialect (`on`, `sum`, `nan`, MetricsQL's many
    aggregates) would parse as that keyword. An empty `metric` selects by labels only. A label
    matched against "" selects series without that label, as in PromQL. `extra`: (label, operator,
    value) matchers a source's own rules add after those (e.g. `gpu_partition_id=~"0|"`), in order.
    """
    parts = [f'__name__="{escape_label_value(metric)}"'] if metric else []
    pairs = [(name, "=", (matchers or {})[name]) for name in sorted(matchers or {})]
    for name, op, value in [*pairs, *extra]:
        if not _LABEL_NAME.match(name) or name == "__name__":
            raise InputError(
                "label matcher", f"{name!r} is not a valid label name", "use letters, digits and _, not a leading digit"
            )
        if op not in MATCH_OPS:
            raise InputError("label matcher", f"{op!r} is not a PromQL matcher", f"use one of {', '.join(MATCH_OPS)}")
        parts.append(f'{name}{op}"{escape_label_value(value)}"')
    if not parts:
        raise InputError("selector", "no metric name and no label matchers", "give a metric name or at least one label")
    return "{" + ",".join(parts) + "}"


# -- time grid --------------------------------------------------------------------------------------


def _to_ms(dt: datetime, where: str) -> int:
    # Integer milliseconds (Prometheus' resolution) so the chunk grid never drifts as floats would.
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InputError(where, f"{dt!r} is not a timezone-aware datetime", "pass an aware UTC datetime")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _fmt_ms(ms: int) -> str:
    sign = "-" if ms < 0 else ""
    whole, frac = divmod(abs(ms), 1000)
    return f"{sign}{whole}.{frac:03d}"


def _step_ms(step_s: float) -> int:
    if isinstance(step_s, bool) or not isinstance(step_s, int | float) or not step_s > 0:
        raise InputError("step", f"step must be a positive number of seconds, got {step_s!r}")
    ms = round(step_s * 1000)
    if ms < 1:
        raise InputError("step", f"step {step_s!r}s is below Prometheus' 1 ms resolution")
    return ms


def _grid_chunks(start_ms: int, end_ms: int, step_ms: int, max_points: int) -> Iterator[tuple[int, int]]:
    n = (end_ms - start_ms) // step_ms + 1  # points start + k*step <= end
    k = 0
    while k < n:
        last = min(k + max_points, n) - 1
        yield start_ms + k * step_ms, start_ms + last * step_ms
        k = last + 1


def range_chunks(
    start: datetime, end: datetime, step_s: float, max_points: int = PROMETHEUS_MAX_POINTS
) -> Iterator[tuple[datetime, datetime]]:
    """The (first, last) evaluation instants of each query_range request covering [start, end].

    Both ends lie on the start + k*step grid, each chunk holds at most `max_points` points, and
    consecutive chunks are one step apart, so every grid point <= end is evaluated exactly once.
    """
    start_ms, end_ms = _to_ms(start, "start"), _to_ms(end, "end")
    if end_ms < start_ms:
        raise InputError("end", f"end {end.isoformat()} is before start {start.isoformat()}")
    if max_points < 1:
        raise InputError("max_points", f"max_points must be at least 1, got {max_points}")
    for a, b in _grid_chunks(start_ms, end_ms, _step_ms(step_s), max_points):
        yield _from_ms(a), _from_ms(b)


# -- configuration ----------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """`url` without user:password@ and without query string, safe for messages (and the stored endpoint)."""
    try:
        _ = urlsplit(url).port
    except ValueError:
        return "<unparseable URL>"
    return safehttp.redact_url(url).partition("?")[0]


@dataclass(frozen=True, repr=False)
class PromConfig:
    """Where the store is and how to authenticate. repr() never shows secrets."""

    url: str
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    ca_file: str | None = None
    tenant: str | None = None
    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_points: int = PROMETHEUS_MAX_POINTS
    extra_headers: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise InputError(URL_FLAG, f"{redact_url(self.url)!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                URL_FLAG, f"{redact_url(self.url)!r} is not an http(s) URL", "use e.g. http://prometheus:9090"
            )
        if parts.username is not None or parts.password is not None:
            # Credentials in a URL end up in shell history, process lists and proxy logs.
            raise InputError(
                URL_FLAG,
                "the URL contains credentials",
                f"remove user:password@ and use {USER_FLAG} with {PASSWORD_ENV} or {PASSWORD_FLAG}",
            )
        if parts.query or parts.fragment:
            raise InputError(URL_FLAG, "the URL has a query string or fragment", "drop everything after the path")
        object.__setattr__(self, "url", self.url.rstrip("/"))
        if self.bearer_token is not None and self.basic_auth is not None:
            raise InputError("credentials", "both a bearer token and basic auth are configured", "use only one")
        if not self.timeout_s > 0:
            raise InputError("timeout", f"timeout must be positive, got {self.timeout_s!r}")
        if self.retries < 0:
            raise InputError("retries", f"retries must be >= 0, got {self.retries!r}")
        if self.max_points < 1:
            raise InputError("max_points", f"max_points must be at least 1, got {self.max_points!r}")

    @property
    def auth_mechanism(self) -> str:
        if self.bearer_token is not None:
            return "bearer token"
        if self.basic_auth is not None:
            return f"basic auth (user {self.basic_auth[0]!r})"
        return "no credentials"

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never be shown (for scrubbing messages)."""
        found = [self.bearer_token or "", self.basic_auth[1] if self.basic_auth else ""]
        found += list(self.extra_headers.values())  # may carry a custom auth header
        return tuple(s for s in found if s)

    def __repr__(self) -> str:
        headers = ", ".join(sorted(self.extra_headers))  # names only: values may be credentials
        return (
            f"PromConfig(url={redact_url(self.url)!r}, auth={self.auth_mechanism!r}, tenant={self.tenant!r}, "
            f"ca_file={self.ca_file!r}, timeout_s={self.timeout_s}, retries={self.retries}, "
            f"max_points={self.max_points}, extra_headers=[{headers}])"
        )

    __str__ = __repr__

    @classmethod
    def from_sources(
        cls,
        url: str,
        *,
        token_file: str | os.PathLike[str] | None = None,
        tenant: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        user: str | None = None,
        password_file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] = os.environ,
        timeout_s: float = 30.0,
        retries: int = 5,
        max_points: int = PROMETHEUS_MAX_POINTS,
        extra_headers: Mapping[str, str] | None = None,
    ) -> PromConfig:
        """Build a config from flags, files and the environment.

        Bearer token: `token_file` if given, else $WATTPRINT_PROMETHEUS_TOKEN. Basic auth: `user`
        with the password from `password_file`, else $WATTPRINT_PROMETHEUS_PASSWORD (ignored
        without `user`). Secrets are never accepted as arguments so they cannot reach argv.
        """
        token: str | None = None
        token_from = ""
        if token_file is not None:
            token, token_from = _read_secret(token_file, TOKEN_FLAG), TOKEN_FLAG
        elif env.get(TOKEN_ENV, "").strip():
            token, token_from = env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
        basic: tuple[str, str] | None = None
        if password_file is not None and not user:
            raise InputError(PASSWORD_FLAG, "a password file was given without a user", f"add {USER_FLAG}")
        if user:
            if password_file is not None:
                password = _read_secret(password_file, PASSWORD_FLAG)
            elif env.get(PASSWORD_ENV, ""):
                password = env[PASSWORD_ENV].strip()
            else:
                raise InputError(
                    USER_FLAG, f"user {user!r} has no password", f"set ${PASSWORD_ENV} or pass {PASSWORD_FLAG}"
                )
            basic = (user, password)
        if token is not None and basic is not None:
            raise InputError(
                USER_FLAG,
                f"both basic auth and a bearer token (from {token_from}) are configured",
                "a server takes one Authorization header: use one of them",
            )
        ca: str | None = None
        if ca_file is not None:
            ca = os.fspath(ca_file)
            try:
                ssl.create_default_context(cafile=ca)  # a bad CA file fails here, not mid-report
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
                raise InputError(CA_FLAG, f"cannot load CA certificates from {ca}: {reason}",
                                 "give a readable PEM file") from None
        return cls(
            url=url,
            bearer_token=token,
            basic_auth=basic,
            ca_file=ca,
            tenant=tenant or None,
            timeout_s=timeout_s,
            retries=retries,
            max_points=max_points,
            extra_headers=dict(extra_headers or {}),
        )


def _read_secret(path: str | os.PathLike[str], flag: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(flag, f"cannot read {os.fspath(path)}: {exc.strerror or exc}",
                         "check the path and its permissions") from None
    except UnicodeDecodeError:
        raise InputError(flag, f"{os.fspath(path)} is not UTF-8 text") from None
    if not text:
        raise InputError(flag, f"{os.fspath(path)} is empty", "write the secret into it")
    return text


# -- client ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeChunk:
    """One query_range response: evaluation instants `start`..`end` (both on the grid, inclusive).

    `series` is Prometheus' `data.result` unchanged: [{"metric": {...}, "values": [[ts, "v"], ...]}].
    """

    start: datetime
    end: datetime
    series: list[dict[str, Any]]


class _Retryable(Exception):
    def __init__(self, cause: str, delay_s: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.delay_s = delay_s


class PromClient:
    """Prometheus-compatible query API over one HTTP session (connection reuse)."""

    def __init__(
        self,
        config: PromConfig,
        *,
        session: SameOriginSession | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._session = session or SameOriginSession()
        self._session.headers["User-Agent"] = f"wattprint/{__version__}"
        self._session.headers["Accept"] = "application/json"
        if config.bearer_token is not None:
            self._session.headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.basic_auth is not None:
            self._session.auth = config.basic_auth
        if config.tenant:
            self._session.headers[TENANT_HEADER] = config.tenant
        self._session.headers.update(config.extra_headers)
        # Passed on every request: a session-level verify is overridden by $REQUESTS_CA_BUNDLE.
        self._verify: str | bool = config.ca_file or True
        self._scrubber = Scrubber(config.secrets(), [config.basic_auth] if config.basic_auth else ())

    def __repr__(self) -> str:
        return f"PromClient({self.config!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PromClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- endpoints --

    def query_range(self, query: str, start: datetime, end: datetime, step_s: float,
                    max_points: int | None = None) -> Iterator[RangeChunk]:
        """Evaluate `query` at start, start+step, ... <= end; one request per chunk of `max_points` steps (None, or
        more than the config's max_points: the config's).

        Arguments are checked now, not at the first next(), so mistakes surface where they are made.
        """
        start_ms, end_ms, step_ms = _to_ms(start, "start"), _to_ms(end, "end"), _step_ms(step_s)
        if end_ms < start_ms:
            raise InputError("end", f"end {end.isoformat()} is before start {start.isoformat()}")
        steps = self.config.max_points if max_points is None else min(max_points, self.config.max_points)
        if steps < 1:
            raise InputError("max_points", f"max_points must be at least 1, got {steps}")
        return self._query_range(query, start_ms, end_ms, step_ms, steps)

    def _query_range(self, query: str, start_ms: int, end_ms: int, step_ms: int,
                     max_points: int) -> Iterator[RangeChunk]:
        step = _fmt_ms(step_ms)
        for a, b in _grid_chunks(start_ms, end_ms, step_ms, max_points):
            what = f"query_range {query!r} from {_iso(a)} to {_iso(b)} step {step}s"
            form = [("query", query), ("start", _fmt_ms(a)), ("end", _fmt_ms(b)), ("step", step)]
            # no local holds the parsed body while the caller works on this chunk: one response in memory, not two
            yield RangeChunk(_from_ms(a), _from_ms(b),
                             self._result(self._call("/api/v1/query_range", form, what), "matrix", what))

    def query(self, query: str, at: datetime) -> list[dict[str, Any]]:
        """Instant query; a scalar or string result comes back as one series with no labels."""
        t = _to_ms(at, "time")
        what = f"query {query!r} at {_iso(t)}"
        data = self._call("/api/v1/query", [("query", query), ("time", _fmt_ms(t))], what)
        if isinstance(data, dict) and data.get("resultType") in ("scalar", "string"):
            return [{"metric": {}, "value": data.get("result")}]
        return self._result(data, "vector", what)

    def series(self, match: Sequence[str], start: datetime, end: datetime) -> list[dict[str, str]]:
        """Label sets of the series matching any selector in `match` with samples in [start, end]."""
        matches = [match] if isinstance(match, str) else list(match)
        if not matches:
            raise InputError("series", "no match[] selectors given", "pass at least one selector")
        form = [("match[]", m) for m in matches]
        form += [("start", _fmt_ms(_to_ms(start, "start"))), ("end", _fmt_ms(_to_ms(end, "end")))]
        what = f"series {matches!r}"
        data = self._call("/api/v1/series", form, what)
        return self._list(data, what)

    def label_values(
        self,
        label: str,
        match: Sequence[str] = (),
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[str]:
        """Values of `label`, optionally only on series matching `match` within [start, end]."""
        if not _LABEL_NAME.match(label) and label != "__name__":
            raise InputError("label", f"{label!r} is not a valid label name")
        params = [("match[]", m) for m in ([match] if isinstance(match, str) else match)]
        if start is not None:
            params.append(("start", _fmt_ms(_to_ms(start, "start"))))
        if end is not None:
            params.append(("end", _fmt_ms(_to_ms(end, "end"))))
        what = f"label values of {label!r}"
        # Prometheus serves this endpoint on GET only.
        return self._list(self._call(f"/api/v1/label/{label}/values", params, what, method="GET"), what)

    # -- plumbing --

    def _result(self, data: Any, kind: str, what: str) -> list[dict[str, Any]]:
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise UpstreamError(self._where(""), f"{what}: response has no data.result list")
        if data.get("resultType") != kind:
            raise UpstreamError(self._where(""), f"{what}: expected a {kind} result, got {data.get('resultType')!r}")
        return data["result"]

    def _list(self, data: Any, what: str) -> list[Any]:
        if not isinstance(data, list):
            raise UpstreamError(self._where(""), f"{what}: expected a list in data, got {type(data).__name__}")
        return data

    def _where(self, path: str) -> str:
        return redact_url(self.config.url + path)

    def _scrub(self, text: str) -> str:
        return self._scrubber(text)

    def _snippet(self, resp: requests.Response) -> str:
        # scrubbed before it is cut: a secret split by the cut would escape a later scrub
        return self._scrubber.snippet(resp.text[:_SNIPPET_SCAN], _SNIPPET)

    def _backoff(self, attempt: int) -> float:
        # Deterministic (no jitter): one batch client, not a fleet that could synchronise its retries.
        return float(min(self.config.backoff_s * 2 ** (attempt - 1), self.config.max_backoff_s))

    def _call(self, path: str, form: list[tuple[str, str]], what: str, *, method: str = "POST") -> Any:
        url = self.config.url + path
        attempts = self.config.retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(method, url, path, form, what)
            except _Retryable as exc:
                last = exc.cause
                if attempt == attempts:
                    break
                delay = self._backoff(attempt) if exc.delay_s is None else exc.delay_s
                log.warning(
                    "%s: %s failed (attempt %d of %d: %s); retrying in %.1f s",
                    self._where(path), what, attempt, attempts, last, delay,
                )
                self._sleep(delay)
        raise UpstreamError(
            self._where(path),
            f"{what} failed after {attempts} attempts; last error: {last}",
            "check that the server is up and reachable; raise the timeout for slow queries",
        )

    def _attempt(self, method: str, url: str, path: str, form: list[tuple[str, str]], what: str) -> Any:
        where = self._where(path)
        try:
            if method == "GET":
                resp = self._session.get(url, params=form, timeout=self.config.timeout_s, verify=self._verify)
            else:
                resp = self._session.post(url, data=form, timeout=self.config.timeout_s, verify=self._verify)
        except CrossOriginRedirect as exc:
            # the same answer on every attempt: not retried
            raise UpstreamError(
                where, f"{what}: {exc.problem}", f"if {exc.target_origin} is the Prometheus API, use it as {URL_FLAG}"
            ) from None
        except requests.exceptions.SSLError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "hostname" in str(exc).lower():
                # A wrong CA or name is not transient; retrying would only delay the message.
                raise UpstreamError(
                    where,
                    f"TLS certificate verification failed: {self._scrub(_root_cause(exc))}",
                    f"pass the CA that signed the server certificate with {CA_FLAG}",
                ) from None
            raise _Retryable(f"TLS error: {self._scrub(_root_cause(exc))}") from None
        except requests.exceptions.Timeout:
            raise _Retryable(f"no response within {self.config.timeout_s:g} s") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"connection failed: {self._scrub(_root_cause(exc))}") from None
        except OSError as exc:
            # The rest (a CA bundle path from $REQUESTS_CA_BUNDLE that does not exist, redirect
            # loops, invalid URLs) will fail the same way on every attempt.
            raise UpstreamError(
                where,
                f"{what}: request failed: {self._scrub(_root_cause(exc))}",
                f"check {URL_FLAG}, {CA_FLAG} and $REQUESTS_CA_BUNDLE",
            ) from None

        status = resp.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {self._snippet(resp)}", _retry_after(resp))
        body: Any
        try:
            body = resp.json()
        except ValueError:
            body = None
        error = self._scrubber.snippet(str(body.get("error", "")), _SNIPPET * 5) if isinstance(body, dict) else ""
        if status in (400, 422):
            too_many = "too many samples" in error
            raise InputError(
                what,
                f"the server rejected it (HTTP {status}): {error or self._snippet(resp)}",
                # Prometheus's --query.max-samples (Thanos, Mimir: their own limits) is below one request's points
                "lower ingest.max_points_per_request in the config below the server's sample limit"
                if too_many else "fix the PromQL or the selector",
            )
        if status in (401, 403):
            tenant = f" for tenant {self.config.tenant!r}" if self.config.tenant else ""
            hints = {
                "bearer token": f"check ${TOKEN_ENV} or {TOKEN_FLAG}",
                "no credentials": f"the server wants credentials: set ${TOKEN_ENV} or {TOKEN_FLAG}, "
                f"or {USER_FLAG} with a password",
            }
            raise UpstreamError(
                where,
                f"authentication failed (HTTP {status}) using {self.config.auth_mechanism}{tenant}",
                hints.get(self.config.auth_mechanism, f"check {USER_FLAG} and ${PASSWORD_ENV} or {PASSWORD_FLAG}"),
            )
        if status != 200:
            raise UpstreamError(
                where,
                f"{what}: unexpected HTTP {status}: {self._snippet(resp)}",
                f"check {URL_FLAG} (scheme, host, port and any path prefix such as /prometheus)",
            )
        if not isinstance(body, dict):
            raise UpstreamError(
                where,
                f"{what}: response is not Prometheus API JSON: {self._snippet(resp)!r}",
                f"check that {URL_FLAG} points at a Prometheus-compatible API, not a proxy or login page",
            )
        if body.get("status") != "success":
            raise UpstreamError(where, f"{what}: status {body.get('status')!r}: {error or self._snippet(resp)}")
        for warning in body.get("warnings") or ():
            log.warning("%s: %s: server warning: %s", where, what, self._scrub(str(warning)))
        return body.get("data")


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            delay = (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(delay, 0.0), _RETRY_AFTER_CAP_S)


def _root_cause(exc: BaseException) -> str:
    # requests wraps urllib3 wraps socket errors; the innermost one says what actually happened.
    cur, seen = exc, {id(exc)}
    while True:
        nested = [a for a in (getattr(cur, "reason", None), *cur.args) if isinstance(a, BaseException)]
        nxt = nested[0] if nested else (cur.__cause__ or cur.__context__)
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        cur = nxt
    return f"{type(cur).__name__}: {cur}"


def _iso(ms: int) -> str:
    return _from_ms(ms).isoformat().replace("+00:00", "Z")
