"""Read GPUs from a dcgm-exporter ``/metrics`` page instead of NVML.

For nodes where DCGM already owns the GPUs (e.g. the NVIDIA GPU Operator), a
second NVML client is unwanted, so we scrape the page dcgm-exporter already
serves. The page format drifted across releases (``Hostname`` -> ``hostname``,
``UUID``/``uuid``, HELP/TYPE lines present or not), so labels and metric names
are matched loosely. With MIG, current releases repeat the whole board's power
and energy on every MIG-instance series, so values are taken once per board
(keyed by UUID) and never summed.

Credentials: basic auth with --dcgm-username and a password from --dcgm-password-file (re-read when the
file changes, so a rotated secret is picked up) or $WATTPRINT_DCGM_PASSWORD; never in the URL, whose
user:password@ would land in every failed-poll warning. Requests follow redirects only within the URL's
origin (safehttp.SameOriginSession), and no message carries the password, raw or encoded.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from urllib.parse import urlsplit

import requests

from ...common.logs import kv
from ...common.safehttp import CrossOriginRedirect, SameOriginSession, Scrubber, redact_url
from ...common.secretfile import SecretFile, SecretFileError
from ..mig import board_slices, profile_slices
from .base import BackendError, BackendUnavailable, GpuInfo, GpuReading, MigInstance, id_order
from .exposition import Sample, parse

log = logging.getLogger("wattprint.dcgm")

URL_FLAG = "--dcgm-url"
USER_FLAG = "--dcgm-username"
PASSWORD_FILE_FLAG = "--dcgm-password-file"
PASSWORD_ENV = "WATTPRINT_DCGM_PASSWORD"

# DCGM field -> GpuReading field. Several DCGM fields may feed one reading field;
# the first one listed wins, because the enforced limit is what actually caps the board.
_FIELDS: dict[str, str] = {
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy",
    "DCGM_FI_DEV_POWER_USAGE": "power",
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": "limit",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "limit",
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "fb_used_mib",
}
_PRIORITY = {name: i for i, name in enumerate(_FIELDS)}
# A MIG instance's graphics-engine activity (ratio 0-1, a DCGM profiling field): weighs the split of the board's
# energy among its instances (mig.py). Not in dcgm-exporter's default counters: added to its counters CSV.
_ACTIVITY = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
# Skipped lines are counted per family; a page of junk names must not grow the metrics page without bound.
_MAX_SKIPPED_FAMILIES = 32
OTHER_FAMILY = "other"
# A dcgm page for 8 GPUs with pod labels is a few MB; anything far larger is not dcgm-exporter.
_MAX_BODY_BYTES = 32 * 1024 * 1024
_BACKOFF_S = 0.1


def _label(labels: dict[str, str], *names: str) -> str:
    for n in names:
        if labels.get(n):
            return labels[n]
    return ""


def _short(text: str, limit: int = 100, scrub: Scrubber | None = None) -> str:
    """Page content may be huge or hostile; never put more than a snippet into logs or errors."""
    text = text[:65536].encode("ascii", "backslashreplace").decode()  # binary junk stays printable
    return (scrub or Scrubber()).snippet(text, limit)


class _Board:
    """What one physical board said on this page; whole-board lines win over MIG-instance lines."""

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.index = self.model = self.driver = ""
        self.whole: dict[str, tuple[int, float]] = {}  # field -> (priority, value)
        self.mig: dict[str, tuple[int, float]] = {}
        self.instances: dict[str, tuple[str, float | None]] = {}   # GPU_I_ID -> (GPU_I_PROFILE, activity)

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        self.index = self.index or labels.get("gpu", "")
        self.model = self.model or labels.get("modelName", "")
        self.driver = self.driver or labels.get("DCGM_FI_DRIVER_VERSION", "")
        gi = labels.get("GPU_I_ID", "")
        if gi:
            profile, activity = self.instances.get(gi, ("", None))
            if name == _ACTIVITY and not math.isnan(value):
                activity = value
            self.instances[gi] = (profile or labels.get("GPU_I_PROFILE", ""), activity)
        field = _FIELDS.get(name)
        if field is None or math.isnan(value):
            return
        # MIG lines repeat the board's value: keep one, never add them up.
        target = self.mig if gi or labels.get("GPU_I_PROFILE") else self.whole
        prio = _PRIORITY[name]
        if field not in target or prio < target[field][0]:
            target[field] = (prio, value)

    def get(self, field: str) -> float | None:
        hit = self.whole.get(field) or self.mig.get(field)
        return hit[1] if hit else None

    def reading(self, now: float) -> GpuReading:
        energy, power = self.get("energy"), self.get("power")
        util, fb = self.get("util"), self.get("fb_used_mib")
        ok = energy is not None or power is not None
        info = GpuInfo(
            index=self.index,
            uuid=self.uuid,
            model=self.model,
            driver=self.driver,
            has_energy_counter=energy is not None,
        )
        return GpuReading(
            info=info,
            timestamp=now,
            ok=ok,
            energy_mj=int(energy) if energy is not None else None,
            power_watts=power,
            power_limit_watts=self.get("limit"),
            utilization_ratio=util / 100.0 if util is not None else None,
            memory_used_bytes=int(fb * 1024 * 1024) if fb is not None else None,
            pids=None,
            failed_calls=() if ok else ("energy", "power"),
            mig=self.mig_instances(),
            mig_slices=board_slices(self.model) if self.instances else 0,
        )

    def mig_instances(self) -> tuple[MigInstance, ...]:
        return tuple(
            MigInstance(gi_id=gi, profile=profile, slices=profile_slices(profile), activity=activity)
            for gi, (profile, activity) in sorted(self.instances.items(), key=lambda kv: id_order(kv[0]))
        )



class DcgmBackend:
    """``--gpu-backend dcgm``: one HTTP GET of dcgm-exporter per poll."""

    name = "dcgm"

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        retries: int = 2,
        session: SameOriginSession | None = None,
        *,
        username: str | None = None,
        password_file: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.where = redact_url(url)  # the URL as messages show it
        self.timeout = timeout
        self.retries = max(0, retries)
        self.session = session or SameOriginSession()
        self.username = username or None
        self.password_file = password_file or None
        self._password = password or None  # from the environment; a password file wins over it
        self._secret = SecretFile(password_file, PASSWORD_FILE_FLAG) if password_file else None
        self._scrub = Scrubber()
        # Hostname dcgm-exporter reports, so a mis-pointed URL (another node's pod) can be spotted.
        self.hostname = ""
        # Page lines that did not parse, by family (exported as wattprint_gpu_backend_skipped_lines_total).
        self.skipped: collections.Counter[str] = collections.Counter()
        self._logged_families: set[str] = set()

    def open(self) -> None:
        """The URL and credentials are checked: dcgm-exporter often starts after us, and read() retries every poll."""
        example = "e.g. http://localhost:9400/metrics"
        # Any "@" is taken for userinfo: a raw "/", "?" or "#" in a password hides it from urlsplit.
        if "@" in self.url:
            raise BackendUnavailable(
                f"{URL_FLAG} {self.where!r} contains credentials (user:password@), which would show in logs: "
                f"remove them and use {USER_FLAG} with {PASSWORD_FILE_FLAG} FILE or ${PASSWORD_ENV}"
            )
        try:
            parts = urlsplit(self.url)
            _ = parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            raise BackendUnavailable(f"invalid {URL_FLAG} {self.where!r}: {exc}; use {example}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendUnavailable(f"invalid {URL_FLAG} {self.where!r}: need an http(s) URL with a host, {example}")
        if self.password_file and not self.username:
            raise BackendUnavailable(f"{PASSWORD_FILE_FLAG} was given without {USER_FLAG}; add {USER_FLAG} USER")
        if self.username:
            if self._secret is not None:
                try:
                    self._password = self._secret.load()
                except SecretFileError as exc:
                    raise BackendUnavailable(str(exc)) from None
            if not self._password:
                raise BackendUnavailable(
                    f"{USER_FLAG} {self.username!r} has no password: pass {PASSWORD_FILE_FLAG} FILE "
                    f"(or WATTPRINT_DCGM_PASSWORD_FILE) or set ${PASSWORD_ENV}"
                )
            self._scrub = Scrubber(basic_auth=[(self.username, self._password)])

    def _auth(self) -> tuple[str, str] | None:
        if not self.username:
            return None
        if self._secret is not None:   # re-read when rotated; a bad re-read keeps the last password, said once
            problem = self._secret.refresh()
            if problem:
                log.warning("%s", problem)
            if self._secret.value != self._password:
                self._password = self._secret.value
                self._scrub = Scrubber(basic_auth=[(self.username, self._password)])
        assert self._password is not None
        return self.username, self._password

    def read(self) -> list[GpuReading]:
        text = self._fetch()
        now = time.monotonic()
        boards: dict[str, _Board] = {}
        for item in parse(text):
            if not isinstance(item, Sample):
                self._skip(item.family, item.line, item.reason)
                continue
            # Counters may carry "_total" (OpenMetrics-style pages); dcgm-exporter's own lines do not.
            name = item.name.removesuffix("_total")
            uuid = _label(item.labels, "UUID", "uuid")
            if not name.startswith("DCGM_FI_") or not uuid:
                continue
            self.hostname = _label(item.labels, "hostname", "Hostname") or self.hostname
            boards.setdefault(uuid, _Board(uuid)).add(name, item.labels, item.value)
        if not boards:
            raise BackendError(f"no DCGM GPU series in page from {self.where}: {_short(text, 60, self._scrub)!r}")
        return [b.reading(now) for b in boards.values()]

    def _skip(self, family: str, line: int, reason: str) -> None:
        """Count a line that did not parse; log the first of each family once (a broken family repeats every
        poll)."""
        known = family in self.skipped or len(self.skipped) < _MAX_SKIPPED_FAMILIES - 1
        key = family if family and known else OTHER_FAMILY
        self.skipped[key] += 1
        if key not in self._logged_families:
            self._logged_families.add(key)
            log.warning("dcgm-exporter page line skipped (counted in wattprint_gpu_backend_skipped_lines_total; "
                        "logged once per family)", extra=kv(url=self.where, line=line, family=key,
                                                            reason=_short(reason, scrub=self._scrub)))

    def _fetch(self) -> str:
        """Bounded to about (retries+1)*timeout plus backoff, so one dead endpoint cannot stall polling."""
        problem = ""
        auth = self._auth()
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(_BACKOFF_S * attempt)
            deadline = time.monotonic() + self.timeout
            try:
                with self.session.get(self.url, timeout=self.timeout, stream=True, auth=auth) as resp:
                    if resp.status_code != 200:
                        problem = f"HTTP {resp.status_code}"
                        continue
                    body = bytearray()
                    # requests' timeout is per socket read; a trickling server needs its own deadline.
                    for chunk in resp.iter_content(65536):
                        body += chunk
                        if time.monotonic() > deadline:
                            raise requests.Timeout()
                        if len(body) > _MAX_BODY_BYTES:
                            raise BackendError(f"page from {self.where} larger than {_MAX_BODY_BYTES} bytes")
                    return body.decode("utf-8", errors="replace")
            except CrossOriginRedirect as exc:
                # the same answer on every attempt: not retried
                raise BackendError(
                    f"dcgm-exporter at {self.where}: {exc.problem}; if {exc.target_origin} is dcgm-exporter, "
                    f"use it as {URL_FLAG}"
                ) from None
            except requests.Timeout:
                problem = f"timed out after {self.timeout:g} s"
            except requests.RequestException as exc:
                problem = f"request failed ({type(exc).__name__})"
        if problem in ("HTTP 401", "HTTP 403"):
            problem += f" (check {USER_FLAG} and the password)" if self.username else f" (the server wants {USER_FLAG})"
        raise BackendError(f"dcgm-exporter at {self.where}: {problem} (after {self.retries + 1} attempt(s))")

    def close(self) -> None:
        self.session.close()
