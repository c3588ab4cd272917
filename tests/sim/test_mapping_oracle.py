"""The mapping and the metrics against slow first-principles oracles (tests/naive.py).

The cycle-level simulator and the analytic model share the mapping (per-tile load beats, issue intervals,
cell bytes) and the metrics, so their agreement cannot catch a bug there. These tests compute the tile
schedule, the traffic and the energy directly from bytes, bandwidths and an explicit event timeline.
"""

import math

import numpy as np
import pytest
from conftest import make_hw, sparse_matrix
from hypothesis import given
from hypothesis import strategies as st
from naive import naive_tile_schedule, naive_traffic_and_energy

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import PackedMatrix
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul
from sasim.sim.mapping import map_matrix, weights_fit
from sasim.sim.metrics import WorkPart, part_metrics

CONFIGS = {
    "ample": {},
    "slow weights": dict(memory__sram_weight_bw=3.0, memory__dram_bw=1.5),
    "slow inputs": dict(memory__sram_input_bw=2.5),
    "tiny sram": dict(memory__weight_sram_bytes=64, memory__dram_bw=5.0),
    "bit-serial 6-bit": dict(arithmetic__mode="bit_serial", arithmetic__number_format="fixed_point",
                             arithmetic__weight_bits=6, arithmetic__act_bits=6, arithmetic__acc_bits=20,
                             memory__sram_weight_bw=2.0),
}


@given(n=st.integers(1, 30), k=st.integers(1, 40), density=st.floats(0.05, 1.0), alpha=st.integers(1, 8),
       gamma=st.sampled_from([0.0, 0.5, 2.0]), M=st.integers(1, 6), rows=st.integers(2, 9), cols=st.integers(2, 9),
       config=st.sampled_from(sorted(CONFIGS)), timing=st.sampled_from(["sasim", "scalesim"]),
       dataflow=st.sampled_from(DATAFLOWS), seed=st.integers(0, 2**16))
def test_mapping_counts_traffic_and_energy_match_the_oracle(n, k, density, alpha, gamma, M, rows, cols, config,
                                                             timing, dataflow, seed):
    rng = np.random.default_rng(seed)
    w = sparse_matrix(rng, n, k, density)
    if not w.any():
        w[0, 0] = 1.0
    hw = make_hw(rows=rows, cols=cols, mux_fanin=8, array__dataflow=dataflow, **CONFIGS[config])
    packed = pack_matrix(w, alpha, gamma, "spill") if alpha > 1 else PackedMatrix.from_dense(w)
    resident = weights_fit(hw, [packed])
    oracle = naive_tile_schedule(packed.group_sizes, n, hw, M, timing, resident)
    tm = map_matrix(packed, hw, resident, M)
    grid = {"weight_stationary": (n, packed.num_groups), "output_stationary": (n, M),
            "input_stationary": (M, packed.num_groups)}[dataflow]
    assert tm.tiles == oracle["tiles"] == math.ceil(grid[0] / rows) * math.ceil(grid[1] / cols)
    assert tm.cell_bytes == float(oracle["cell_bytes"])
    for mode in ("analytic", "cycle"):
        x = rng.standard_normal((M, k)).astype(np.float32) if mode == "cycle" else None
        counts = simulate_matmul(packed, x, hw, M, timing, mode, resident).counts
        assert counts.cycles == oracle["cycles"], mode
        assert counts.stall_cycles == oracle["stall_cycles"], mode
        assert (counts.weight_cells, counts.input_words, counts.output_words) == (
            oracle["weight_cells"], oracle["input_words"], oracle["output_words"]), mode
        assert counts.pe_vector_slots == oracle["tiles"] * rows * cols * oracle["steps"]
    part = WorkPart(name="m", rows=n, cols=k, groups=packed.num_groups, nonzeros=packed.nonzeros,
                    nonzeros_before=int(np.count_nonzero(w)), counts=counts, steps=1, batch=M,
                    cell_bytes=tm.cell_bytes)
    metrics = part_metrics(part, hw, resident)
    money = naive_traffic_and_energy(oracle, hw, M, counts.useful_macs, counts.mux_macs, packed.cells, resident)
    assert metrics["sram_bytes"] == pytest.approx(float(money["sram_bytes"]), rel=1e-12)
    assert metrics["dram_bytes"] == pytest.approx(float(money["dram_bytes"]), rel=1e-12)
    assert metrics["energy_j"] == pytest.approx(float(money["energy_pj"]) * 1e-12, rel=1e-9)
    assert counts.useful_macs == packed.nonzeros * M


def test_oracle_reproduces_a_hand_count():
    """4 x 4 dense on a 2 x 2 array, ample bandwidth, M = 3.
    Weight stationary: four tiles, each loads in C = 2 cycles. scalesim: every tile pays load 2 + (M - 1) +
    R + C - 1 = 7 beats: 28; sasim: 2 + 3 * 3 + 2 + 2 + 1 = 16.
    Output stationary: (4 outputs / 2) x (3 vectors / 2) = 4 tiles, each streams K = 4 groups, no load.
    scalesim: 4 * (4 - 1 + 2 + 2 - 1) = 24; sasim: 3 * 4 + (4 - 1) + 2 + 2 - 1 = 18.
    Input stationary: (3 vectors / 2) x (4 groups / 2) = 4 tiles, each loads in 2 and streams N = 4 rows.
    scalesim: 4 * (2 + 3 + 3) = 32; sasim: 2 + 3 * max(4, 2) + 3 + 3 = 20."""
    sizes = np.ones(4, dtype=np.int64)
    expected = {"weight_stationary": (28, 16), "output_stationary": (24, 18), "input_stationary": (32, 20)}
    for flow, (scalesim, sasim) in expected.items():
        hw = make_hw(rows=2, cols=2, array__dataflow=flow)
        assert naive_tile_schedule(sizes, 4, hw, 3, "scalesim")["cycles"] == scalesim, flow
        assert naive_tile_schedule(sizes, 4, hw, 3, "sasim")["cycles"] == sasim, flow
