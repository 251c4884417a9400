"""The parts of scripts/e2e.py, the live end-to-end run (docs/operations.md, "End to end")."""
