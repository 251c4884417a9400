"""A scripted host for the rapl and cgroups collectors: a sysfs and a procfs tree in a temporary directory.

The shapes are the kernel's: ``/sys/class/powercap`` lists every zone flat (``intel-rapl:0``,
``intel-rapl:0:0``, ...), each with ``name``, ``energy_uj`` and ``max_energy_range_uj``; cgroup v2
is mounted at ``/sys/fs/cgroup`` (``cgroup.controllers`` at its root) with ``cpu.stat`` in every
cgroup, ``usage_usec`` on the first line; ``/proc/stat`` starts with the aggregate ``cpu`` line in
USER_HZ ticks (100 here). Tests move the counters between polls.
"""

from __future__ import annotations

from pathlib import Path

INTEL_RANGE_UJ = 262_143_328_850  # a Xeon's package max_energy_range_uj (2^32 units of 61.035 µJ)
MODEL = "Intel(R) Xeon(R) Platinum 8480+"
HZ = 100
BOOT_ID = "3f1b4a52-9d5e-4c0b-8a51-0d6f7e1c2b3a"

# Slurm with cgroup/v2 and systemd, and the kubelet with each cgroup driver.
SLURM_JOB = "system.slice/slurmstepd.scope/job_{}"
K8S_SYSTEMD_POD = "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid_}.slice"
K8S_CGROUPFS_POD = "kubepods/{qos}/pod{uid}"


class HostTree:
    def __init__(self, root: Path, sockets: int = 2, dram: bool = True, range_uj: int = INTEL_RANGE_UJ,
                 cgroup: str = "v2") -> None:
        self.sysfs = root / "sys"
        self.procfs = root / "proc"
        self.powercap = self.sysfs / "class" / "powercap"
        self.cgroot = self.sysfs / "fs" / "cgroup"
        self.range_uj = range_uj
        self.zones: dict[tuple[str, str], str] = {}
        self.powercap.mkdir(parents=True)
        (self.powercap / "intel-rapl").mkdir()  # the control type: no counter of its own
        for s in range(sockets):
            self.add_zone(f"intel-rapl:{s}", f"package-{s}", (str(s), "package"), 1_000_000 * (s + 1))
            if dram:
                self.add_zone(f"intel-rapl:{s}:0", "dram", (str(s), "dram"), 500_000 * (s + 1))
            self.add_zone(f"intel-rapl:{s}:1" if dram else f"intel-rapl:{s}:0", "core", None, 7)
        self.add_zone(f"intel-rapl:{sockets}", "psys", None, 9)
        self.add_zone("intel-rapl-mmio:0", "package-0", None, 11)
        self.cpuinfo(sockets)
        (self.procfs / "sys" / "kernel" / "random").mkdir(parents=True)
        self.boot(BOOT_ID)
        self.ticks = 0
        self.set_node_ticks(1_000_000)
        if cgroup == "v2":
            self.cgroot.mkdir(parents=True)
            (self.cgroot / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        elif cgroup == "hybrid":
            (self.cgroot / "unified").mkdir(parents=True)
            (self.cgroot / "unified" / "cgroup.controllers").write_text("\n")
            self.cgroot = self.cgroot / "unified"
        else:  # v1 only
            (self.cgroot / "cpuacct" / "slurm").mkdir(parents=True)

    # -- RAPL ----------------------------------------------------------------------------------
    def add_zone(self, entry: str, name: str, key: tuple[str, str] | None, energy_uj: int) -> None:
        d = self.powercap / entry
        d.mkdir()
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        (d / "max_energy_range_uj").write_text(f"{self.range_uj}\n")
        (d / "enabled").write_text("1\n")
        if key is not None:
            self.zones[key] = entry

    def energy_path(self, socket: str, domain: str) -> Path:
        return self.powercap / self.zones[(socket, domain)] / "energy_uj"

    def energy(self, socket: str, domain: str) -> int:
        return int(self.energy_path(socket, domain).read_text())

    def add_energy(self, socket: str, domain: str, uj: int) -> None:
        """Run the counter on by ``uj``, wrapping at max_energy_range_uj as the hardware does."""
        self.energy_path(socket, domain).write_text(f"{(self.energy(socket, domain) + uj) % self.range_uj}\n")

    def set_energy(self, socket: str, domain: str, uj: int) -> None:
        self.energy_path(socket, domain).write_text(f"{uj}\n")

    # -- procfs --------------------------------------------------------------------------------
    def cpuinfo(self, sockets: int, model: str = MODEL) -> None:
        blocks = [f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nphysical id\t: {i % sockets}\n"
                  f"core id\t\t: {i // sockets}\n" for i in range(2 * sockets)]
        self.procfs.mkdir(parents=True, exist_ok=True)
        (self.procfs / "cpuinfo").write_text("\n".join(blocks) + "\n")

    def boot(self, boot_id: str) -> None:
        (self.procfs / "sys" / "kernel" / "random" / "boot_id").write_text(boot_id + "\n")

    def set_node_ticks(self, ticks: int) -> None:
        """/proc/stat with ``ticks`` USER_HZ ticks in all, spread over the eight counted columns."""
        self.ticks = ticks
        parts = [ticks // 8] * 8
        parts[3] += ticks - sum(parts)  # the rest is idle
        cpu0 = " ".join(str(p // 2) for p in parts)
        (self.procfs / "stat").write_text(f"cpu  {' '.join(map(str, parts))} 77 0\ncpu0 {cpu0} 0 0\nintr 1 2 3\n")

    def add_node_usec(self, usec: int) -> None:
        assert usec % (1_000_000 // HZ) == 0, "whole ticks only"
        self.set_node_ticks(self.ticks + usec * HZ // 1_000_000)

    # -- cgroups -------------------------------------------------------------------------------
    def cgroup(self, rel: str, usage_usec: int = 0) -> Path:
        d = self.cgroot / rel
        d.mkdir(parents=True, exist_ok=True)
        self.set_usage(rel, usage_usec)
        (d / "cgroup.procs").write_text("")
        (d / "memory.current").write_text("4096\n")
        return d

    def set_usage(self, rel: str, usage_usec: int) -> None:
        (self.cgroot / rel / "cpu.stat").write_text(
            f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\nsystem_usec {usage_usec - usage_usec // 2}\n"
            "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")

    def add_usage(self, rel: str, usec: int) -> None:
        text = (self.cgroot / rel / "cpu.stat").read_text()
        self.set_usage(rel, int(text.split("\n", 1)[0].split()[1]) + usec)

    def remove(self, rel: str) -> None:
        import shutil

        shutil.rmtree(self.cgroot / rel)
