"""One line per event, UTC, logfmt (as go-kit/logfmt writes it) or JSON; tracebacks only at debug level.

    ts=2026-01-02T03:04:05.678Z level=info caller=web msg="tls handshake failed" client=10.0.0.7:51234 err="EOF ..."

The message and the event's fields are kept apart: a call site passes its fields with `extra=kv(...)`:

    log.info("tls handshake failed", extra=kv(client=addr, err=exc))

A field's value is written with str() (an exception as its message, or its type when the message is empty;
a bool as true/false); in logfmt it is double-quoted, with \\" \\\\ \\n ... escaped, when it is empty or holds
a space, '=', '"' or a control character. `ts`, `level`, `caller` (the logger's name without "wattprint."),
`msg`, then the fields, in the order given; with a traceback (debug level only) a last `exc` field.

Every value goes through redact.redact_text (and the finished line too): URLs lose user:password@ and the
values of secret-looking query parameters (token, password, key, secret, auth, ...), whoever built the text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping

from .redact import redact_text

LOG_FORMATS = ("logfmt", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
_RESERVED = ("ts", "level", "caller", "msg")
HANDLER_NAME = "wattprint-stderr"


def kv(**fields: object) -> dict[str, object]:
    """`extra=` for a log call: the event's key=value fields, written after msg in this order."""
    return {"fields": fields}


def value_text(value: object) -> str:
    """The text of one field's value (before quoting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseException):
        return str(value) or type(value).__name__
    if value is None:
        return ""
    return str(value)


def typed(exc: BaseException | None) -> str:
    """An unexpected exception (a bug) as "Type: message", for an err= field."""
    if exc is None:
        return "unknown"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _needs_quotes(text: str) -> bool:
    return not text or any(c <= " " or c in '="\x7f' or not c.isprintable() for c in text)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def logfmt_value(text: str) -> str:
    """`text` as a logfmt value: bare, or double-quoted with JSON-style escapes (go-kit/logfmt)."""
    if not _needs_quotes(text):
        return text
    out = []
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < " " or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def logfmt_key(key: str) -> str:
    key = "".join("_" if c <= " " or c in '="' or not c.isprintable() else c for c in key)
    return key or "_"


class _LineFormatter(logging.Formatter):
    def __init__(self, debug: bool, fmt: str = "logfmt") -> None:
        super().__init__()
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}")
        self._debug = debug
        self._json = fmt == "json"

    def _pairs(self, record: logging.LogRecord) -> list[tuple[str, object]]:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        pairs: list[tuple[str, object]] = [
            ("ts", ts), ("level", record.levelname.lower()), ("caller", record.name.removeprefix("wattprint.")),
            ("msg", record.getMessage()),
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                key = str(key)
                pairs.append((key + "_" if key in _RESERVED else key, value))
        if self._debug and record.exc_info:
            pairs.append(("exc", self.formatException(record.exc_info)))
        return pairs

    def format(self, record: logging.LogRecord) -> str:
        pairs = self._pairs(record)
        if self._json:
            doc: dict[str, object] = {}
            for key, value in pairs:
                if isinstance(value, bool) or (isinstance(value, int | float) and value == value
                                               and value not in (float("inf"), float("-inf"))):
                    doc[key] = value
                else:
                    doc[key] = redact_text(value_text(value))
            return redact_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        line = " ".join(f"{logfmt_key(k)}={logfmt_value(redact_text(value_text(v)))}" for k, v in pairs)
        return redact_text(line)


def make_handler(level: str = "info", fmt: str = "logfmt") -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(debug=level == "debug", fmt=fmt))
    handler.set_name(HANDLER_NAME)
    return handler


def setup_logging(level: str = "info", fmt: str = "logfmt", logger: str = "wattprint") -> None:
    """Log records of `logger` (and below) to stderr, one line each.

    "wattprint" (the daemons): its handlers are replaced and nothing reaches the root logger. "" (the root
    logger, for the batch verbs): a handler set up here before is replaced, others are kept.
    """
    target = logging.getLogger(logger or None)
    kept = [] if logger else [h for h in target.handlers if h.get_name() != HANDLER_NAME]
    target.handlers[:] = [*kept, make_handler(level, fmt)]
    target.setLevel(level.upper())
    if logger:
        target.propagate = False
