"""Mapping, the cycle-level simulator (numba), the analytic model and the metrics."""
