"""Outbound HTTP for clients that send credentials, and the redaction of secrets from text we print.

Shared by the exporter (dcgm backend) and the pipeline (Prometheus client, intensity APIs), so it
imports neither.

Redirects: requests drops `Authorization` when a redirect changes host, but keeps every other
header (Electricity Maps' `auth-token`, `X-Scope-OrgID`, custom headers), so a 302 from the
configured server could hand a credential to any host it names. `SameOriginSession` follows a
redirect only when scheme, host and port stay those of the request (an https -> http downgrade
is another origin) and refuses any other with `CrossOriginRedirect`, before anything is sent there.

Redaction: an upstream may echo what it received (a 401 page printing the request headers), so a
secret can come back raw, base64-encoded (basic auth sends base64 of "user:password"),
URL-encoded or HTML/JSON-escaped. `Scrubber` replaces all of those with ***; `redact_url` and
`redact_text` (redact.py, which does not import requests) remove user:password@ and the values of
secret-looking query parameters from URLs.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import requests

from .redact import MASK, redact_url
from .redact import redact_text as redact_text  # re-exported: the redaction is redact.py

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Encoded forms shorter than this are not scrubbed inside other text (they would match by chance).
_MIN_CORE = 8
_MIN_PARTIAL = 4


# -- origins and URLs --------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `url`, lower case, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def origin_text(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


# -- secrets in text ----------------------------------------------------------------------------------


def _b64_variants(data: bytes) -> set[str]:
    """The base64 text that encodes `data` wherever it sits inside a longer encoded string.

    Base64 maps 3 bytes to 4 characters, so the characters that depend only on `data` differ with
    its offset modulo 3; the three cores cover every offset, in the standard and URL-safe alphabets.
    """
    exact = base64.b64encode(data).decode()
    out = {exact, exact.rstrip("=")}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode()
        core = enc[-(-8 * k // 6): (8 * (k + len(data))) // 6]
        if len(core) >= _MIN_CORE:
            out.add(core)
    return out | {s.replace("+", "-").replace("/", "_") for s in out}


def encoded_forms(secret: str) -> set[str]:
    """`secret` as an upstream might echo it: raw, URL-, HTML- or JSON-escaped, base64 (any offset)."""
    if not secret:
        return set()
    forms = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret), json.dumps(secret)[1:-1]}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms)}
    forms |= _b64_variants(secret.encode())
    return {f for f in forms if f}


class Scrubber:
    """Replaces every known secret, in every encoded form, with ***."""

    def __init__(self, secrets: Iterable[str] = (), basic_auth: Iterable[tuple[str, str]] = ()) -> None:
        forms: set[str] = set()
        for s in secrets:
            forms |= encoded_forms(s)
        for user, password in basic_auth:
            forms |= encoded_forms(password)
            forms |= _b64_variants(f"{user}:{password}".encode())
        # longest first, so "Basic <whole base64>" is masked whole rather than around a core
        self.forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, text: str) -> str:
        for f in self.forms:
            if f in text:
                text = text.replace(f, MASK)
        return text

    def snippet(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text` on one line, with no secret, whole or cut by the limit."""
        text = " ".join(self(text).split())
        text = self(text)  # a secret with whitespace in it matches only in the collapsed form
        if len(text) > limit:
            text = self._cut_tail(text[: limit - 3]) + "..."
        return text

    def _cut_tail(self, text: str) -> str:
        # the limit may cut a secret in two: its first part must not end the message either
        for f in self.forms:
            for n in range(min(len(f) - 1, len(text)), _MIN_PARTIAL - 1, -1):
                if text.endswith(f[:n]):
                    return text[:-n] + MASK
        return text


# -- redirects -----------------------------------------------------------------------------------------


class CrossOriginRedirect(requests.exceptions.RequestException):
    """A redirect to another origin than the request's, refused before anything was sent there."""

    def __init__(self, source: str, target: str, *args: Any, **kw: Any) -> None:
        self.source = origin_text(source)
        self.target = redact_url(target)
        self.target_origin = origin_text(target)
        self.problem = (
            f"redirect from {self.source} to another origin ({self.target}) refused: credentials and requests "
            "go only to the configured scheme, host and port"
        )
        super().__init__(self.problem, *args, **kw)


class SameOriginSession(requests.Session):
    """A requests session that follows redirects only within the origin of the request."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        # Called for each redirect hop once the next URL is known and before it is requested.
        previous = response.request.url or ""
        target = prepared_request.url or ""
        if origin(previous) != origin(target):
            response.close()
            raise CrossOriginRedirect(previous, target, request=prepared_request, response=response)
        super().rebuild_auth(prepared_request, response)
