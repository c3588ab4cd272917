"""Plots people would rather look at than read: where the cycles go, and how well the array is used."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sasim.errors import SasimError
from sasim.outputs import check_output_file, save_figure  # noqa: E402


def _save(fig, out) -> Path:
    out = check_output_file(out, "plot", make_parents=True)
    try:
        save_figure(fig, out, dpi=120)
    finally:
        plt.close(fig)
    return out


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
    return _save(fig, out)


def _lane_image(values: np.ndarray, select: np.ndarray, lanes: int):
    """An RGBA image: white where the PE holds no weight, a colour per selected lane elsewhere."""
    cmap = plt.get_cmap("tab20" if lanes > 10 else "tab10")
    img = np.ones(values.shape + (4,))
    nz = values != 0
    img[nz] = cmap(select[nz] % cmap.N)
    return img, cmap


def plot_tile_occupancy(packed, hw, tile: int, out, title: str = "") -> Path:
    """Which PEs of one ``R x C`` tile hold a weight, and which input lane each one's multiplexer selects."""
    R, C = hw.array.rows, hw.array.cols
    n, g = packed.values.shape
    nct = -(-g // C)
    ntiles = -(-n // R) * nct
    if not 0 <= tile < ntiles:

        raise SasimError(f"tile must be in 0..{ntiles - 1} for this matrix on {hw.name}", param="tile")
    rt, ct = divmod(tile, nct)
    values = np.zeros((R, C), np.float32)
    select = np.zeros((R, C), np.int64)
    v = packed.values[rt * R:(rt + 1) * R, ct * C:(ct + 1) * C]
    values[: v.shape[0], : v.shape[1]] = v
    select[: v.shape[0], : v.shape[1]] = packed.select[rt * R:(rt + 1) * R, ct * C:(ct + 1) * C]
    lanes = max(packed.max_group_size, 1)
    img, cmap = _lane_image(values, select, lanes)
    fig, ax = plt.subplots(figsize=(1.5 + 0.16 * C, 1.0 + 0.16 * R))
    ax.imshow(img, interpolation="nearest", origin="lower")
    occupied = np.count_nonzero(values)
    ax.set_title(f"{title} tile {tile} (row tile {rt}, column tile {ct}): {occupied}/{R * C} PEs hold a weight "
                 f"({occupied / (R * C):.0%})", fontsize=9)
    ax.set_xlabel("array column = group (inputs enter at the bottom)")
    ax.set_ylabel("array row = output")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % cmap.N)) for i in range(lanes)]
    ax.legend(handles, [f"lane {i}" for i in range(lanes)], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return _save(fig, out)


def plot_packed_matrix(packed, out, title: str = "", max_groups: int = 160, max_rows: int = 256) -> Path:
    """A layer's packed matrix: nonzero cells coloured by selected lane, with each group's size above it.

    Large matrices are shown by their top-left corner (``max_rows`` x ``max_groups``); the title says so.
    """
    n, g = packed.values.shape
    rows, cols = min(n, max_rows), min(g, max_groups)
    lanes = max(packed.max_group_size, 1)
    img, cmap = _lane_image(packed.values[:rows, :cols], packed.select[:rows, :cols].astype(np.int64), lanes)
    fig, (top, ax) = plt.subplots(2, 1, figsize=(min(14, 2 + 0.07 * cols), 2 + 0.03 * rows),
                                  gridspec_kw={"height_ratios": [1, 5]}, sharex=True)
    top.bar(np.arange(cols), packed.group_sizes[:cols], width=1.0, color="gray")
    top.set_ylabel("columns\nin group", fontsize=8)
    ax.imshow(img, interpolation="nearest", aspect="auto")
    ax.set_xlabel("group (one array column each)")
    ax.set_ylabel("output row")
    shown = "" if (rows, cols) == (n, g) else f" (top-left {rows} x {cols} of {n} x {g})"
    st = packed.stats
    top.set_title(f"{title}{shown}: {g} groups for {packed.shape[1]} columns, packing efficiency "
                  f"{packed.nonzeros / max(packed.cells, 1):.3f}" + (f", pruned {st['pruned_fraction']:.3f}"
                                                                     if "pruned_fraction" in st else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, out)
