"""GET with retries, and secrets read from env vars or files. Secrets never reach logs or error text.

Every session is expected to be an `wattprint.common.safehttp.SameOriginSession` (the callers make it so): a
redirect to another origin is refused, not retried, and becomes an UpstreamError. Response bodies do
reach messages (an API's own words say what is wrong), so they are scrubbed of every credential of
the request in every form an echo could take (raw, base64, URL-encoded; `safehttp.Scrubber`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from wattprint.common.safehttp import CrossOriginRedirect, SameOriginSession, Scrubber

from ...errors import InputError, UpstreamError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
MESSAGE_CHARS = 300


def secret(name: str, file_arg: str | Path | None = None, *, hint: str) -> str:
    """A credential: the file given as argument, else env var NAME, else the file named by NAME_FILE."""
    path = str(file_arg) if file_arg else os.environ.get(f"{name}_FILE", "")
    value = "" if file_arg else os.environ.get(name, "")
    if not value and path:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise InputError(path, f"cannot read the {name} file ({e.strerror})",
                             "check the path and permissions") from None
        if not value:
            raise InputError(path, f"the {name} file is empty", "write the credential on its first line")
    if not value:
        raise InputError(name, "credential not set", hint)
    return value.strip()


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` without any of `secrets`, raw or encoded."""
    return Scrubber(secrets)(text)


def _api_message(resp: requests.Response, scrubber: Scrubber) -> str:
    """The API's own error text, scrubbed before it is cut so a secret split by the cut cannot show."""
    try:
        body: Any = resp.json()
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "errors"):
            if body.get(key):
                return scrubber.snippet(str(body[key]), MESSAGE_CHARS)
    return scrubber.snippet(resp.text or resp.reason or "", MESSAGE_CHARS)


def get_json(session: SameOriginSession, url: str, *, what: str, params: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
             secrets: Sequence[str] = (), retries: int = 2, backoff_s: float = 1.0, timeout_s: float = 30.0) -> Any:
    """Decoded JSON of a GET, retrying 429/5xx/connection errors `retries` times with exponential backoff."""
    scrubber = Scrubber(secrets, [auth] if auth else ())
    attempt = 0
    while True:
        problem: str
        try:
            resp = session.get(url, params=params, headers=dict(headers or {}), auth=auth, timeout=timeout_s)
        except CrossOriginRedirect as e:
            # the same answer on every attempt: not retried
            raise UpstreamError(what, e.problem, f"if {e.target_origin} is the API, use it as --base-url") from None
        except (requests.ConnectionError, requests.Timeout) as e:
            problem, wait = f"connection failed ({type(e).__name__})", backoff_s * 2**attempt
        else:
            if resp.status_code < 400:
                try:
                    return resp.json()
                except (ValueError, RecursionError):
                    raise UpstreamError(what, f"HTTP {resp.status_code} with a body that is not JSON",
                                        "check the base URL points at the API") from None
            message = _api_message(resp, scrubber)
            problem = f"HTTP {resp.status_code}: {message}" if message else f"HTTP {resp.status_code}"
            if resp.status_code not in RETRY_STATUS:
                hint = ("check the credential (it was not accepted)" if resp.status_code in (401, 403)
                        else "check the zone/region and time range")
                raise UpstreamError(what, problem, hint)
            wait = backoff_s * 2**attempt
            after = resp.headers.get("Retry-After", "")
            if after.replace(".", "", 1).isdigit():
                wait = min(float(after), MAX_RETRY_AFTER_S)
        if attempt >= retries:
            raise UpstreamError(what, f"{problem} after {attempt + 1} attempt(s)", "try again later")
        attempt += 1
        log.warning("%s: %s; retry %d/%d in %.1fs", what, problem, attempt, retries, wait)
        time.sleep(wait)
