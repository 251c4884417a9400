"""Pod UIDs by namespace and name, from the names of the kubelet's pod log directories.

The PodResources API names pods by namespace and name, but wattprint's job id is the pod UID (what
kube-state-metrics exports as ``uid``, and what the pipeline imports pods by). The kubelet keeps one directory per
pod under ``/var/log/pods`` named ``<namespace>_<name>_<uid>`` (namespaces and pod names are DNS names, so they
hold no ``_``); only those names are listed here, never a file opened. That needs neither the API server (no
credentials, no load on it) nor the host's PID namespace.

A pod deleted and created again under the same name (a StatefulSet's) has a new UID, and the old directory may
linger until the kubelet removes it: the newest directory wins, and the case is counted as ``ambiguous_pod_uid``.
"""

from __future__ import annotations

import os
import re

DEFAULT_DIR = "/var/log/pods"

_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[0-9a-fA-F]{32}", re.ASCII)


class PodUidIndex:
    """(namespace, name) -> UID; the directory is listed again only when its modification time changes."""

    def __init__(self, path: str = DEFAULT_DIR) -> None:
        self.path = path
        self._mtime_ns: int | None = None
        self._uids: dict[tuple[str, str], str] = {}
        self.ambiguous: set[tuple[str, str]] = set()

    def refresh(self) -> str:
        """Re-list the directory if it changed; why it cannot be read, or "" when it can."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            self._mtime_ns, self._uids = None, {}
            return f"{self.path}: {exc.strerror or exc}"
        if mtime == self._mtime_ns:
            return ""
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            self._mtime_ns, self._uids = None, {}
            return f"{self.path}: {exc.strerror or exc}"
        newest: dict[tuple[str, str], tuple[int, str]] = {}
        ambiguous = set()
        for entry in entries:
            parts = entry.name.split("_")
            if len(parts) != 3 or not _UUID.fullmatch(parts[2]):
                continue
            try:
                # a new pod's directory is made when its sandbox starts; the old one is only ever left behind
                born = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            key = (parts[0], parts[1])
            uid = parts[2].lower()
            if key in newest:
                ambiguous.add(key)
                if (born, uid) < newest[key]:
                    continue
            newest[key] = (born, uid)
        self._mtime_ns = mtime
        self._uids = {key: uid for key, (_, uid) in newest.items()}
        self.ambiguous = ambiguous
        return ""

    def uid(self, namespace: str, name: str) -> str | None:
        return self._uids.get((namespace, name))
