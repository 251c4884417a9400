"""GET one Redfish resource as JSON: basic auth, TLS verified, bounded in time and size, every failure a reason.

Credentials: --redfish-user with the password from --redfish-password-file (re-read when the file changes) or
$WATTPRINT_REDFISH_PASSWORD; never in the URL, which is named in messages. Requests go to --redfish-url's origin
only: a redirect elsewhere is refused (safehttp.SameOriginSession), and so is a resource link (@odata.id) that
names another host, since the BMC's links decide where the next request, with its Authorization header, goes.
TLS: verified against the system CAs, or --redfish-ca-file (a BMC's own CA, or its self-signed certificate).
"""

from __future__ import annotations

import json
import logging
import os
import re
import ssl
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ...common.safehttp import CrossOriginRedirect, SameOriginSession, Scrubber, origin, origin_text, redact_url
from ...common.secretfile import SecretFile, SecretFileError
from . import source as S

log = logging.getLogger("wattprint.redfish")

URL_FLAG = "--redfish-url"
USER_FLAG = "--redfish-user"
PASSWORD_FILE_FLAG = "--redfish-password-file"
PASSWORD_ENV = "WATTPRINT_REDFISH_PASSWORD"
CA_FLAG = "--redfish-ca-file"
ROOT = "/redfish/v1"
# A Redfish resource is a few KiB; a chassis collection of a large GPU server a few tens.
MAX_BODY_BYTES = 1024 * 1024
_EXAMPLE = "e.g. https://bmc.node1.example/"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_VERIFY_REASON = re.compile(r"certificate verify failed: ([^()'\"]+)")


class RedfishHttp:
    def __init__(self, url: str, *, timeout: float = 5.0, user: str | None = None, password_file: str | None = None,
                 password: str | None = None, ca_file: str | None = None,
                 session: requests.Session | None = None) -> None:
        self.url = url
        self.where = redact_url(url)   # the URL as messages show it
        self.timeout = timeout
        self.user = user or None
        self.ca_file = ca_file or None
        self._secret = SecretFile(password_file, PASSWORD_FILE_FLAG) if password_file else None
        self._password = password or None    # from the environment; a password file wins over it
        self._scrub = Scrubber()
        self.session = session or SameOriginSession()
        self.origin = ""

    @property
    def bmc(self) -> str:
        """The BMC's address as the state file names it (bmc_address)."""
        return bmc_address(self.url)

    @property
    def plain_http(self) -> bool:
        return self.origin.startswith("http:")

    def open(self) -> None:
        """Check the URL, the credentials and the CA file (S.NodePowerUnavailable): the BMC itself is not asked."""
        # Any "@" is taken for userinfo: a raw "/", "?" or "#" in a password hides it from urlsplit.
        if "@" in self.url:
            raise S.NodePowerUnavailable(
                f"{URL_FLAG} {self.where!r} contains credentials (user:password@), which would show in logs: "
                f"remove them and use {USER_FLAG} with {PASSWORD_FILE_FLAG} FILE or ${PASSWORD_ENV}")
        try:
            parts = urlsplit(self.url)
            _ = parts.port   # raises ValueError on a bad port
        except ValueError as exc:
            raise S.NodePowerUnavailable(f"invalid {URL_FLAG} {self.where!r}: {exc}; use {_EXAMPLE}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise S.NodePowerUnavailable(f"invalid {URL_FLAG} {self.where!r}: need an http(s) URL with a host, "
                                         f"{_EXAMPLE}")
        if parts.path.rstrip("/") not in ("", ROOT) or parts.query or parts.fragment:
            raise S.NodePowerUnavailable(
                f"{URL_FLAG} {self.where!r}: give the BMC's address alone (the Redfish service is at {ROOT} on it), "
                f"{_EXAMPLE}")
        self.origin = origin_text(self.url)
        if self._secret is not None and not self.user:
            raise S.NodePowerUnavailable(f"{PASSWORD_FILE_FLAG} was given without {USER_FLAG}; add {USER_FLAG} USER")
        if self.user:
            if self._secret is not None:
                try:
                    self._password = self._secret.load()
                except SecretFileError as exc:
                    raise S.NodePowerUnavailable(str(exc)) from None
            if not self._password:
                raise S.NodePowerUnavailable(
                    f"{USER_FLAG} {self.user!r} has no password: pass {PASSWORD_FILE_FLAG} FILE "
                    f"(or WATTPRINT_REDFISH_PASSWORD_FILE) or set ${PASSWORD_ENV}")
            self._scrub = Scrubber(basic_auth=[(self.user, self._password)])
        if self.ca_file:
            try:
                ssl.create_default_context(cafile=self.ca_file)   # a bad CA file fails here, not every poll
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
                raise S.NodePowerUnavailable(f"{CA_FLAG} {self.ca_file}: cannot load CA certificates ({reason}); "
                                             "give a readable PEM file") from None
            if parts.scheme == "http":
                raise S.NodePowerUnavailable(f"{CA_FLAG} was given but {URL_FLAG} {self.where!r} is plain http: "
                                             "use https:// (or drop the CA file)")

    def _auth(self) -> tuple[str, str] | None:
        if not self.user:
            return None
        if self._secret is not None:
            problem = self._secret.refresh()
            if problem:
                log.warning(problem)
            if self._secret.value != self._password:   # rotated: scrub the new one from what the BMC sends back
                self._password = self._secret.value
                self._scrub = Scrubber(basic_auth=[(self.user, self._password)])
        assert self._password is not None
        return self.user, self._password

    def resolve(self, link: str) -> str:
        """The URL of a resource path or link (an @odata.id), refused when it leaves the configured origin."""
        url = urljoin(self.origin + "/", link)
        if origin(url) != origin(self.origin):
            raise S.NodePowerError(S.REDIRECT, f"Redfish service at {self.where}: a link names another origin "
                                               f"({redact_url(url)}); refused, credentials go to {self.origin} only")
        return url

    def get(self, link: str) -> dict[str, Any]:
        """The JSON object at `link` (a path such as /redfish/v1/Chassis), or S.NodePowerError."""
        url = self.resolve(link)
        path = urlsplit(url).path
        deadline = time.monotonic() + self.timeout
        try:
            with self.session.get(url, timeout=self.timeout, stream=True, auth=self._auth(),
                                  verify=self.ca_file or True, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise self._status_error(resp.status_code, path)
                body = bytearray()
                # requests' timeout is per socket read; a trickling BMC needs its own deadline.
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if time.monotonic() > deadline:
                        raise requests.Timeout()
                    if len(body) > MAX_BODY_BYTES:
                        raise S.NodePowerError(S.BAD_RESPONSE, f"Redfish {path} at {self.origin}: larger than "
                                                               f"{MAX_BODY_BYTES} bytes")
        except CrossOriginRedirect as exc:
            raise S.NodePowerError(S.REDIRECT, f"Redfish service at {self.where}: {exc.problem}; if "
                                               f"{exc.target_origin} is the BMC, use it as {URL_FLAG}") from None
        except requests.exceptions.SSLError as exc:
            m = _VERIFY_REASON.search(str(exc))
            detail = f"certificate verify failed: {m.group(1).strip()}" if m else "TLS handshake failed"
            raise S.NodePowerError(S.TLS, f"Redfish service at {self.where}: {detail}; give the BMC's CA (or its "
                                          f"self-signed certificate) with {CA_FLAG}") from None
        except requests.Timeout:
            raise S.NodePowerError(S.TIMEOUT, f"Redfish {path} at {self.origin}: no answer within "
                                              f"{self.timeout:g} s (--node-power-timeout)") from None
        except requests.RequestException as exc:
            raise S.NodePowerError(S.CONNECTION, f"Redfish service at {self.where}: cannot connect "
                                                 f"({type(exc).__name__})") from None
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            snippet = self._scrub.snippet(body[:2048].decode("utf-8", errors="replace"), 60)
            raise S.NodePowerError(S.BAD_RESPONSE, f"Redfish {path} at {self.origin}: not JSON: {snippet!r}") from None
        if not isinstance(doc, dict):
            raise S.NodePowerError(S.BAD_RESPONSE, f"Redfish {path} at {self.origin}: not a JSON object")
        return doc

    def _status_error(self, status: int, path: str) -> S.NodePowerError:
        where = f"Redfish {path} at {self.origin}: HTTP {status}"
        if status in (401, 403):
            hint = f"check {USER_FLAG} and the password" if self.user else f"the BMC wants {USER_FLAG}"
            return S.NodePowerError(S.UNAUTHORIZED, f"{where} ({hint})")
        if status == 404:
            return S.NodePowerError(S.NOT_FOUND, where)
        return S.NodePowerError(S.HTTP_ERROR, where)

    def close(self) -> None:
        self.session.close()


def bmc_address(url: str) -> str:
    """What identifies the BMC behind `url` in the state file: its host, lower case, with the port only where it is
    not the scheme's default. The scheme is left out (a BMC moved from http to https keeps its counter); the port is
    kept (two BMC endpoints on one address are two BMCs). "" for a URL without a host (refused at open anyway)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if not host:
        return ""
    name = f"[{host}]" if ":" in host else host
    return name if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{name}:{port}"


def password_from_env() -> str | None:
    return os.environ.get(PASSWORD_ENV) or None
