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
import gzip
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

import bcrypt
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from . import __version__
from .webconfig import WebConfig

log = logging.getLogger("wattprint.web")

Render = Callable[[str | None], tuple[bytes, str]]
REALM = "wattprint"
CONNECTION_TIMEOUT = 30.0  # idle keep-alive or stalled TLS handshake; frees the thread eventually
_POLL_INTERVAL = 0.1  # how often serve_forever checks for shutdown; keeps shutdown() well under 1 s

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
    Unknown users still pay one bcrypt check (against a configured hash) so response time does not
    reveal which user names exist, and checks run one at a time so a flood of guesses cannot take every
    CPU.
    """

    def __init__(self, users: Mapping[str, bytes], cache_size: int = 1024) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = dict(users)
        self._dummy = self._users[min(self._users)]
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


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection every scrape
    server_version = f"wattprint/{__version__}"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT
    # Headers and body go out in separate writes; with Nagle on, a kept-alive scraper's delayed ACK
    # stalled each back-to-back scrape by ~40 ms (benchmarks/bench_scrape.py).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._untrack(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()  # here, not in accept(), so a slow client blocks only itself
            except (OSError, ValueError) as exc:
                log.info("tls handshake failed client=%s err=%s", _client(self), exc)
                return
        try:
            super().handle()
        except OSError as exc:  # BrokenPipeError, ConnectionResetError, TLS errors after the handshake
            log.debug("connection closed client=%s err=%r", _client(self), exc)

    # BaseHTTPRequestHandler writes an access log line per request to stderr; keep it at debug.
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("client=%s %s", _client(self), format % args)

    def end_headers(self) -> None:
        for name, value in self.server.owner.headers:
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
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", head,
                       [("WWW-Authenticate", f'Basic realm="{REALM}"')])
            return
        if path == "/metrics":
            self._metrics(head)
        elif path == "/":
            self._send(200, _LANDING, "text/html; charset=utf-8", head)
        else:
            self._send(404, b"Not Found\n", "text/plain; charset=utf-8", head)

    def _authorized(self, path: str) -> bool:
        auth = self.server.owner.auth
        if auth is None:
            return True
        creds = _basic_credentials(self.headers.get("Authorization"))
        if creds is None:
            log.info("unauthorized client=%s path=%r reason=no-basic-credentials", _client(self), path)
            return False
        user, password = creds
        if auth.check(user, password):
            return True
        # The user name is logged only when it is a configured one: a password typed into the user
        # field must not end up in the log.
        if auth.knows(user):
            log.warning("unauthorized client=%s user=%r reason=wrong-password", _client(self), user)
        else:
            log.warning("unauthorized client=%s reason=unknown-user", _client(self))
        return False

    def _metrics(self, head: bool) -> None:
        try:
            body, content_type = self.server.owner.render(self.headers.get("Accept"))
        except Exception as exc:  # a collector bug must answer 500, not kill the connection thread
            log.error("rendering /metrics failed client=%s err=%r", _client(self), exc)
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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never keep the process alive
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], owner: MetricsServer,
                 context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.owner = owner
        super().__init__(address, _Handler)
        if context is not None:
            # Handshakes are deferred to the connection's thread (see _Handler.handle): done in accept()
            # a client that never speaks TLS would stall every other scrape.
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] means IPv4 too
        # HTTPServer.server_bind would also call socket.getfqdn(), a reverse DNS lookup that can hang.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; keep it to one log line.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("connection error client=%s err=%r", client_address, exc)
        else:
            log.error("request handling failed client=%s err=%r", client_address, exc)


class MetricsServer:
    """Serve /metrics (via ``render``), / and /-/healthy, with optional TLS and basic auth.

    The socket is bound in the constructor, so ``port`` is known (and bind errors surface) before
    ``start()``.
    """

    def __init__(self, address: tuple[str, int], render: Render, web_config: WebConfig | None = None) -> None:
        self.render = render
        self.web_config = web_config or WebConfig()
        self.headers = self.web_config.headers
        users = self.web_config.basic_auth_users
        self.auth = BasicAuth(users) if users else None
        context = self.web_config.ssl_context()
        self.tls = context is not None
        self._conns: set[socket.socket] = set()
        # The last page compressed: CachedRenderer hands out the same bytes object for one snapshot,
        # so every gzip scrape of that snapshot reuses one compression.
        self._gz_lock = threading.Lock()
        self._gz_source: bytes | None = None
        self._gz_body = b""
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        try:
            self._httpd = _HTTPServer(address, self, context)
        except OSError as exc:
            # strerror stays the OS's own text; the address rides along as the "filename"
            raise OSError(exc.errno, exc.strerror or str(exc), f"{address[0]}:{address[1]}") from exc

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
        log.debug("listening address=%s port=%d tls=%s basic_auth=%s", self.host, self.port,
                 self.tls, self.auth is not None)

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
            try:
                # socket.socket's shutdown, not SSLSocket's: wake the reader without touching TLS state
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        log.info("stopped address=%s port=%d", self.host, self.port)

    def _track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)
            late = self._stopped  # a connection accepted just before shutdown() took its snapshot
        if late:
            try:
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def _untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)
