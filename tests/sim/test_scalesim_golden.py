"""scalesim timing reproduces SCALE-Sim v3's Total Cycles for dense GEMMs, in all three dataflows.

Every pinned number was produced by SCALE-Sim 3.0.0 (PyPI), CALC bandwidth mode, no sparsity, with
``python benchmarks/scalesim_harness.py ROWS COLS --dataflow FLOW M,N,K ...`` on sasim's ``ROWS x COLS`` array
(SCALE-Sim's ``ArrayHeight = COLS``, ``ArrayWidth = ROWS``: docs/dataflows.md), for the GEMMs listed under each
array below. SCALE-Sim reports the 0-based index of its last cycle, so its Total Cycles is sasim's cycles - 1.
Set ``SASIM_TEST_SCALESIM=1`` to also run SCALE-Sim itself on random shapes (installs it in a venv).
"""

import os

import numpy as np
import pytest
from conftest import REPO, make_hw

from sasim.combine.packed import PackedMatrix
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul

FLOWS = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}

#: (rows, cols) -> (GEMMs as (M, N, K), {dataflow: SCALE-Sim Total Cycles of each GEMM})
PINS = {
    (4, 8): ([(5, 20, 13), (1, 1, 1), (1, 4, 8), (1, 5, 8), (1, 4, 9), (7, 4, 8), (2, 3, 3), (100, 50, 70)],
             {"ws": [229, 18, 18, 37, 37, 24, 19, 13805],
              "os": [114, 10, 17, 35, 18, 17, 12, 13519],
              "is": [151, 18, 21, 22, 43, 43, 20, 15299]}),
    (8, 4): ([(5, 20, 13), (1, 1, 1), (3, 9, 33), (17, 2, 5), (64, 64, 64), (30, 7, 100), (2, 50, 3), (11, 13, 17)],
             {"ws": [227, 14, 305, 61, 9983, 1099, 111, 249],
              "os": [137, 10, 85, 74, 9471, 879, 90, 161],
              "is": [135, 14, 206, 95, 9983, 2099, 63, 269]}),
    (5, 5): ([(5, 20, 13), (1, 1, 1), (3, 9, 33), (17, 2, 5), (64, 64, 64), (30, 7, 100), (2, 50, 3), (11, 13, 17)],
             {"ws": [215, 13, 223, 29, 13012, 1719, 149, 287],
              "os": [83, 8, 81, 51, 12167, 1295, 109, 224],
              "is": [98, 13, 153, 59, 13012, 2399, 62, 311]}),
}
CASES = [(array, gemm, flow, cycles[i]) for array, (gemms, by_flow) in PINS.items()
         for flow, cycles in by_flow.items() for i, gemm in enumerate(gemms)]


def sasim_scalesim_total(m, n, k, rows, cols, mode, dataflow="weight_stationary"):
    w = np.ones((n, k), np.float32)
    x = np.ones((m, k), np.float32) if mode == "cycle" else None
    hw = make_hw(rows, cols, memory__sram_weight_bw=1e6, memory__sram_input_bw=1e6, array__dataflow=dataflow)
    res = simulate_matmul(PackedMatrix.from_dense(w), x, hw, m, "scalesim", mode)
    return res.counts.cycles - 1


def test_every_dataflow_has_at_least_eight_pins_on_square_and_non_square_arrays():
    for flow in FLOWS:
        arrays = {array for array, _, f, _ in CASES if f == flow}
        assert sum(f == flow for *_, f, _ in CASES) >= 8
        assert any(r == c for r, c in arrays) and any(r != c for r, c in arrays)


@pytest.mark.parametrize("mode", ["cycle", "analytic"])
@pytest.mark.parametrize("array,gemm,flow,expected", CASES)
def test_pinned_scalesim_total_cycles(array, gemm, flow, expected, mode):
    assert sasim_scalesim_total(*gemm, *array, mode=mode, dataflow=FLOWS[flow]) == expected


@pytest.mark.scalesim
@pytest.mark.skipif(os.environ.get("SASIM_TEST_SCALESIM") != "1", reason="set SASIM_TEST_SCALESIM=1 to run SCALE-Sim")
@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_against_live_scalesim(flow):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from scalesim_harness import scalesim_total_cycles

    rng = np.random.default_rng(7)
    for rows, cols in [(8, 8), (4, 16), (16, 4), (32, 32)]:
        gemms = [tuple(int(v) for v in rng.integers(1, 90, 3)) for _ in range(6)]
        theirs, _ = scalesim_total_cycles(gemms, rows, cols, flow)
        ours = [sasim_scalesim_total(m, n, k, rows, cols, "analytic", FLOWS[flow]) for m, n, k in gemms]
        assert ours == theirs, (flow, rows, cols, gemms)


def test_flows_cover_every_dataflow():
    assert sorted(FLOWS.values()) == sorted(DATAFLOWS)
