"""Jobs from a dcgm-exporter style job-mapping directory (``--hpc-job-mapping-dir``).

Some sites already have Slurm prolog/epilog scripts that write, per GPU, the
jobs running on it: one file per GPU named by its index (``0``, ``1``, ...) or
``<gpu>.<GPU_I_ID>`` for a MIG instance, one job id per line. Reading the same
directory lets wattprint reuse those scripts unchanged, and works where the
exporter cannot see the jobs' processes at all (no shared PID namespace).

Energy is read per board, so a job on any MIG instance of GPU ``g`` is booked
to GPU ``g``; with no PIDs the poller splits the board's energy equally among
its jobs. The files are written by other programs at any moment, so every
problem (odd names, half-written or binary files, junk lines) is counted and
skipped: one bad file must never hide the jobs in the others.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from ..backends.base import GpuReading
from .base import Assignment, Job

log = logging.getLogger("wattprint.jobs")

SOURCE = "mapping-dir"
# Prolog scripts write a handful of short lines; anything bigger is not a mapping file.
MAX_FILE_BYTES = 64 * 1024
MAX_JOB_ID_CHARS = 128

_FILENAME = re.compile(r"(\d+)(?:\.\d+)?", re.ASCII)
# Slurm ids (123, 123_4, 123+1, 123_[1-5]) and the ids other schedulers use; no spaces or control characters.
_JOB_ID = re.compile(rf"[A-Za-z0-9_.+:\-\[\]]{{1,{MAX_JOB_ID_CHARS}}}")


class MappingDirDiscovery:
    """--job-discovery mapping-dir: one file per GPU, one job id per line."""

    name = SOURCE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.errors: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        wanted = {r.info.index for r in readings}
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            # Slurm's prolog may create the directory with the first job.
            self._skip("missing_dir", f"directory {self.path} does not exist")
            return {}
        except OSError as exc:
            self._skip("unreadable", f"cannot list {self.path}: {exc.strerror or exc}")
            return {}

        found: dict[str, dict[Job, frozenset[int]]] = {}
        for name in names:
            m = _FILENAME.fullmatch(name)
            if m is None:
                self._skip("bad_filename", f"file {name!r} is not named <gpu> or <gpu>.<gpu_instance>")
                continue
            gpu = str(int(m.group(1)))
            if gpu not in wanted:
                log.debug("mapping file %s names gpu %s, which the backend does not report", name, gpu)
                continue
            job_ids = self._read(name)
            if not job_ids:
                continue
            jobs = found.setdefault(gpu, {})
            for job_id in job_ids:
                jobs[Job(job_id, SOURCE)] = frozenset()
        return found

    def _read(self, name: str) -> list[str]:
        """Job ids in one mapping file; [] (and a counted reason) if it cannot be used."""
        path = self.path / name
        try:
            # O_NONBLOCK: a FIFO dropped in the directory must not hang the poller.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            # A file removed by the epilog between listdir and open is simply gone.
            if exc.errno != errno.ENOENT:
                self._skip("unreadable", f"cannot open {path}: {exc.strerror or exc}")
            return []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._skip("unreadable", f"{path} is not a regular file")
                return []
            if st.st_size > MAX_FILE_BYTES:
                self._skip("too_large", f"{path} has {st.st_size} bytes, limit {MAX_FILE_BYTES}")
                return []
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self._skip("unreadable", f"cannot read {path}: {exc.strerror or exc}")
            return []
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:  # grew after fstat
            self._skip("too_large", f"{path} has more than {MAX_FILE_BYTES} bytes")
            return []
        if b"\0" in data:
            self._skip("bad_content", f"{path} holds binary data")
            return []
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self._skip("bad_content", f"{path} is not UTF-8 text")
            return []

        job_ids: list[str] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            if not _JOB_ID.fullmatch(line):
                self._skip("bad_job_id", f"{path}:{lineno} is not a job id: {line[:40]!r}")
                continue
            if line not in job_ids:
                job_ids.append(line)
        return job_ids

    def _skip(self, reason: str, detail: str) -> None:
        # Files are re-read every poll: warn once per reason, then keep quiet at debug level.
        self.errors[reason] += 1
        level = logging.DEBUG if reason in self._warned else logging.WARNING
        self._warned.add(reason)
        log.log(level, "mapping-dir skipped reason=%s %s", reason, detail)
