"""JSON reports: metrics under docs/contract.md's names, the resolved config, packing, seed and versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sasim import outputs
from sasim.report.provenance import run_header
from sasim.sim.metrics import DEFINITIONS


def plain(obj):
    """``obj`` with numpy scalars and arrays made Python numbers and lists, tuples made lists and keys made strings:
    what JSON, and ``torch.load(weights_only=True)``, can hold."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def build_report(hw, total: dict, parts: list[dict], **settings) -> dict:
    return plain({**run_header(**settings), "hw": hw.to_dict(), "total": total, "layers": parts,
                   "definitions": {k: DEFINITIONS[k] for k in DEFINITIONS if k in total or any(k in p for p in parts)}})


def build_records_report(hw, records: list[dict], **settings) -> dict:
    """A report of one record per layer (``sasim scalesim``), with the definitions of the metrics it holds."""
    return plain({**run_header(**settings), "hw": hw.to_dict(), "layers": records,
                  "definitions": {k: DEFINITIONS[k] for k in DEFINITIONS if any(k in r for r in records)}})


def write_json(path, report: dict) -> Path:
    """Write a report as strict JSON (a NaN or infinity is an error naming its key), atomically."""

    path = outputs.check_output_file(path, "--json", make_parents=True)
    return outputs.write_json(path, plain(report))
