"""Load a Prometheus exporter-toolkit web config (--web.config.file).

Operators already write this file for node_exporter and dcgm-exporter, so wattprint reads the same
format rather than inventing its own: ``tls_server_config``, ``basic_auth_users`` (bcrypt hashes) and
``http_server_config.headers``. Everything is checked when the file is loaded, so a typo fails at
start-up with a message naming the file and the key instead of leaving /metrics open or unreachable.
Keys exporter-toolkit knows but wattprint cannot honour are refused too: silently ignoring, say,
``client_allowed_sans`` would weaken what the operator asked for. The one exception is
``prefer_server_cipher_suites``, common in node_exporter configs: Go itself has ignored it since 1.18 and
with TLS 1.2+ and OpenSSL's default cipher order it changes nothing, so it is accepted (true or false) and
has no effect.

A running server reloads the file, and the certificate, key and CA files it names, when they change
(see web.py: ``WebConfig.watched_files``); this module only loads and checks one version.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# Python's ssl module cannot demand a client certificate without verifying it, so RequireAnyClientCert
# is enforced as RequireAndVerifyClientCert: stricter than exporter-toolkit, never looser.
_NEEDS_CA = frozenset({"RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"})
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

_TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
             "prefer_server_cipher_suites")
# exporter-toolkit options wattprint does not implement; tolerated only when empty.
_TLS_UNSUPPORTED = ("cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "curve_preferences")
_HTTP_KEYS = ("headers", "http2")
_BCRYPT = re.compile(rb"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# The server sets these itself; letting the config override them would break framing or auth.
_RESERVED_HEADERS = frozenset({
    "connection", "content-encoding", "content-length", "content-type", "date", "keep-alive", "server",
    "transfer-encoding", "vary", "www-authenticate",
})


class WebConfigError(ValueError):
    """The web config file cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    """A validated web config. ``path`` is kept so later errors can still name the file."""

    path: str | None = None
    tls: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh server-side context, or None for plain HTTP.

        Built on each call so a server started after a certificate rotation picks up the new files.
        """
        if self.tls is None:
            return None
        return _build_context(self.tls, self.path or "<web config>")

    def watched_files(self) -> tuple[str, ...]:
        """The files whose change means this config should be loaded again: the file itself and the
        certificate, key and client CA files it names. Empty for a config not read from a file."""
        if self.path is None:
            return ()
        files = [self.path]
        if self.tls is not None:
            files += [self.tls.cert_file, self.tls.key_file]
            if self.tls.client_ca_file:
                files.append(self.tls.client_ca_file)
        return tuple(files)


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and validate ``path``; raise WebConfigError on anything that would not work as written."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"web config {path}: cannot read the file ({exc}); "
                             f"check --web.config.file") from None
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise WebConfigError(f"web config {path}: invalid YAML: {_one_line(exc)}; fix the syntax") from None
    if doc is None:  # an empty file means plain HTTP without auth, as in exporter-toolkit
        return WebConfig(path=path)
    top = _mapping(doc, path, "(top level)")
    _check_keys(top, _TOP_KEYS, path, "")

    tls = None
    if top.get("tls_server_config") is not None:
        tls = _tls_config(_mapping(top["tls_server_config"], path, "tls_server_config"), path)
    users = _users(top.get("basic_auth_users"), path)
    headers: tuple[tuple[str, str], ...] = ()
    if top.get("http_server_config") is not None:
        http = _mapping(top["http_server_config"], path, "http_server_config")
        _check_keys(http, _HTTP_KEYS, path, "http_server_config.")
        if http.get("http2") is not None and not isinstance(http["http2"], bool):
            raise WebConfigError(f"web config {path}: http_server_config.http2: expected true or false "
                                 f"(wattprint speaks HTTP/1.1 only, so it has no effect)")
        headers = _headers(http.get("headers"), path)
    config = WebConfig(path=path, tls=tls, basic_auth_users=users, headers=headers)
    config.ssl_context()  # load the certificate now, so a bad cert/key pair fails at start-up
    return config


# -- parsing helpers ------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which would otherwise silently keep the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: construct_mapping reports it properly
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _mapping(value: Any, path: str, key: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise WebConfigError(f"web config {path}: {key}: expected a mapping of keys to values, "
                             f"got {type(value).__name__}")
    return value


def _check_keys(mapping: dict[Any, Any], known: tuple[str, ...], path: str, prefix: str) -> None:
    for key in mapping:
        if key not in known:
            raise WebConfigError(f"web config {path}: {prefix}{key}: unknown key; "
                                 f"expected one of {', '.join(known)} (check the spelling and indentation)")


def _string(mapping: dict[Any, Any], key: str, path: str, prefix: str) -> str | None:
    value = mapping.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WebConfigError(f"web config {path}: {prefix}{key}: expected a string, got {value!r}; quote it")
    return value


def _tls_config(raw: dict[Any, Any], path: str) -> TLSServerConfig:
    p = "tls_server_config."
    for key in _TLS_UNSUPPORTED:
        if raw.get(key) not in (None, "", []):
            raise WebConfigError(f"web config {path}: {p}{key}: exporter-toolkit option not supported by "
                                 f"wattprint; remove it (use cert_file, key_file and client_ca_file "
                                 f"for files)")
    _check_keys({k: v for k, v in raw.items() if k not in _TLS_UNSUPPORTED}, _TLS_KEYS, path, p)

    base = os.path.dirname(os.path.abspath(path))
    files: dict[str, str | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        value = _string(raw, key, path, p)
        files[key] = None if value is None else os.path.join(base, value)  # absolute paths stay as they are
    for key in ("cert_file", "key_file"):
        if files[key] is None:
            raise WebConfigError(f"web config {path}: {p}{key}: missing; tls_server_config needs both "
                                 f"cert_file and key_file (remove tls_server_config to serve plain HTTP)")
    for key, file in files.items():
        if file is None:
            continue
        try:
            with open(file, "rb"):
                pass
        except OSError as exc:
            raise WebConfigError(f"web config {path}: {p}{key}: cannot read {file} ({exc.strerror}); "
                                 f"relative paths are resolved against the config file's directory") from None

    prefer = raw.get("prefer_server_cipher_suites")
    if prefer is not None and not isinstance(prefer, bool):
        raise WebConfigError(f"web config {path}: {p}prefer_server_cipher_suites: expected true or false "
                             f"(accepted for node_exporter compatibility; it has no effect)")
    auth = _string(raw, "client_auth_type", path, p) or "NoClientCert"
    if auth == "RequireClientCert":  # exporter-toolkit's old spelling
        auth = "RequireAnyClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        raise WebConfigError(f"web config {path}: {p}client_auth_type: {auth!r} is not one of "
                             f"{', '.join(CLIENT_AUTH_TYPES)}")
    if auth in _NEEDS_CA and files["client_ca_file"] is None:
        raise WebConfigError(f"web config {path}: {p}client_auth_type: {auth} verifies client certificates, "
                             f"so set {p}client_ca_file to the PEM file of the CA that signs them")
    if auth == "NoClientCert" and files["client_ca_file"] is not None:
        raise WebConfigError(f"web config {path}: {p}client_ca_file: set but client_auth_type is "
                             f"NoClientCert; set client_auth_type (e.g. RequireAndVerifyClientCert) "
                             f"or remove client_ca_file")

    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = _string(raw, key, path, p) or default
        if value not in TLS_VERSIONS:
            raise WebConfigError(f"web config {path}: {p}{key}: {value!r} is not supported; "
                                 f"use one of {', '.join(TLS_VERSIONS)}")
        versions[key] = value
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise WebConfigError(f"web config {path}: {p}min_version: {versions['min_version']} is above "
                             f"max_version {versions['max_version']}; lower min_version or raise max_version")
    return TLSServerConfig(
        cert_file=files["cert_file"] or "",
        key_file=files["key_file"] or "",
        client_auth_type=auth,
        client_ca_file=files["client_ca_file"],
        min_version=versions["min_version"],
        max_version=versions["max_version"],
    )


def _users(raw: Any, path: str) -> dict[str, bytes]:
    if raw is None:
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in _mapping(raw, path, "basic_auth_users").items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"web config {path}: basic_auth_users: user name {user!r} is not usable; "
                                 f"quote it, and leave out ':' (Basic auth splits on it)")
        where = f"web config {path}: basic_auth_users.{user}"
        if not isinstance(hashed, str):
            raise WebConfigError(f"{where}: expected a bcrypt hash string, got {type(hashed).__name__}; "
                                 f"quote it")
        data = hashed.strip().encode("ascii", "replace")
        if not _BCRYPT.match(data):
            raise WebConfigError(f"{where}: not a bcrypt hash (expected $2a$/$2b$/$2y$, cost and 53 "
                                 f"characters); "
                                 f"store the output of e.g. `htpasswd -nBC 10 \"\" | tr -d ':\\n'`, "
                                 f"never the plain password")
        users[user] = data
    return users


def _headers(raw: Any, path: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    out: list[tuple[str, str]] = []
    for name, value in _mapping(raw, path, "http_server_config.headers").items():
        where = f"web config {path}: http_server_config.headers.{name}"
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise WebConfigError(f"{where}: not a valid HTTP header name")
        if name.lower() in _RESERVED_HEADERS:
            raise WebConfigError(f"{where}: set by the server itself and cannot be configured; remove it")
        if not isinstance(value, str):
            raise WebConfigError(f"{where}: expected a string value, got {value!r}; quote it")
        if any(c in value for c in "\r\n\0"):
            raise WebConfigError(f"{where}: value contains a line break or NUL; remove it")
        out.append((name, value))
    return tuple(out)


def _build_context(tls: TLSServerConfig, path: str) -> ssl.SSLContext:
    p = f"web config {path}: tls_server_config."
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]

    def no_passphrase() -> bytes:
        # Without a callback OpenSSL would prompt on the terminal for an encrypted key and hang a daemon.
        raise WebConfigError(f"{p}key_file: {tls.key_file} is encrypted; wattprint needs an unencrypted key "
                             f"(e.g. `openssl pkey -in KEY -out KEY.plain`)")

    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file, password=no_passphrase)
    except WebConfigError:
        raise
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"{p}cert_file/key_file: cannot load {tls.cert_file} with {tls.key_file} "
                             f"({_one_line(exc)}); both must be PEM and the key must match the "
                             f"certificate") from None
    if tls.client_ca_file:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"{p}client_ca_file: cannot load {tls.client_ca_file} ({_one_line(exc)}); "
                                 f"it must hold PEM CA certificates") from None
    if tls.client_auth_type in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif tls.client_auth_type == "VerifyClientCertIfGiven" or (
        tls.client_auth_type == "RequestClientCert" and tls.client_ca_file
    ):
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:  # NoClientCert, or RequestClientCert without a CA: the certificate would not be used anyway
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
