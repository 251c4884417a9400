"""Jobs from a dcgm-exporter style job-mapping directory (``--hpc-job-mapping-dir``).

Some sites already have Slurm prolog/epilog scripts that write, per GPU, the
jobs running on it: one file per GPU named by its index (``0``, ``1``, ...) or
``<gpu>.<GPU_I_ID>`` for a MIG instance, one job id per line. Reading the same
directory lets wattprint reuse those scripts unchanged, and works where the
exporter cannot see the jobs' processes at all (no shared PID namespace).

On a board in MIG mode, the jobs of ``<gpu>.<GPU_I_ID>`` (or of a file named by the
instance's ``MIG-...`` UUID, as device plugins name what they allocate) are charged
on that instance (the poller splits the board among its instances first); on a
board not in MIG mode, or for an instance the backend does not report, they are
the board's jobs as before. With no PIDs the poller splits equally among the jobs
of a GPU or instance. The files are written by other programs at any moment, so every
problem (odd names, half-written or binary files, junk lines) is counted and
skipped: one bad file must never hide the jobs in the others.

Whoever can write the directory must not be able to make the exporter read
other files (it may run with CAP_DAC_READ_SEARCH for RAPL, and what it reads
becomes `job_id` label values) nor grow its poll and metrics page without
bound: entries are opened relative to the directory without following symbolic
links, hard-linked files are refused, and each GPU gets at most
MAX_FILES_PER_GPU files and MAX_JOBS_PER_GPU jobs per poll.
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

from ...common.logs import kv
from ..backends.base import GpuReading, id_order, instance_key
from .base import Assignment, Job

log = logging.getLogger("wattprint.jobs")

SOURCE = "mapping-dir"
# Prolog scripts write a handful of short lines; anything bigger is not a mapping file.
MAX_FILE_BYTES = 64 * 1024
MAX_JOB_ID_CHARS = 128
# A GPU has one file, or one per MIG GPU instance (at most 7 at a time; their ids, 1-14, may leave stale files).
MAX_FILES_PER_GPU = 16
# MPS serves at most 48 clients per GPU and MIG at most 7 instances; Slurm shards or time-slicing put tens of
# jobs on one GPU. Beyond this a file is not a job list (10 files of 64 KiB made 72,810 jobs and a 37 MB page).
MAX_JOBS_PER_GPU = 64

_FILENAME = re.compile(r"(\d+)(?:\.(\d+))?", re.ASCII)
# Slurm ids (123, 123_4, 123+1, 123_[1-5]) and the ids other schedulers use; no spaces or control characters.
_JOB_ID = re.compile(rf"[A-Za-z0-9_.+:\-\[\]]{{1,{MAX_JOB_ID_CHARS}}}")


class MappingDirDiscovery:
    """--job-discovery mapping-dir: one file per GPU, one job id per line."""

    name = SOURCE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.errors: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()
        self._mig_uuids: dict[str, tuple[str, str]] = {}

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        wanted = {r.info.index: {i.gi_id for i in r.mig} for r in readings}
        self._mig_uuids = {i.uuid: (r.info.index, i.gi_id) for r in readings for i in r.mig if i.uuid}
        try:
            # The directory is the operator's path (a link to it is fine); its entries are opened relative to this
            # descriptor, so the directory listed is the directory read.
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            # Slurm's prolog may create the directory with the first job.
            self._skip("missing_dir", f"directory {self.path} does not exist")
            return {}
        except OSError as exc:
            self._skip("unreadable", f"cannot list {self.path}: {exc.strerror or exc}")
            return {}
        try:
            return self._discover(dir_fd, wanted)
        finally:
            os.close(dir_fd)

    def _discover(self, dir_fd: int, wanted: dict[str, set[str]]) -> Assignment:
        try:
            names = os.listdir(dir_fd)
        except OSError as exc:
            self._skip("unreadable", f"cannot list {self.path}: {exc.strerror or exc}")
            return {}
        per_gpu: dict[str, list[tuple[int, str, str]]] = {}
        for name in names:
            mig = self._mig_uuids.get(name)
            if mig is not None:
                gpu, gi = mig
                per_gpu.setdefault(gpu, []).append((id_order(gi)[0], name, instance_key(gpu, gi)))
                continue
            m = _FILENAME.fullmatch(name)
            if m is None:
                self._skip("bad_filename", f"file {name!r} is not named <gpu>, <gpu>.<gpu_instance> or by the "
                           "MIG UUID of an instance the backend reports")
                continue
            gpu = str(int(m.group(1)))
            if gpu not in wanted:
                log.debug("mapping file names a gpu the backend does not report", extra=kv(file=name, gpu=gpu))
                continue
            instance = int(m.group(2)) if m.group(2) is not None else -1
            key = instance_key(gpu, str(instance)) if str(instance) in wanted[gpu] else gpu
            per_gpu.setdefault(gpu, []).append((instance, name, key))

        found: dict[str, dict[Job, frozenset[int]]] = {}
        for gpu, files in per_gpu.items():
            files.sort()                       # the board's own file, then its instances in numeric order
            if len(files) > MAX_FILES_PER_GPU:
                for _, name, _ in files[MAX_FILES_PER_GPU:]:
                    self._skip("too_many_files", f"{self.path / name}: gpu {gpu} has {len(files)} mapping files, "
                               f"only the first {MAX_FILES_PER_GPU} are read")
            held = 0                           # (GPU or instance, job) pairs on this board
            for _, name, key in files[:MAX_FILES_PER_GPU]:
                jobs = found.setdefault(key, {})
                dropped = 0
                for job_id in self._read(dir_fd, name):
                    job = Job(job_id, SOURCE)
                    if job in jobs:
                        continue
                    if held >= MAX_JOBS_PER_GPU:
                        dropped += 1
                        continue
                    jobs[job] = frozenset()
                    held += 1
                if dropped:
                    self._skip("too_many_jobs", f"{self.path / name}: {dropped} job(s) dropped, gpu {gpu} already has "
                               f"{MAX_JOBS_PER_GPU} (the most read per GPU)", dropped)
        return {key: jobs for key, jobs in found.items() if jobs}

    def _read(self, dir_fd: int, name: str) -> list[str]:
        """Job ids in one mapping file; [] (and a counted reason) if it cannot be used."""
        path = f"{self.path}/{name}"      # for messages only: a Path per file per poll is measurable
        try:
            # O_NONBLOCK: a FIFO dropped in the directory must not hang the poller. O_NOFOLLOW: a link to another
            # file (a secret the exporter's capabilities can read) is refused, not read as job ids.
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._skip("symlink", f"{path} is a symbolic link: mapping files are read only as themselves")
            # A file removed by the epilog between listdir and open is simply gone.
            elif exc.errno != errno.ENOENT:
                self._skip("unreadable", f"cannot open {path}: {exc.strerror or exc}")
            return []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._skip("unreadable", f"{path} is not a regular file")
                return []
            if st.st_nlink > 1:
                # another name for a file elsewhere; prolog scripts write their own file (and rename it in place)
                self._skip("hardlink", f"{path} has {st.st_nlink} links: mapping files are read only as themselves")
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
        seen: set[str] = set()
        lines = text.splitlines()
        examined = 0
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line:
                continue
            if examined == MAX_JOBS_PER_GPU:
                # the rest are not looked at one by one (a 64 KiB file holds 7,000 lines): counted, dropped
                rest = sum(1 for r in lines[lineno - 1:] if r.strip())
                self._skip("too_many_jobs", f"{path}: {rest} line(s) after the first {MAX_JOBS_PER_GPU} job ids "
                           "dropped", rest)
                break
            examined += 1
            if not _JOB_ID.fullmatch(line):
                self._skip("bad_job_id", f"{path}:{lineno} is not a job id: {line[:40]!r}")
                continue
            if line not in seen:
                seen.add(line)
                job_ids.append(line)
        return job_ids

    def _skip(self, reason: str, detail: str, count: int = 1) -> None:
        # Files are re-read every poll: warn once per reason, then keep quiet at debug level.
        self.errors[reason] += count
        level = logging.DEBUG if reason in self._warned else logging.WARNING
        self._warned.add(reason)
        log.log(level, "mapping-dir skipped", extra=kv(reason=reason, detail=detail))
