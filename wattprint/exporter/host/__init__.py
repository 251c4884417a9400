"""Host (CPU and DRAM) energy: RAPL counters split among jobs by their cgroup CPU time."""
