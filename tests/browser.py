"""Drive a headless Chromium for the HTML report tests: a screenshot, the DOM after load, and a PNG decoder.

Chromium can hang (a stuck GPU process, a profile lock), so every run has a virtual-time budget, is wrapped in
coreutils `timeout` (kills the whole browser) and has a subprocess timeout on top, and uses its own temporary
profile (`--user-data-dir`). The PNG decoder is plain Python (zlib + struct; Pillow is not a dependency).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-sync", "--disable-dev-shm-usage", "--mute-audio", "--force-device-scale-factor=1",
         "--virtual-time-budget=5000")


@dataclass(frozen=True)
class Run:
    stdout: str
    seconds: float


def _chromium(chromium: str, args: list[str], timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="wattprint-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
        if shutil.which("timeout"):
            cmd = ["timeout", "-k", "5", str(int(timeout)), *cmd]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 15)
        seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode} after {seconds:.1f}s: {proc.stderr[-2000:]}")
    return Run(proc.stdout, seconds)


def screenshot(chromium: str, page: Path, png: Path, width: int = 1280, height: int = 4000,
               timeout: float = 90) -> float:
    """Screenshot `page` (a local HTML file) into `png` at width x height CSS pixels; returns the seconds taken."""
    run = _chromium(chromium, [f"--window-size={width},{height}", f"--screenshot={png}", page.resolve().as_uri()],
                    timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return run.seconds


def dump_dom(chromium: str, page: Path, width: int = 1280, timeout: float = 90) -> str:
    """The DOM of `page` after load and layout, serialised by Chromium."""
    return _chromium(chromium, [f"--window-size={width},2000", "--dump-dom", page.resolve().as_uri()], timeout).stdout


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int         # 3 (RGB) or 4 (RGBA)
    rows: list[bytes]     # unfiltered scanlines, `width * channels` bytes each

    def colours(self) -> Counter[tuple[int, int, int]]:
        """How many pixels have each RGB colour (alpha ignored)."""
        c = self.channels
        try:
            import numpy as np
        except ImportError:  # plain Python: a few seconds for a full-page screenshot
            return Counter((row[i], row[i + 1], row[i + 2]) for row in self.rows for i in range(0, len(row), c))
        px = np.frombuffer(b"".join(self.rows), dtype=np.uint8).reshape(-1, c)[:, :3].astype(np.uint32)
        keys, counts = np.unique((px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2], return_counts=True)
        return Counter({(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255): int(n)
                        for k, n in zip(keys, counts, strict=True)})


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes); ValueError on anything else."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG (bad signature)")
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated chunk header")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise ValueError(f"image data is {len(raw)} bytes, expected {height * (stride + 1)}")
    rows: list[bytes] = []
    prior = bytes(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prior[i]
                c = prior[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif ftype != 0:
            raise ValueError(f"bad filter type {ftype} on row {y}")
        prior = bytes(line)
        rows.append(prior)
    return Image(width, height, bpp, rows)
