"""Reports: terminal tables, JSON with provenance, plots."""
