"""Node identity: when two spellings of a host name are the same machine.

Exporters, dcgm-exporter, sacct and Kubernetes spell one node differently: `gpu01` (sacct), `gpu01.cluster.local`
(a FQDN `--hostname`), `GPU01` (a BMC inventory), `gpu01:9400` (an `instance` label used as the host). The rule,
written once here and once as SQL macros in `sql/macros.sql` (tests/test_nodes.py checks the two agree):

* compare without case and surrounding blanks;
* a `:port` suffix is not part of the name (`gpu01:9400`, `[fe80::1]:9400`);
* an IP address is its own key; any other name's key is its short name, the part before the first dot.

A cluster's `nodes` globs match the full name (without port) or the short name, case-insensitively.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

_PORT = re.compile(r"^([^:]*):[0-9]+$")
_BRACKETED = re.compile(r"^\[(.*)\](:[0-9]+)?$")
_IPV4 = re.compile(r"^[0-9.]+$")
_BLANKS = re.compile(r"^[\t\n\f\r ]+|[\t\n\f\r ]+$")     # what the SQL twin's \s strips


def _trim(hostname: str) -> str:
    return _BLANKS.sub("", hostname)


def host_part(hostname: str) -> str:
    """The name in lower case without blanks and without a `:port` suffix."""
    h = _trim(hostname).lower()
    m = _BRACKETED.match(h)
    if m:
        return m.group(1)
    m = _PORT.match(h)
    return m.group(1) if m else h


def node_key(hostname: str) -> str:
    """The key two spellings of one node share: the short name, or the whole address for an IP."""
    h = host_part(hostname)
    if _IPV4.match(h) or ":" in h:
        return h
    return h.split(".", 1)[0]


def node_matches(hostname: str, pattern: str) -> bool:
    """A cluster's `nodes` glob against a host: the full name or the short name, case-insensitively."""
    if not _trim(hostname):
        return False
    p = pattern.lower()
    full = _trim(hostname).lower()
    return fnmatchcase(full, p) or fnmatchcase(host_part(hostname), p) or fnmatchcase(node_key(hostname), p)
