"""One line per event, logfmt-style, UTC; tracebacks only at debug level.

Every line goes through safehttp.redact_text: URLs lose user:password@ and the values of secret-looking
query parameters (token, password, key, secret, auth, ...), whoever built the message.
"""

from __future__ import annotations

import logging
import sys
import time

from .safehttp import redact_text


class _LineFormatter(logging.Formatter):
    def __init__(self, debug: bool) -> None:
        super().__init__()
        self._debug = debug

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        name = record.name.removeprefix("wattprint.")
        line = f"ts={ts} level={record.levelname.lower()} caller={name} msg={record.getMessage()}"
        if self._debug and record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return redact_text(line.replace("\n", "\\n"))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(debug=level == "debug"))
    root = logging.getLogger("wattprint")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
