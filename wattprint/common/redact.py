"""Secrets out of text we print: URLs lose user:password@ and the values of secret-looking query parameters.

Every log line goes through `redact_text` (wattprint.common.logs), whoever built the text; `redact_url` is for a URL
named in a message. Kept apart from safehttp.py, which holds what needs requests (the same-origin session, the
`Scrubber` of known secrets), so that a verb that only logs does not import requests.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Query parameter names whose values are treated as secrets (matched anywhere in the name,
# case-insensitively: api_key, access_token, X-Amz-Signature, ...).
SECRET_PARAM = re.compile(r"token|passw|pwd|secret|key|auth|sig|credential|session|cookie", re.IGNORECASE)
# scheme://userinfo@ up to the last @ of the same word: a password holding a raw / or @ still goes.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s'\"<>]*@")
# A value does not take a trailing ":", ",", "." or ")": in a message that is the sentence, not the URL.
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#\s'\"<>]+)=((?:[^&;#\s'\"<>]*[^&;#\s'\"<>:,.)])?)")


def redact_url(url: str) -> str:
    """`url` without user:password@ and with the values of secret-looking query parameters masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return redact_text(url)
    query = _QUERY_PARAM.sub(_mask_param, "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _mask_param(m: re.Match[str]) -> str:
    sep, name, value = m.group(1), m.group(2), m.group(3)
    return f"{sep}{name}={MASK}" if value and SECRET_PARAM.search(name) else m.group(0)


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it removed and secret-looking query values masked."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(r"\1", text)
    return _QUERY_PARAM.sub(_mask_param, text)
