"""Plots of a sweep: utilization per layer as a heat map; utilization, latency and accuracy against
gamma for each conflict rule; and the accuracy-latency Pareto front."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sasim.outputs import save_figure  # noqa: E402
from sasim.report.pareto import pareto_front  # noqa: E402
from sasim.sim.metrics import accuracy_name  # noqa: E402


def _label(p):
    return f"{Path(p['hw']).stem} a={p['alpha']} {p['rule']}"


def plot_sweep(results: list[dict], out) -> list[Path]:
    out = Path(out)
    written = []
    # 1. heat map: rows = points, columns = layers
    layers = [l["name"] for l in results[0]["layers"]]
    mat = np.array([[l["utilization"] for l in r["layers"]] for r in results])
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(layers), 0.9 + 0.28 * len(results)))
    im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0, vmax=max(mat.max(), 1e-9))
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yticks(range(len(results)), [f"{_label(r['point'])} g={r['point']['gamma']:g}" for r in results], fontsize=7)
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(j, i, f"{mat[i, j]:.3f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, label="utilization")
    ax.set_title("utilization per layer")
    fig.tight_layout()
    written.append(out / "utilization_heatmap.png")
    save_figure(fig, written[-1], dpi=110)
    plt.close(fig)
    # 2. metrics against gamma, one line per (hw, alpha, rule)
    has_acc = "bpc" in results[0]["total"] or "ppl" in results[0]["total"]
    acc_key = accuracy_name(results[0]["total"])
    panels = [("utilization", "utilization"), ("latency_per_step_s", "latency per token (s)"),
              ("tiles", "tiles per timestep")] + ([(acc_key, acc_key)] if has_acc else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    series = {}
    for r in results:
        series.setdefault(_label(r["point"]), []).append(r)
    for ax, (key, title) in zip(axes, panels):
        for name, rs in series.items():
            rs = sorted(rs, key=lambda r: r["point"]["gamma"])
            style = "-o" if "prune" in name else "--s"
            ax.plot([r["point"]["gamma"] for r in rs], [r["total"].get(key, np.nan) for r in rs], style, label=name, ms=4)
        ax.set_xlabel("gamma (conflict budget)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    written.append(out / "metrics_vs_gamma.png")
    save_figure(fig, written[-1], dpi=110)
    plt.close(fig)
    # 3. accuracy-latency Pareto front (latency alone when there is no accuracy)
    if has_acc:
        lat = np.array([r["total"]["latency_per_step_s"] for r in results])
        acc = np.array([r["total"][acc_key] for r in results])
        front = pareto_front(lat, acc)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        ax.scatter(lat * 1e6, acc, c="lightgray", label="points")
        ax.plot(lat[front] * 1e6, acc[front], "r-o", label="Pareto front")
        labels = {}
        for i in front:  # settings that land on the same point share one label
            labels.setdefault((lat[i], acc[i]), []).append(f"{_label(results[i]['point'])} g={results[i]['point']['gamma']:g}")
        for (x, y), names in labels.items():
            ax.annotate(" / ".join(names), (x * 1e6, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("latency per token (us)")
        ax.set_ylabel(acc_key)
        ax.set_title("accuracy against latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / "pareto.png")
        save_figure(fig, written[-1], dpi=110)
        plt.close(fig)
    return written
