"""The exporter's HTTP(S) server: /metrics, a landing page and /-/healthy.

Built on the standard library's ThreadingHTTPServer rather than prometheus_client's start_http_server
because the exporter needs what that one lacks: exporter-toolkit style TLS and basic auth, a bound
port that tests can read back, and a shutdown that really stops within a second. A scrape only
serialises what the poller already holds, so one thread per connection is plenty.
"""

from __future__ import annotations

import base64
import binascii
import collections
import errno
import gzip
import hashlib
import hmac
import io
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

import bcrypt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from .. import __version__
from .logs import kv, typed
from .webconfig import WebConfig, WebConfigError, load_web_config

log = logging.getLogger("wattprint.web")

Render = Callable[[str | None], tuple[bytes, str]]
REALM = "wattprint"
# What one connection may cost before it has proved anything. Everything before the auth check (the TLS
# handshake, the request line and the headers) must arrive within HEAD_TIMEOUT_S as a whole, not per read,
# and fit in MAX_HEAD_BYTES; a scrape request is well under 1 KiB. Without these, connections trickling
# 100 header lines of 64 KiB each (http.server's own limits) held ~6 MiB apiece for as long as they liked.
MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
# A kept-alive connection idle this long between requests is closed. Longer than the longest common scrape
# interval (Prometheus' 15 s to 60 s, sometimes 120 s) plus jitter, so a scraper reuses one connection (one
# TCP + TLS handshake) for good instead of reconnecting every scrape; the old 30 s was shorter than a 60 s
# interval. Idle connections still give way to new ones when the server is full (MAX_CONNECTIONS below), and
# the bounds on what a connection may cost before it proved anything (HEAD_TIMEOUT_S, MAX_HEAD_BYTES) are
# separate and unchanged. MetricsServer(idle_timeout=...) overrides it.
IDLE_TIMEOUT_S = 150.0
WRITE_TIMEOUT_S = 30.0  # sending one response to a client that does not read it
# A server started from a --web.config.file stats that file and the certificate, key and CA files it names on
# every TLS handshake and request (a few stat() calls) and loads it again when any of them changed: a renewed
# certificate is served from the next handshake on, changed users and headers apply from the next request.
# A file changed less than _RECENT_S ago may still be being written (or change again within the file system's
# timestamp granularity), so it is loaded again after RECHECK_S; so is a version that failed to load, which
# leaves the last good config in use.
RECHECK_S = 1.0
_RECENT_S = 2.0
# Open connections, each one thread. When full, a new connection takes the place of the one that has proved
# the least: first connections that never completed an authorised request (oldest first), then the idle
# kept-alive connection used least recently; one busy with a response is never cut. A flood of
# unauthenticated connections therefore evicts itself, and a real scraper's connection gets in.
MAX_CONNECTIONS = 256
_POLL_INTERVAL = 0.1  # how often serve_forever checks for shutdown; keeps shutdown() well under 1 s
# Refusals counted in wattprint_web_refused_connections_total{reason}.
REFUSAL_REASONS = ("connection_limit", "evicted", "head_timeout", "head_too_large", "request_body")

_LANDING = f"""<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>wattprint exporter</title></head>
<body>
<h1>wattprint exporter</h1>
<p>Per-node GPU energy exporter for Prometheus, version {__version__}.</p>
<ul>
<li><a href="metrics">Metrics</a></li>
<li><a href="-/healthy">Health</a></li>
</ul>
</body>
</html>
""".encode()


class CachedRenderer:
    """Serialise the registry once per poller snapshot and encoding.

    Concurrent scrapes of the same snapshot wait for one rendering and share
    its bytes, so 200 scrapers cost one serialisation per poll, not 200.
    ``generation`` names the current snapshot; the default (a constant -1 never
    cached as valid) renders on every call.
    """

    def __init__(self, registry: CollectorRegistry, generation: Callable[[], int] = lambda: -1) -> None:
        self._registry = registry
        self._generation = generation
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, bytes]] = {}

    def __call__(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        gen = self._generation()
        with self._lock:
            hit = self._cache.get(content_type)
            if gen >= 0 and hit is not None and hit[0] == gen:
                return hit[1], content_type
            body = encoder(self._registry)
            self._cache[content_type] = (gen, body)
            return body, content_type


def parse_listen_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``:PORT`` (all IPv4 interfaces) or ``[IPV6]:PORT`` as Prometheus exporters do."""
    if not isinstance(text, str) or text != text.strip() or not text:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT, :PORT or [IPV6]:PORT")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"listen address {text!r}: expected [IPV6]:PORT, e.g. [::1]:9835")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"listen address {text!r}: {host!r} in brackets is not an IPv6 address") \
                from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"listen address {text!r}: missing port; expected HOST:PORT or :PORT, "
                             f"e.g. :9835")
        if ":" in host:
            raise ValueError(f"listen address {text!r}: put an IPv6 address in brackets, e.g. [::1]:9835")
        if any(c.isspace() for c in host) or "/" in host:
            raise ValueError(f"listen address {text!r}: {host!r} is not a host name or address")
        host = host or "0.0.0.0"
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {text!r}: port {port!r} is not a number from 0 to 65535")
    return host, int(port)


class BasicAuth:
    """bcrypt password checks with a bounded LRU cache of outcomes.

    bcrypt is slow on purpose (tens to hundreds of ms) and Prometheus sends the same credentials every
    scrape, so outcomes are cached under an HMAC of (user, password) with a per-process random key:
    the cache holds nothing that can be brute-forced offline faster than the bcrypt hashes themselves.
    Unknown users still pay one bcrypt check, against the configured hash of the highest cost, so response
    time does not reveal which user names exist (a cheaper hash would answer unknown names faster than a
    costly user's wrong password), and checks run one at a time so a flood of guesses cannot take every CPU.
    """

    def __init__(self, users: Mapping[str, bytes], cache_size: int = 1024) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = dict(users)
        self._dummy = max(self._users.values(), key=_bcrypt_cost)
        self._key = secrets.token_bytes(32)
        self._cache: collections.OrderedDict[bytes, bool] = collections.OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def check(self, user: str, password: bytes) -> bool:
        ub = user.encode("utf-8", "surrogateescape")
        key = hmac.new(self._key, len(ub).to_bytes(4, "big") + ub + password, hashlib.sha256).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        hashed = self._users.get(user)
        known = hashed is not None
        with self._bcrypt_lock:
            try:
                ok = bcrypt.checkpw(password, hashed if hashed is not None else self._dummy)
            except ValueError:  # e.g. bcrypt >= 5 refuses passwords over 72 bytes
                ok = False
        ok = ok and known
        with self._lock:
            self._cache[key] = ok
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ok

    def knows(self, user: str) -> bool:
        return user in self._users


def _bcrypt_cost(hashed: bytes) -> int:
    """The cost of a ``$2b$NN$...`` hash (webconfig checked the format)."""
    return int(hashed.split(b"$")[2])


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an Authorization header, or None when absent or not well-formed Basic."""
    if not header:
        return None
    scheme, _, param = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(param.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def _accepts_gzip(header: str | None) -> bool:
    for part in (header or "").split(","):
        coding, *params = (x.strip() for x in part.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def _client(handler: BaseHTTPRequestHandler) -> str:
    addr = handler.client_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)


class _HeadTooLarge(Exception):
    def __init__(self, in_request_line: bool) -> None:
        super().__init__()
        self.in_request_line = in_request_line


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads all end at the handler's current deadline.

    A socket timeout alone restarts with every byte received, so a client sending one byte every few seconds
    could hold a connection for ever; here each read only gets what is left of the deadline.
    """

    def __init__(self, sock: socket.socket, conn: _Conn) -> None:
        super().__init__()
        self._sock = sock
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._conn.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("read deadline passed")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection every scrape
    server_version = f"wattprint/{__version__}"
    sys_version = ""
    timeout = WRITE_TIMEOUT_S
    # Headers and body go out in separate writes; with Nagle on, a kept-alive scraper's delayed ACK
    # stalled each back-to-back scrape by ~40 ms (benchmarks/bench_scrape.py).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        owner = self.server.owner
        # One consistent version of the web config for this connection's handshake, refreshed per request.
        self._live = owner.live()
        if owner.tls:
            # Wrapped here, in the connection's thread and with the config current now, so that a renewed
            # certificate is served from the next handshake on; the listening socket stays plain.
            self.request = owner._wrap_tls(self.request, self._live)
        super().setup()
        self.conn = owner._conn(self.connection)
        self.rfile.close()  # the makefile() reader, replaced by one bound to the deadlines
        self._reader = io.BufferedReader(_DeadlineReader(self.connection, self.conn), 8192)
        self.rfile = self._reader
        self._served = False

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._untrack(self.connection)
            if isinstance(self.connection, ssl.SSLSocket):
                # socketserver closes the socket it accepted, which handed its descriptor to this one
                self.server.shutdown_request(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                # here, not in accept(), so a slow client blocks only itself; CPython applies the timeout to
                # the handshake as a whole, so this also ends a client that trickles its ClientHello
                self.connection.settimeout(max(0.001, self.conn.deadline - time.monotonic()))
                self.connection.do_handshake()
            except (OSError, ValueError) as exc:
                if isinstance(exc, TimeoutError):
                    self.server.owner.refused("head_timeout")
                log.info("tls handshake failed", extra=kv(client=_client(self), err=exc))
                return
        try:
            super().handle()
        except OSError as exc:  # BrokenPipeError, ConnectionResetError, TLS errors after the handshake
            log.debug("connection closed", extra=kv(client=_client(self), err=exc))

    def handle_one_request(self) -> None:
        """One request, read under MAX_HEAD_BYTES and HEAD_TIMEOUT_S before anything else looks at it."""
        owner = self.server.owner
        self.close_connection = True
        try:
            if self._served:  # kept alive: the next request may take the idle timeout to start
                self.conn.deadline = time.monotonic() + owner.idle_timeout
                if not self._reader.peek(1):
                    return
                self.conn.deadline = time.monotonic() + HEAD_TIMEOUT_S
            lines = self._read_head()
        except TimeoutError:
            if not self._served:
                owner.refused("head_timeout")
                log.info("request head not complete within %gs", HEAD_TIMEOUT_S, extra=kv(client=_client(self)))
            return
        except _HeadTooLarge as exc:
            owner.refused("head_too_large")
            log.info("request head over %d bytes", MAX_HEAD_BYTES, extra=kv(client=_client(self)))
            self.connection.settimeout(WRITE_TIMEOUT_S)
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""  # for send_error's log
            self.send_error(414 if exc.in_request_line else 431)
            return
        if not lines:
            return
        self.connection.settimeout(WRITE_TIMEOUT_S)  # now for writing the answer: the whole of it
        self.raw_requestline = lines[0]
        socket_reader, self.rfile = self.rfile, io.BufferedReader(io.BytesIO(b"".join(lines[1:])))
        try:
            parsed = self.parse_request()  # reads the headers from the bytes already taken
        finally:
            self.rfile = socket_reader
        if not parsed:
            return
        self._live = owner.live()  # changed users and headers apply from this request on
        if self._has_body():
            # A body nobody reads would be parsed as the next request on this connection (request smuggling
            # behind a proxy that reuses connections); no endpoint here takes one, so refuse and close.
            owner.refused("request_body")
            self.send_error(400, "Request bodies are not accepted")
            self.close_connection = True
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        self.conn.busy = True
        try:
            method()
            self.wfile.flush()
        finally:
            self.conn.busy = False
            self.conn.last_active = time.monotonic()
            self._served = True

    def _read_head(self) -> list[bytes]:
        """The request line and header lines up to the empty line; [] when the client closed first."""
        budget = MAX_HEAD_BYTES
        lines: list[bytes] = []
        while True:
            line = self.rfile.readline(budget + 1)
            budget -= len(line)
            if budget < 0:
                raise _HeadTooLarge(in_request_line=not lines)
            if not line:
                if lines:
                    log.debug("connection closed mid-request", extra=kv(client=_client(self)))
                return []
            lines.append(line)
            if line in (b"\r\n", b"\n"):
                return lines

    def _has_body(self) -> bool:
        if self.headers.get_all("Transfer-Encoding"):
            return True
        return any(v.strip() != "0" for v in self.headers.get_all("Content-Length") or ())

    # BaseHTTPRequestHandler writes an access log line per request to stderr; keep it at debug.
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request", extra=kv(client=_client(self), line=format % args))

    def end_headers(self) -> None:
        for name, value in self._live.config.headers:
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/-/healthy":  # outside auth so liveness probes need no credentials; reveals nothing
            self._send(200, b"OK", "text/plain; charset=utf-8", head)
            return
        if not self._authorized(path):
            # no keep-alive without credentials: a connection proves itself or goes
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", head,
                       [("WWW-Authenticate", f'Basic realm="{REALM}"'), ("Connection", "close")])
            return
        self.conn.trusted = True
        if path == "/metrics":
            self._metrics(head)
        elif path == "/":
            self._send(200, _LANDING, "text/html; charset=utf-8", head)
        else:
            self._send(404, b"Not Found\n", "text/plain; charset=utf-8", head)

    def _authorized(self, path: str) -> bool:
        auth = self._live.auth
        if auth is None:
            return True
        creds = _basic_credentials(self.headers.get("Authorization"))
        if creds is None:
            log.info("unauthorized", extra=kv(client=_client(self), path=path, reason="no-basic-credentials"))
            return False
        user, password = creds
        if auth.check(user, password):
            return True
        # The user name is logged only when it is a configured one: a password typed into the user
        # field must not end up in the log.
        if auth.knows(user):
            log.warning("unauthorized", extra=kv(client=_client(self), user=user, reason="wrong-password"))
        else:
            log.warning("unauthorized", extra=kv(client=_client(self), reason="unknown-user"))
        return False

    def _metrics(self, head: bool) -> None:
        try:
            body, content_type = self.server.owner.render(self.headers.get("Accept"))
        except Exception as exc:  # a collector bug must answer 500, not kill the connection thread
            log.error("rendering /metrics failed", extra=kv(client=_client(self), err=typed(exc)))
            self._send(500, b"Internal Server Error\n", "text/plain; charset=utf-8", head)
            return
        extra = [("Vary", "Accept-Encoding")]
        if _accepts_gzip(self.headers.get("Accept-Encoding")):
            body = self.server.owner.gzipped(body)
            extra.append(("Content-Encoding", "gzip"))
        self._send(200, body, content_type, head, extra)

    def _send(self, status: int, body: bytes, content_type: str, head: bool,
              extra: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra or ():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


@dataclass(eq=False)
class _Conn:
    """What the server knows about one open connection, for deadlines and for choosing whom to evict."""

    sock: socket.socket
    deadline: float                 # monotonic time by which the current read phase must end
    opened: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    trusted: bool = False           # completed an authorised request (any request without basic auth)
    busy: bool = False              # writing a response: never evicted


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the process alive
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.owner = owner
        # Plain sockets are accepted; with TLS each is wrapped, and its handshake done, in its own thread
        # (_Handler.setup and handle): done in accept() a client that never speaks TLS would stall every other
        # scrape, and each connection gets the certificate current when it starts.
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] means IPv4 too
        # HTTPServer.server_bind would also call socket.getfqdn(), a reverse DNS lookup that can hang.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.owner._admit(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; keep it to one log line.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("connection error", extra=kv(client="{}:{}".format(*client_address[:2]), err=exc))
        else:
            log.error("request handling failed", extra=kv(client="{}:{}".format(*client_address[:2]), err=typed(exc)))


@dataclass(frozen=True, eq=False)
class _Live:
    """One loaded version of the web config, with what it builds: used whole by a handshake or a request."""

    config: WebConfig
    context: ssl.SSLContext | None
    auth: BasicAuth | None


_Signature = tuple[tuple[str, tuple[int, ...] | str], ...]


def _signature(files: tuple[str, ...]) -> _Signature:
    """What stat() says of each file (device, inode, size, mtime, ctime), or why it cannot; stat() follows
    symbolic links, so a Kubernetes secret volume's swapped ..data link counts as a change."""
    out: list[tuple[str, tuple[int, ...] | str]] = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            out.append((path, errno.errorcode.get(exc.errno or 0, "error")))
            continue
        out.append((path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
    return tuple(out)


def _recent(sig: _Signature) -> bool:
    newest = max((max(st[3], st[4]) for _, st in sig if isinstance(st, tuple)), default=0)
    return newest > time.time_ns() - int(_RECENT_S * 1e9)


class LiveWebConfig:
    """A web config that follows its file, as Prometheus' exporter-toolkit does.

    ``current()`` stats the config file and the certificate, key and CA files it names (microseconds) and,
    when any of them changed, loads and checks the whole config again: a new TLS context, new basic-auth
    users (the bcrypt cache is kept while the users are the same), new headers. A version that does not load
    (bad YAML, a key that does not match the certificate, a half-written file, ...) leaves the last good one
    in use; why is logged once per distinct failure, and it is tried again every RECHECK_S until it loads.
    Switching between HTTP and HTTPS needs a restart (the listening side does not change) and is refused
    the same way.
    """

    def __init__(self, config: WebConfig, reload: bool = True) -> None:
        users = config.basic_auth_users
        self._state = _Live(config, config.ssl_context(), BasicAuth(users) if users else None)
        self._files = config.watched_files() if reload else ()
        self._sig = _signature(self._files)
        self._recheck_at = time.monotonic() + RECHECK_S if _recent(self._sig) else None
        self._failure: str | None = None
        self._lock = threading.Lock()
        self.reloads = 0
        self.failures = 0

    def current(self) -> _Live:
        if not self._files or not self._stale():
            return self._state
        with self._lock:  # one thread loads; the others wait for its result (a few ms)
            if self._stale():
                self._reload()
            return self._state

    def _stale(self) -> bool:
        recheck = self._recheck_at
        return (recheck is not None and time.monotonic() >= recheck) or _signature(self._files) != self._sig

    def _reload(self) -> None:
        changed = _signature(self._files) != self._sig
        old = self._state
        path = old.config.path
        assert path is not None
        try:
            config = load_web_config(path)
            if (config.tls is None) != (old.context is None):
                raise WebConfigError(f"web config {path}: tls_server_config "
                                     f"{'removed' if config.tls is None else 'added'}; switching between HTTP "
                                     f"and HTTPS needs a restart")
            context = config.ssl_context()
        except WebConfigError as exc:
            self._sig = _signature(self._files)
            self._recheck_at = time.monotonic() + RECHECK_S
            self.failures += 1
            if str(exc) != self._failure:
                self._failure = str(exc)
                log.warning("web config not reloaded, still serving the last good one", extra=kv(err=exc))
            return
        users = config.basic_auth_users
        if users == old.config.basic_auth_users:
            auth = old.auth
        else:
            auth = BasicAuth(users) if users else None
        self._state = _Live(config, context, auth)
        self._files = config.watched_files()
        self._sig = _signature(self._files)
        self._recheck_at = time.monotonic() + RECHECK_S if _recent(self._sig) else None
        self.reloads += 1
        if changed or self._failure is not None:
            log.info("web config reloaded", extra=kv(file=path))
        self._failure = None


class MetricsServer:
    """Serve /metrics (via ``render``), / and /-/healthy, with optional TLS and basic auth.

    The socket is bound in the constructor, so ``port`` is known (and bind errors surface) before
    ``start()``.
    """

    def __init__(self, address: tuple[str, int], render: Render, web_config: WebConfig | None = None,
                 max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT_S,
                 reload: bool = True) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not idle_timeout > 0:
            raise ValueError("idle_timeout must be above 0 seconds")
        self.render = render
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refusals = dict.fromkeys(REFUSAL_REASONS, 0)
        # With reload (the default) a config read from a file follows changes to it and to the files it names.
        self._config = LiveWebConfig(web_config or WebConfig(), reload=reload)
        self.tls = self._config.current().context is not None
        self._conns: dict[socket.socket, _Conn] = {}
        # The last page compressed: CachedRenderer hands out the same bytes object for one snapshot,
        # so every gzip scrape of that snapshot reuses one compression.
        self._gz_lock = threading.Lock()
        self._gz_source: bytes | None = None
        self._gz_body = b""
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        try:
            self._httpd = _HTTPServer(address, self)
        except OSError as exc:
            # strerror stays the OS's own text; the address rides along as the "filename"
            raise OSError(exc.errno, exc.strerror or str(exc), f"{address[0]}:{address[1]}") from exc

    def live(self) -> _Live:
        """The web config in use now (checking its files for changes first)."""
        return self._config.current()

    @property
    def web_config(self) -> WebConfig:
        return self._config.current().config

    @property
    def auth(self) -> BasicAuth | None:
        return self._config.current().auth

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self._config.current().config.headers

    def gzipped(self, body: bytes) -> bytes:
        with self._gz_lock:
            if self._gz_source is body:
                return self._gz_body
        compressed = gzip.compress(body, compresslevel=6)
        with self._gz_lock:
            self._gz_source, self._gz_body = body, compressed
        return compressed

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("MetricsServer already started")
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": _POLL_INTERVAL},
                                        name="wattprint-web", daemon=True)
        self._thread.start()
        log.debug("listening", extra=kv(address=self.host, port=self.port, tls=self.tls,
                                        basic_auth=self.auth is not None))

    def shutdown(self) -> None:
        """Stop accepting, close open (keep-alive) connections and release the port; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._httpd.shutdown()  # waits for serve_forever, which polls every _POLL_INTERVAL
            self._thread.join(timeout=1.0)
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            _wake(conn)
        self._httpd.server_close()
        log.info("stopped", extra=kv(address=self.host, port=self.port))

    def refused(self, reason: str) -> None:
        with self._conns_lock:
            self.refusals[reason] += 1

    def open_connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    def collector(self, prefix: str = "wattprint_exporter_http") -> _WebCollector:
        """Refused-connection counters and the open count for the owner's registry; serve-intensity names its own
        prefix."""
        return _WebCollector(self, prefix)

    def _admit(self, sock: socket.socket) -> bool:
        """Called in the accept loop: make room for `sock` under max_connections, or refuse it."""
        victim = None
        with self._conns_lock:
            if self._stopped:
                return False
            if len(self._conns) >= self.max_connections:
                idle = [c for c in self._conns.values() if not c.busy]
                if not idle:
                    self.refusals["connection_limit"] += 1
                    return False
                victim = min(idle, key=lambda c: (c.trusted, c.last_active))
                del self._conns[victim.sock]
                self.refusals["evicted"] += 1
            self._conns[sock] = _Conn(sock, deadline=time.monotonic() + HEAD_TIMEOUT_S)
        if victim is not None:
            _wake(victim.sock)
        return True

    def _conn(self, sock: socket.socket) -> _Conn:
        with self._conns_lock:
            found = self._conns.get(sock)
        # evicted between accept and its thread starting: reads end at once
        return found if found is not None else _Conn(sock, deadline=0.0)

    def _wrap_tls(self, sock: socket.socket, live: _Live) -> ssl.SSLSocket:
        """`sock` wrapped in TLS with `live`'s context, handshake not yet done; tracked in its place."""
        assert live.context is not None
        with self._conns_lock:  # not evicted half way: _admit would shut down the socket given away here
            try:
                wrapped = live.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                self._conns.pop(sock, None)
                raise
            conn = self._conns.pop(sock, None)
            if conn is not None:
                conn.sock = wrapped
                self._conns[wrapped] = conn
        return wrapped

    def _untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.pop(conn, None)


def _wake(sock: socket.socket) -> None:
    try:
        # socket.socket's shutdown, not SSLSocket's: wake the reader without touching TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _WebCollector:
    def __init__(self, server: MetricsServer, prefix: str) -> None:
        self._server = server
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            f"{self._prefix}_refused_connections", "Connections closed by the HTTP server before an answer, by "
            "reason: connection_limit (full of busy connections), evicted (made room for a new one), "
            "head_timeout, head_too_large, request_body.", labels=["reason"])
        with self._server._conns_lock:
            counts = dict(self._server.refusals)
            open_now = len(self._server._conns)
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], counts[reason])
        yield refused
        yield GaugeMetricFamily(f"{self._prefix}_open_connections", "Connections open to the HTTP server now.",
                                value=open_now)
        yield GaugeMetricFamily(f"{self._prefix}_max_connections", "Connections the HTTP server keeps open at "
                                "most.", value=self._server.max_connections)
