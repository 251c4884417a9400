"""The kernel's name of an amdgpu GPU or compute partition in sysfs: what AMD's device plugin allocates it by.

AMD's Kubernetes device plugin (ROCm/k8s-device-plugin, ``internal/pkg/amdgpu/amdgpu.go``, ``GetAMDGPUs``) names
each GPU by its PCI device under ``/sys/module/amdgpu/drivers/pci:amdgpu/`` (its address, ``0000:0c:00.0``) and
each further compute partition of an MI300 by its platform device ``/sys/devices/platform/amdgpu_xcp_<n>``,
keeping those whose DRM render node the KFD topology lists. The first partition is the PCI device itself: the
kernel gives it the GPU's own DRM device and allocates one ``amdgpu_xcp`` platform device for each other one
(``amdgpu_xcp_drv.c``; named ``amdgpu_xcp.<n>`` before a 2024 patch renamed them, which the plugin's
``amdgpu_xcp_*`` glob does not list).

From amdsmi's side the same name is reached through the processor's KFD node id (``amdsmi_get_gpu_kfd_info``,
6.3+): the node's ``drm_render_minor`` in ``class/kfd/kfd/topology/nodes/<id>/properties``, then the device that
holds that render node, the target of ``class/drm/renderD<minor>/device``. Only names are read; nothing is opened
but the one properties file.
"""

from __future__ import annotations

import os

# a KFD properties file is a few dozen "name value" lines
_MAX_PROPERTIES_BYTES = 64 * 1024


def render_minor(sysfs: str, node_id: int) -> int | None:
    """The DRM render minor of KFD topology node ``node_id`` (128 for renderD128), or None (a CPU node, no file)."""
    path = os.path.join(sysfs, "class", "kfd", "kfd", "topology", "nodes", str(node_id), "properties")
    try:
        with open(path, "rb") as fh:
            text = fh.read(_MAX_PROPERTIES_BYTES).decode("ascii", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "drm_render_minor":
            value = value.strip()
            # CPU nodes read 0 (and -1 on some kernels): no render node
            return int(value) if value.isdigit() and int(value) > 0 else None
    return None


def render_device(sysfs: str, node_id: int) -> str | None:
    """The sysfs name of the device holding KFD node ``node_id``'s render node (``0000:0c:00.0``,
    ``amdgpu_xcp_3``), lower case, or None where any step cannot be read."""
    minor = render_minor(sysfs, node_id)
    if minor is None:
        return None
    try:
        target = os.readlink(os.path.join(sysfs, "class", "drm", f"renderD{minor}", "device"))
    except OSError:
        return None
    name = os.path.basename(target.rstrip("/"))
    return name.lower() or None
