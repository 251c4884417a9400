"""A secret kept in a file (a password), read at start and re-read whenever the file changes.

A Kubernetes Secret volume or a systemd credential is rotated by replacing the file; checking its modification time
and size on each use picks the new value up without a restart. If the file becomes unreadable or empty later, the
last good value is kept and the caller is told once (until the file reads again), so a half-written file never
locks the client out. The value never appears in a message.
"""

from __future__ import annotations

import os


class SecretFileError(Exception):
    """The file cannot be read, or is empty: the message names the flag and the path, never the content."""


class SecretFile:
    def __init__(self, path: str, flag: str) -> None:
        self.path = path
        self.flag = flag
        self.value = ""
        self._stamp: tuple[int, int] | None = None
        self._failing = False

    def load(self) -> str:
        """Read the file now (at start): SecretFileError if it cannot be read or is empty."""
        self._read()
        return self.value

    def refresh(self) -> str | None:
        """Re-read the file if it changed. Returns a problem to log the first time a re-read fails (the last good
        value is kept), else None."""
        try:
            self._read()
        except SecretFileError as exc:
            if self._failing:
                return None
            self._failing = True
            return f"{exc}; keeping the value read before"
        self._failing = False
        return None

    def _read(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            with open(self.path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SecretFileError(f"{self.flag} {self.path}: cannot read the file ({reason}); check the path and "
                                  "its permissions") from None
        if not value:
            raise SecretFileError(f"{self.flag} {self.path}: the file is empty; write the secret on its first line")
        self._stamp, self.value = stamp, value
