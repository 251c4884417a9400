"""A stand-in for AMD's ``amdsmi`` Python package (ROCm amd-smi-lib), for machines with no AMD GPU.

``make_fake_amdsmi(version, sockets)`` returns a fresh module object following the real package's shapes, as read
in the PyPI sdists' ``amdsmi/amdsmi_interface.py``, ``amdsmi_wrapper.py`` and ``amdsmi_exception.py`` (6.2.4,
6.3.3, 6.4.3, 7.0.2):

* the functions by their real names; every getter checks ``isinstance(handle,
  amdsmi_wrapper.amdsmi_processor_handle)`` (a ctypes ``c_void_p``) and raises ``AmdSmiParameterException``
  otherwise; ``amdsmi_init`` refuses a flag that is not an ``AmdSmiInitFlags``;
* failures as ``AmdSmiLibraryException(code)`` with ``get_error_code()``, the codes named
  ``amdsmi_wrapper.AMDSMI_STATUS_*`` with each release's numbers (MORE_DATA is 57 in 6.4, 39 in 7.0);
* the version differences: the accumulator is ``power`` in 6.2, ``power`` and ``energy_accumulator`` in 6.3,
  ``energy_accumulator`` from 6.4; ``socket_power`` joins ``amdsmi_get_power_info`` in 7.0 (which in 6.4 takes
  ``sensor_ind=0``); ``amdsmi_get_gpu_kfd_info`` from 6.3, ``amdsmi_get_gpu_xcd_counter`` from 6.4;
  ``cu_occupancy`` in the process list from 7.0; a field the GPU lacks is ``"N/A"``;
* ``amdsmi_get_gpu_device_bdf`` in every release: ``_format_bdf``'s lower-case hex ``dddd:bb:dd.f``; a compute
  partition's function is its partition id (``0000:0c:00.1`` for partition 1: ``amd-smi list -e`` in CPX, amdsmi's
  changelog for ROCm 6.4.1), and ``amdsmi_get_gpu_kfd_info``'s ``node_id`` is the processor's KFD topology node.

``write_sysfs`` lays out the kernel's side of the same node: the KFD topology nodes with their
``drm_render_minor`` and each render node's ``device`` link, to the GPU's PCI device for a whole GPU or its first
partition and to ``amdgpu_xcp_<n>`` platform devices for the other partitions (Linux ``amdgpu_xcp_drv.c``: seven
per GPU, numbered across the node), which is what AMD's device plugin names devices by.

The counter resolution defaults to 15.300000190734863 µJ: the C float of the 15.3 rocm_smi_lib hard-codes
(``kEnergyCounterResolution``, "hard-coded for now since all ASICs have same resolution"), the value a real
MI100 returned (AMDResearch/hpcfund#21). Each socket accumulates its power exactly (``advance``), or from the
wall clock (``clock=time.monotonic``, for the exporter process). ``fail(gpu, call, status)`` makes one call on one
processor raise until cleared.
"""

from __future__ import annotations

import ctypes
import enum
import json
import os
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

VERSIONS = ("6.2", "6.3", "6.4", "7.0")
FIRST_GPU_NODE = 2        # KFD topology nodes 0 and 1 are the two CPU sockets; a GPU processor's is 2 + its handle
RESOLUTION_UJ = float(ctypes.c_float(15.3).value)   # 15.300000190734863
MI300X = "AMD Instinct MI300X"
MI250X = "AMD Instinct MI250X"

# AMDSMI_STATUS_* of amdsmi_wrapper.py (the same in 6.2.4 and 7.0.2 but for MORE_DATA)
_STATUS = {"SUCCESS": 0, "INVAL": 1, "NOT_SUPPORTED": 2, "NOT_YET_IMPLEMENTED": 3, "FAIL_LOAD_MODULE": 4,
           "TIMEOUT": 8, "RETRY": 9, "NO_PERM": 10, "BUSY": 30, "NOT_FOUND": 31, "NOT_INIT": 32,
           "DRIVER_NOT_LOADED": 34, "NO_DATA": 40, "MAP_ERROR": 0xFFFFFFFE, "UNKNOWN_ERROR": 0xFFFFFFFF}


@dataclass
class FakeProcess:
    pid: int
    busy: float                 # fraction of wall time on the graphics engine
    gfx_ns: int = 0


@dataclass
class FakePartition:
    """One processor handle: the whole GPU in SPX, one XCP in a partitioned mode."""

    uuid: str
    bdf: str
    partition_id: int = 0
    xcds: int = 8
    gfx_activity: int | str = 0             # % or "N/A"
    vram_used_mb: int = 2048
    processes: list[FakeProcess] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)   # call -> AMDSMI_STATUS_* name ("*": every call)
    render_minor: int = 128                 # its DRM render node, /dev/dri/renderD<minor>
    drm_device: str = ""                    # the sysfs device holding that node: the PCI address or amdgpu_xcp_<n>


@dataclass
class FakeSocket:
    """One physical GPU: one energy accumulator and one socket power, whatever its partitions."""

    partitions: list[FakePartition]
    power_w: float = 140.0                  # an idle MI300X
    market_name: str = MI300X
    accumulator: int = 123_456_789          # counts since boot
    resolution: float = RESOLUTION_UJ
    mode: str = "SPX"
    power_limit_w: int = 750
    power_keys: dict[str, Any] | None = None   # exact power_info values, overriding the release's shape
    carry_uj: Fraction = Fraction(0)


def mi300x(index: int, mode: str = "SPX", power_w: float = 140.0) -> FakeSocket:
    """An MI300X OAM at bus 0x0c + index*0x10 (8 XCDs); in CPX mode eight partitions of one XCD each. Partition p
    renders on renderD(128 + 8*index + p); the first is the PCI device's, the others the platform devices
    amdgpu_xcp_<7*index + p - 1> (seven per GPU, allocated in GPU order)."""
    bus = 0x0C + 0x10 * index
    count = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}[mode]
    parts = [FakePartition(uuid=f"{0x3EFF74B5 + index:08x}-0000-1000-80{p:02x}-5a0b{index:02x}c1e2d3",
                           bdf=f"0000:{bus:02x}:00.{p}", partition_id=p, xcds=8 // count,
                           render_minor=128 + 8 * index + p,
                           drm_device=f"0000:{bus:02x}:00.0" if p == 0 else f"amdgpu_xcp_{7 * index + p - 1}")
             for p in range(count)]
    return FakeSocket(partitions=parts, power_w=power_w, mode=mode)


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        names = {v: k for k, v in _STATUS.items()}
        self.err_info = f"AMDSMI_STATUS_{names.get(err_code, 'UNKNOWN_ERROR')}"

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self) -> str:
        return self.err_info

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiParameterException(AmdSmiException):
    def __init__(self, received: object, expected: object, msg: str | None = None) -> None:
        super().__init__(msg)
        self.err_code = None
        self.err_msg = msg or f"Invalid parameter: {received!r}, expected {expected!r}"


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8
    INIT_AMD_APUS = 3


def make_fake_amdsmi(version: str = "6.4", sockets: list[FakeSocket] | None = None,
                     clock: Callable[[], float] | None = None, init_status: str | None = None) -> types.ModuleType:
    if version not in VERSIONS:
        raise ValueError(f"version {version!r}: one of {VERSIONS}")
    at_least = tuple(int(x) for x in version.split("."))
    m = types.ModuleType("amdsmi")
    wrapper = types.ModuleType("amdsmi.amdsmi_wrapper")
    wrapper.amdsmi_processor_handle = ctypes.c_void_p
    for name, value in {**_STATUS, "MORE_DATA": 39 if at_least >= (7, 0) else 57}.items():
        setattr(wrapper, f"AMDSMI_STATUS_{name}", value)
    m.amdsmi_wrapper = wrapper
    m.AmdSmiException = AmdSmiException
    m.AmdSmiLibraryException = AmdSmiLibraryException
    m.AmdSmiParameterException = AmdSmiParameterException
    m.AmdSmiInitFlags = AmdSmiInitFlags
    m.sockets = sockets if sockets is not None else [mi300x(0)]
    m.calls = {}
    m.initialised = False
    m.last_clock = clock() if clock else 0.0
    # one real ctypes handle per partition, as amdsmi_get_processor_handles returns them
    m.handles = [(ctypes.c_void_p(0x1000 + 0x10 * n), s, p) for n, (s, p) in
                 enumerate((s, p) for s in m.sockets for p in s.partitions)]

    m.now = 0.0     # the time advanced so far: a clock for the backend's readings

    def advance(seconds: float) -> None:
        """Every socket's accumulator and every process's engine time `seconds` on, exactly."""
        m.now += seconds
        for s in m.sockets:
            uj = Fraction(s.power_w) * Fraction(seconds) * 1_000_000 + s.carry_uj
            ticks = int(uj / Fraction(s.resolution))
            s.accumulator += ticks
            s.carry_uj = uj - ticks * Fraction(s.resolution)
            for p in s.partitions:
                for proc in p.processes:
                    proc.gfx_ns += round(proc.busy * seconds * 1e9)

    def tick() -> None:
        if clock is not None:
            now = clock()
            advance(max(0.0, now - m.last_clock))
            m.last_clock = now

    def fail(gpu: int, call: str, status: str | None) -> None:
        """Make `call` ("*": all) on processor handle `gpu` raise AMDSMI_STATUS_<status> until given None."""
        part = m.handles[gpu][2]
        if status is None:
            part.errors.pop(call, None)
        else:
            part.errors[call] = status

    m.advance, m.fail = advance, fail

    def getter(call: str) -> Callable[..., Any]:
        def wrap(fn: Callable[[FakeSocket, FakePartition], Any]) -> Callable[..., Any]:
            def api(processor_handle: Any, *args: Any, **kw: Any) -> Any:
                if not isinstance(processor_handle, wrapper.amdsmi_processor_handle):
                    raise AmdSmiParameterException(processor_handle, wrapper.amdsmi_processor_handle)
                if not m.initialised:
                    raise AmdSmiLibraryException(_STATUS["NOT_INIT"])
                m.calls[call] = m.calls.get(call, 0) + 1
                match = [(s, p) for h, s, p in m.handles if h.value == processor_handle.value]
                if not match:
                    raise AmdSmiLibraryException(_STATUS["INVAL"])
                s, p = match[0]
                status = p.errors.get(call) or p.errors.get("*")
                if status is not None:
                    raise AmdSmiLibraryException(getattr(wrapper, f"AMDSMI_STATUS_{status}"))
                tick()
                return fn(s, p, *args, **kw)
            api.__name__ = f"amdsmi_{call}"
            return api
        return wrap

    def amdsmi_init(flag: Any = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        if init_status is not None:
            raise AmdSmiLibraryException(_STATUS[init_status])
        m.initialised = True

    def amdsmi_shut_down() -> None:
        m.initialised = False

    def amdsmi_get_processor_handles() -> list[Any]:
        if not m.initialised:
            raise AmdSmiLibraryException(_STATUS["NOT_INIT"])
        return [ctypes.c_void_p(h.value) for h, _, _ in m.handles]

    m.amdsmi_init, m.amdsmi_shut_down = amdsmi_init, amdsmi_shut_down
    m.amdsmi_get_processor_handles = amdsmi_get_processor_handles

    @getter("get_gpu_device_uuid")
    def uuid(s: FakeSocket, p: FakePartition) -> str:
        return p.uuid

    @getter("get_gpu_device_bdf")
    def bdf(s: FakeSocket, p: FakePartition) -> str:
        return p.bdf

    @getter("get_gpu_asic_info")
    def asic(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        info = {"market_name": s.market_name, "vendor_id": "0x1002", "vendor_name": "Advanced Micro Devices Inc. "
                "[AMD/ATI]", "subvendor_id": "0x1002", "device_id": "0x74a1", "rev_id": "0x00",
                "asic_serial": "0x9A3F4C2E1B0D5867", "oam_id": m.sockets.index(s)}
        if at_least >= (7, 0):
            info.update(num_compute_units=304 // len(s.partitions), target_graphics_version="gfx942",
                        subsystem_id="0x74a1")
        return info

    @getter("get_gpu_board_info")
    def board(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        return {"model_number": "102-G30211-00", "product_serial": "692251001124", "fru_id": "N/A",
                "product_name": "AMD Instinct MI300X OAM", "manufacturer_name": "AMD"}

    @getter("get_gpu_driver_info")
    def driver(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        return {"driver_name": "amdgpu", "driver_version": "6.10.5", "driver_date": "2015/01/01 00:00"}

    @getter("get_energy_count")
    def energy(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if at_least <= (6, 3):
            out["power"] = s.accumulator           # "deprecating in 6.4" (6.3.3's comment)
        if at_least >= (6, 3):
            out["energy_accumulator"] = s.accumulator
        # a float through a C float, as ctypes.c_float(...).value hands it back
        out["counter_resolution"] = float(ctypes.c_float(s.resolution).value)
        out["timestamp"] = 3_824_190_842_400_799 + int(m.last_clock * 1e9)
        return out

    def power_dict(s: FakeSocket) -> dict[str, Any]:
        mi200 = "MI2" in s.market_name
        out: dict[str, Any] = {}
        if at_least >= (7, 0):
            out["socket_power"] = round(s.power_w)
        out.update(current_socket_power="N/A" if mi200 else round(s.power_w),
                   average_socket_power=round(s.power_w) if mi200 else "N/A",
                   gfx_voltage="N/A", soc_voltage="N/A", mem_voltage="N/A", power_limit=s.power_limit_w)
        out.update(s.power_keys or {})
        return out

    if at_least == (6, 4):
        @getter("get_power_info")
        def power(s: FakeSocket, p: FakePartition, sensor_ind: int = 0) -> dict[str, Any]:
            return power_dict(s)
    else:
        @getter("get_power_info")
        def power(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
            return power_dict(s)

    @getter("get_gpu_activity")
    def activity(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        return {"gfx_activity": p.gfx_activity, "umc_activity": 3, "mm_activity": "N/A"}

    @getter("get_gpu_vram_usage")
    def vram(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
        return {"vram_total": 196_592 // len(s.partitions), "vram_used": p.vram_used_mb}

    @getter("get_gpu_process_list")
    def processes(s: FakeSocket, p: FakePartition) -> list[dict[str, Any]]:
        out = []
        for proc in p.processes:
            entry: dict[str, Any] = {"name": "python3", "pid": proc.pid, "mem": 8 << 30,
                                     "engine_usage": {"gfx": proc.gfx_ns, "enc": 0},
                                     "memory_usage": {"gtt_mem": 2 << 20, "cpu_mem": 1 << 30, "vram_mem": 8 << 30}}
            if at_least >= (7, 0):
                entry["cu_occupancy"] = "N/A"
            out.append(entry)
        return out

    @getter("get_gpu_compute_partition")
    def compute_partition(s: FakeSocket, p: FakePartition) -> str:
        return s.mode

    for fn in (uuid, bdf, asic, board, driver, energy, power, activity, vram, processes, compute_partition):
        setattr(m, fn.__name__, fn)
    if at_least >= (6, 3):
        @getter("get_gpu_kfd_info")
        def kfd(s: FakeSocket, p: FakePartition) -> dict[str, Any]:
            n = next(i for i, h in enumerate(m.handles) if h[2] is p)
            return {"kfd_id": 0x5A5A + n, "node_id": FIRST_GPU_NODE + n, "current_partition_id": p.partition_id}
        m.amdsmi_get_gpu_kfd_info = kfd
    if at_least >= (6, 4):
        @getter("get_gpu_xcd_counter")
        def xcd(s: FakeSocket, p: FakePartition) -> int:
            return p.xcds
        m.amdsmi_get_gpu_xcd_counter = xcd
    return m


# -- the kernel's side: sysfs ------------------------------------------------------------------------------------
def write_sysfs(root: Path, sockets: list[FakeSocket]) -> Path:
    """A sysfs tree for `sockets` (in handle order, as make_fake_amdsmi numbers them): KFD topology nodes and DRM
    render nodes linked to their devices, as Linux lays them out. Returns the tree's root, for --path.sysfs."""
    sysfs = root / "sys"
    nodes = sysfs / "class" / "kfd" / "kfd" / "topology" / "nodes"
    for cpu in range(FIRST_GPU_NODE):
        (nodes / str(cpu)).mkdir(parents=True)
        (nodes / str(cpu) / "properties").write_text(
            "cpu_cores_count 96\nsimd_count 0\nmem_banks_count 1\ngfx_target_version 0\ndrm_render_minor 0\n")
    drm = sysfs / "class" / "drm"
    drm.mkdir(parents=True)
    parts = [(s, p) for s in sockets for p in s.partitions]
    for n, (s, p) in enumerate(parts):
        node = nodes / str(FIRST_GPU_NODE + n)
        node.mkdir()
        (node / "properties").write_text(
            f"cpu_cores_count 0\nsimd_count {1216 // len(s.partitions)}\nmem_banks_count 1\n"
            f"gfx_target_version 90402\ndrm_render_minor {p.render_minor}\n"
            f"unique_id {0x9A3F4C2E1B0D5867 + sockets.index(s)}\n")     # one per physical GPU, as the kernel's
        parent = "devices/platform" if p.drm_device.startswith("amdgpu_xcp") else "devices/pci0000:00/0000:00:01.1"
        render = sysfs / parent / p.drm_device / "drm" / f"renderD{p.render_minor}"
        render.mkdir(parents=True)
        (render / "device").symlink_to(f"../../../{p.drm_device}")
        (drm / f"renderD{p.render_minor}").symlink_to(os.path.relpath(render, drm))
    return sysfs


# -- the exporter process: a fake `amdsmi` package on its PYTHONPATH ------------------------------
MISSING_LIBRARY = "missing-library"   # the package is installed but libamd_smi.so is not


def write_shim(directory: Path, version: str, sockets: list[FakeSocket] | str) -> Path:
    """A directory holding a package `amdsmi` that is this fake, for `PYTHONPATH=<dir>:<repo>`. Its sockets
    accumulate from the wall clock. `sockets=MISSING_LIBRARY` plays the real package without libamd_smi.so."""
    pkg = directory / "amdsmi"
    pkg.mkdir(parents=True)
    spec = sockets if isinstance(sockets, str) else [asdict(s) for s in sockets]
    (pkg / "scenario.json").write_text(json.dumps({"version": version, "sockets": spec}, default=str))
    (pkg / "__init__.py").write_text(
        "from tests.fake_amdsmi import _install\n"
        "_install(globals(), __file__)\n")
    return directory


def _install(namespace: dict[str, Any], init_file: str) -> None:
    scenario = json.loads((Path(init_file).parent / "scenario.json").read_text())
    if scenario["sockets"] == MISSING_LIBRARY:
        # amdsmi_wrapper.py (6.2.4 to 7.0.2) prints the loader's error, then indexes the missing library
        print("/opt/rocm/lib/libamd_smi.so: cannot open shared object file: No such file or directory")
        print("Unable to find libamd_smi.so library try installing amd-smi-lib from your package manager")
        raise KeyError("libamd_smi.so")
    sockets = [_socket(s) for s in scenario["sockets"]]
    fake = make_fake_amdsmi(scenario["version"], sockets, clock=time.monotonic)
    namespace.update({k: v for k, v in vars(fake).items() if not k.startswith("__")})


def _socket(d: dict[str, Any]) -> FakeSocket:
    parts = [FakePartition(**{**p, "processes": [FakeProcess(**q) for q in p["processes"]]})
             for p in d.pop("partitions")]
    d.pop("carry_uj", None)
    return FakeSocket(partitions=parts, **d)
