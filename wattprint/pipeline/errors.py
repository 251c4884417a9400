"""Expected failures of the batch tool, each with where it happened and what to do.

The CLI prints these as one line and exits non-zero; only bugs show a traceback.
"""

from __future__ import annotations

EXIT_INPUT = 2      # bad flag, file, row, config: the user must change something
EXIT_UPSTREAM = 1   # a server or database we depend on failed or refused


class WattprintError(Exception):
    exit_code = EXIT_UPSTREAM

    def __init__(self, where: str, problem: str, hint: str = "") -> None:
        self.where = where
        self.problem = problem
        self.hint = hint
        super().__init__(self.message())

    def message(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        return f"{text}; {self.hint}" if self.hint else text


class InputError(WattprintError):
    """A file, row, flag or config value we cannot accept. `where` is e.g. 'jobs.csv:12' or '--start'."""

    exit_code = EXIT_INPUT


class UpstreamError(WattprintError):
    """A Prometheus/intensity API failed after retries, or refused the request."""


class DatabaseLocked(WattprintError):
    """Another process holds the DuckDB file for writing."""


class DatabaseWriteError(WattprintError):
    """DuckDB could not commit (disk full, directory made read-only): the transaction is dropped, earlier ones kept."""
