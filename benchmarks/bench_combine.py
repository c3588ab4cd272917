"""Column-combining speed: the paper's grouping policy and the full packing.

Usage: ``python benchmarks/bench_combine.py``. Cases from issue 3: random 1024 x 1024 matrices at
density 0.1 and 0.2, alpha 8, gamma 0.5 to 1.75, section 256 (the paper's published code needs
350 to 740 s per matrix on a 2-core machine), and a 7360 x 2240 matrix (the first layer
``[W_ih | W_hh]`` of the enwik8 AWD-LSTM). Also times the literal pseudo-code of
``tests/naive.py`` on one case, so that the speed-up is a ratio measured in this run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sasim.combine.column_combine import pack_matrix  # noqa: E402
from sasim.combine.grouping import group_columns  # noqa: E402


def best_of(fn, repeats=3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def random_sparse(n, k, density, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, k)) * (rng.random((n, k)) < density)).astype(np.float32)


def main() -> None:
    group_columns(random_sparse(64, 64, 0.2, 0), 8, 1.0)  # JIT compile / cache load
    print("matrix            density alpha gamma  groups  pruned   group s   pack s")
    for n, k in [(1024, 1024), (7360, 2240)]:
        for density in (0.1, 0.2):
            w = random_sparse(n, k, density, 1)
            for gamma in (0.5, 1.0, 1.75):
                g_s, groups = best_of(lambda: group_columns(w, 8, gamma, section=256))
                p_s, packed = best_of(lambda: pack_matrix(w, 8, gamma, "prune", section=256))
                print(f"{n:>5} x {k:<5}     {density:>5} {8:>5} {gamma:>5} {len(groups):>7} "
                      f"{packed.stats['pruned_fraction']:>7.3f} {g_s:>9.4f} {p_s:>8.4f}")
    from naive import naive_paper_groups

    w = random_sparse(256, 256, 0.15, 2)
    fast_s, fast = best_of(lambda: group_columns(w, 8, 1.0, section=256))
    slow_s, slow = best_of(lambda: naive_paper_groups(w, 8, 1.0, section=256), 1)
    assert [list(g) for g in fast] == slow
    print(f"256 x 256, density 0.15, alpha 8, gamma 1.0: literal pseudo-code {slow_s:.2f} s, sasim "
          f"{fast_s * 1e3:.2f} ms: {slow_s / fast_s:.0f}x faster, identical groups")


if __name__ == "__main__":
    main()
