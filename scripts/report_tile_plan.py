"""Which pruning settings reach a tile budget, and how many weights they keep: `sasim prune --dry-run` over a grid.

    python scripts/report_tile_plan.py --weights models/ptb-char-small.pt --hw hwconfigs/32x32.yaml \\
        --alphas 8,16 --gammas 0.25,0.5,0.75,1,1.75 --targets 0.6,0.65,0.7,0.75,0.8,0.85,0.9 --events 2 \\
        --out reports/joint-optimization-ptb-char/plan

Each cell rehearses the pruning events of `sasim prune` on the dense weights with no training (seconds per
cell) and counts the tiles of the result on the array. Writes OUT/plan.csv and OUT/plan.png (per alpha: the
tile reduction over gamma and target, each cell labelled with the density that survives; cells at or past the
--goal reduction outlined).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sasim.hw.config import load_hw_config  # noqa: E402
from sasim.lm.loading import load_language_model  # noqa: E402
from sasim.lm.prune import plan_pruning  # noqa: E402
from sasim.report.provenance import versions  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="dense sasim checkpoint")
    ap.add_argument("--hw", default="hwconfigs/32x32.yaml")
    ap.add_argument("--alphas", default="8,16")
    ap.add_argument("--gammas", default="0.25,0.5,0.75,1,1.75")
    ap.add_argument("--targets", default="0.6,0.65,0.7,0.75,0.8,0.85,0.9")
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--rule", default="prune", choices=["prune", "spill"])
    ap.add_argument("--goal", type=float, default=4.0, help="tile reduction to outline (default 4)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hw = load_hw_config(args.hw)
    dense, _ = load_language_model(args.weights)
    alphas, gammas, targets = [int(a) for a in _floats(args.alphas)], _floats(args.gammas), _floats(args.targets)
    rows = []
    cells = [(a, g, t) for a in alphas for g in gammas for t in targets]
    for a, g, t in tqdm(cells, desc="rehearsals", unit="cell"):
        plan = plan_pruning(copy.deepcopy(dense), hw, a, g, args.rule, target=t, events=args.events)
        rows.append({"alpha": a, "gamma": g, "target_sparsity": t, "events": args.events, "rule": args.rule,
                     "tiles": plan["tiles"], "dense_tiles": plan["dense_tiles"],
                     "tile_reduction": plan["dense_tiles"] / plan["tiles"], "density": plan["density"],
                     "groups": json.dumps([r["groups"] for r in plan["layers"]])})
    with open(out / "plan.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fig, axes = plt.subplots(1, len(alphas), figsize=(6.2 * len(alphas), 4.6), squeeze=False)
    for ax, a in zip(axes[0], alphas):
        grid = np.array([[next(r for r in rows if r["alpha"] == a and r["gamma"] == g and r["target_sparsity"] == t)
                          for t in targets] for g in gammas])
        red = np.vectorize(lambda r: r["tile_reduction"])(grid)
        im = ax.imshow(red, cmap="viridis", aspect="auto", origin="lower")
        for i in range(len(gammas)):
            for j in range(len(targets)):
                r = grid[i, j]
                ax.text(j, i, f"{r['tile_reduction']:.1f}x\n{r['density']:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if r["tile_reduction"] < red.max() * 0.6 else "black")
                if r["tile_reduction"] >= args.goal:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
        ax.set(xticks=range(len(targets)), xticklabels=[f"{t:g}" for t in targets], yticks=range(len(gammas)),
               yticklabels=[f"{g:g}" for g in gammas], xlabel="--target-sparsity", ylabel="gamma",
               title=f"alpha {a}, rule {args.rule}, {args.events} events, no training")
        fig.colorbar(im, ax=ax, label=f"fewer tiles on {hw.array.rows}x{hw.array.cols}")
    fig.suptitle(f"sasim prune --dry-run from {args.weights}; each cell: tile reduction, then the density that survives; red: at least "
                 f"{args.goal:g}x", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "plan.png", dpi=120)
    best = max((r for r in rows if r["tile_reduction"] >= args.goal), key=lambda r: r["density"], default=None)
    (out / "plan.json").write_text(json.dumps({"command": vars(args), "versions": versions(),
                                               "densest_at_goal": best}, indent=1))
    print(f"wrote {out}/plan.csv, plan.png; densest setting at {args.goal:g}x or more: {best}")


if __name__ == "__main__":
    main()
