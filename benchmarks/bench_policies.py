"""Grouping policies compared on real LSTM matrices: groups needed at a given pruned fraction.

Usage: ``python benchmarks/bench_policies.py [--weights CKPT] [--densities 0.1,0.2]``.
Each ``[W_ih | W_hh]`` of the checkpoint is magnitude-pruned to the density (the state column
combining is applied to in the paper's joint optimization), then packed with alpha 8 at a range of
gamma by every policy. A policy is better when it needs fewer groups for the same pruned fraction;
the table lists both per gamma, and the area summary compares the groups at matched pruned
fractions (linear interpolation over gamma).
"""

from __future__ import annotations

import argparse

import numpy as np

from sasim.cli import default_weights
from sasim.combine.column_combine import pack_matrix
from sasim.combine.grouping import POLICIES
from sasim.combine.magnitude import magnitude_prune
from sasim.workload.lstm_weights import load_lstm_workload

GAMMAS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 1.75)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=default_weights())
    ap.add_argument("--densities", default="0.1,0.2")
    ap.add_argument("--alpha", type=int, default=8)
    args = ap.parse_args()
    wl = load_lstm_workload(args.weights)
    print(f"{args.weights}: alpha {args.alpha}, section 256, rule prune")
    for density in (float(d) for d in args.densities.split(",")):
        mats = [magnitude_prune(layer.combined, density) for layer in wl.layers]
        curves = {}
        print(f"\ndensity {density}:  gamma | " + " | ".join(f"{p:>22}" for p in POLICIES))
        for gamma in GAMMAS:
            row = []
            for policy in POLICIES:
                packs = [pack_matrix(m, args.alpha, gamma, "prune", policy) for m in mats]
                groups = sum(p.num_groups for p in packs)
                pruned = 1 - sum(p.nonzeros for p in packs) / sum(int(np.count_nonzero(m)) for m in mats)
                curves.setdefault(policy, []).append((pruned, groups))
                row.append(f"{groups:>6} groups {pruned:6.3f} pr")
            print(f"              {gamma:5.2f} | " + " | ".join(f"{r:>22}" for r in row))
        base = np.array(curves["paper"])
        for policy in POLICIES[1:]:
            other = np.array(curves[policy])
            lo, hi = max(base[:, 0].min(), other[:, 0].min()), min(base[:, 0].max(), other[:, 0].max())
            grid = np.linspace(lo, hi, 50)
            def at(c):
                order = np.argsort(c[:, 0])
                return np.interp(grid, c[order, 0], c[order, 1])
            ratio = at(other).mean() / at(base).mean()
            print(f"  {policy} vs paper: {ratio:.4f} x the groups at matched pruned fraction "
                  f"({lo:.3f}..{hi:.3f})")


if __name__ == "__main__":
    main()
