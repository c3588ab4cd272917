"""Plots people would rather look at than read: where the cycles go, and how well the array is used."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_run(parts: list[dict], total: dict, hw, out, title: str = "") -> Path:
    """Two panels per matrix: cycles split into array compute, memory stalls and vector unit; and
    utilization next to dense-equivalent utilization."""
    names = [p["name"] for p in parts]
    x = np.arange(len(parts))
    compute = np.array([p["array_cycles"] - p["stall_cycles"] for p in parts])
    stall = np.array([p["stall_cycles"] for p in parts])
    vector = np.array([p["vector_cycles"] for p in parts])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(x, compute, label="array (compute, load, skew)")
    a.bar(x, stall, bottom=compute, label="memory stalls")
    a.bar(x, vector, bottom=compute + stall, label="vector unit")
    a.set_xticks(x, names, rotation=20)
    a.set_ylabel("cycles")
    a.set_title(f"cycles: {total['cycles']:,} total")
    a.legend(fontsize=8)
    w = 0.38
    b.bar(x - w / 2, [p["utilization"] for p in parts], w, label="utilization")
    b.bar(x + w / 2, [p["dense_equivalent_utilization"] for p in parts], w, label="dense-equivalent")
    b.axhline(1.0, color="gray", lw=0.8, ls=":")
    b.set_xticks(x, names, rotation=20)
    b.set_ylabel(f"fraction of {hw.array.rows} x {hw.array.cols} PE-cycles")
    b.set_title("utilization")
    b.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
