"""GPU backends: nvml (the only module importing pynvml), amdsmi (the only one importing amdsmi), dcgm and replay."""

from __future__ import annotations

from .base import BackendError, BackendUnavailable, GpuBackend, GpuInfo, GpuReading

__all__ = ["BackendError", "BackendUnavailable", "GpuBackend", "GpuInfo", "GpuReading"]
