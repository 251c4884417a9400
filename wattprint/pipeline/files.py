"""Reading a file the user named, without letting the file decide what happens.

A FIFO opened for reading waits for a writer, so `Path.read_text` on one hangs the verb for ever; a
device or a huge file would be read without end. Opened non-blocking and checked with fstat (which
describes what was opened, not what the path named a moment before), anything but a regular file within
the size limit is a one-line InputError. Links are followed: the path is the operator's own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import InputError

MIB = 1024 * 1024
# A month of `sacct --json` for a large cluster runs to hundreds of MB; the config and the phase rules are
# a few KB: the limits only stop what is plainly not such a file.
MAX_JOB_FILE_BYTES = 1024 * MIB
MAX_SMALL_FILE_BYTES = 16 * MIB
# Every intensity file is read whole (imports) or kept parsed (serve-intensity): a year of hourly values for 100
# zones in the generic CSV is ~35 MB, far more than any source publishes per request; beyond, split the file.
MAX_INTENSITY_FILE_BYTES = 64 * MIB


def file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a plain file"


def read_regular(path: str | Path, max_bytes: int, *, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `max_bytes`; OSError for the caller to word (missing,
    permission), InputError naming the file for anything that is not a regular file or is too large."""
    name = str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(name, f"the {what} is {file_kind(st.st_mode)}, not a regular file",
                             "give the path of a plain file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(name, f"the {what} is more than {max_bytes:,} bytes ({max_bytes / MIB:g} MiB)",
                         "split it and import each part")
    return data
