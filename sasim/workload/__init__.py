"""Workloads: weight matrices from checkpoints (safe loading only) and synthetic presets."""
