"""scalesim timing reproduces SCALE-Sim v3's weight-stationary Total Cycles for dense GEMMs.

The pinned numbers were produced by SCALE-Sim 3.0.0 (PyPI), CALC bandwidth mode, on a sasim
4 x 8 array (SCALE-Sim ArrayHeight 8 = sasim cols, ArrayWidth 4 = sasim rows), with
``python benchmarks/scalesim_harness.py 4 8 5,20,13 1,1,1 1,4,8 1,5,8 1,4,9 7,4,8 2,3,3 100,50,70``.
SCALE-Sim reports the 0-based index of its last cycle, so its Total Cycles is sasim's cycles - 1.
Set ``SASIM_TEST_SCALESIM=1`` to also run SCALE-Sim itself on more shapes (installs it in a venv).
"""

import os

import numpy as np
import pytest
from conftest import REPO, make_hw

from sasim.combine.packed import PackedMatrix
from sasim.sim.engine import simulate_matmul

GOLDEN_4x8 = {(5, 20, 13): 229, (1, 1, 1): 18, (1, 4, 8): 18, (1, 5, 8): 37, (1, 4, 9): 37, (7, 4, 8): 24,
              (2, 3, 3): 19, (100, 50, 70): 13805}


def sasim_scalesim_total(m, n, k, rows, cols, mode):
    w = np.ones((n, k), np.float32)
    x = np.ones((m, k), np.float32) if mode == "cycle" else None
    res = simulate_matmul(PackedMatrix.from_dense(w), x, make_hw(rows, cols, memory__sram_weight_bw=1e6,
                                                                 memory__sram_input_bw=1e6), m, "scalesim", mode)
    return res.counts.cycles - 1


@pytest.mark.parametrize("mode", ["cycle", "analytic"])
@pytest.mark.parametrize("gemm,expected", sorted(GOLDEN_4x8.items()))
def test_pinned_scalesim_total_cycles(gemm, expected, mode):
    assert sasim_scalesim_total(*gemm, rows=4, cols=8, mode=mode) == expected


@pytest.mark.scalesim
@pytest.mark.skipif(os.environ.get("SASIM_TEST_SCALESIM") != "1", reason="set SASIM_TEST_SCALESIM=1 to run SCALE-Sim")
def test_against_live_scalesim():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from scalesim_harness import scalesim_total_cycles

    rng = np.random.default_rng(7)
    for rows, cols in [(8, 8), (4, 16), (16, 4), (32, 32)]:
        gemms = [tuple(int(v) for v in rng.integers(1, 90, 3)) for _ in range(6)]
        theirs, _ = scalesim_total_cycles(gemms, rows, cols)
        ours = [sasim_scalesim_total(m, n, k, rows, cols, "analytic") for m, n, k in gemms]
        assert ours == theirs, (rows, cols, gemms)
