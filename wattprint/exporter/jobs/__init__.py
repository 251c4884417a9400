"""Job discovery sources: slurm, mapping-dir, kubernetes (one module each)."""
