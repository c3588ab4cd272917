"""The analytic model equals the cycle-level simulator exactly, on every count, over random cases."""

import numpy as np
import pytest
from conftest import make_hw, sparse_matrix
from hypothesis import given
from hypothesis import strategies as st

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import PackedMatrix
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul


@st.composite
def cases(draw):
    return dict(
        n=draw(st.integers(1, 40)), k=draw(st.integers(1, 40)), m=draw(st.integers(1, 12)),
        rows=draw(st.integers(1, 9)), cols=draw(st.integers(1, 9)), alpha=draw(st.sampled_from([1, 2, 3, 4, 8])),
        gamma=draw(st.sampled_from([0.0, 0.25, 1.0])), rule=draw(st.sampled_from(["prune", "spill"])),
        density=draw(st.sampled_from([0.1, 0.3, 1.0])), timing=draw(st.sampled_from(["sasim", "scalesim"])),
        weight_bw=draw(st.sampled_from([1000.0, 7.0, 2.5])), input_bw=draw(st.sampled_from([1000.0, 9.0, 3.0])),
        bit_serial=draw(st.booleans()), resident=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
        dataflow=draw(st.sampled_from(DATAFLOWS)),
    )


@given(cases())
def test_cycle_and_analytic_counts_equal(case):
    rng = np.random.default_rng(case["seed"])
    w = sparse_matrix(rng, case["n"], case["k"], case["density"], integer=True)
    if not w.any():
        w[0, 0] = 1
    packed = (PackedMatrix.from_dense(w) if case["alpha"] == 1
              else pack_matrix(w, case["alpha"], case["gamma"], case["rule"], section=0))
    overrides = dict(memory__sram_weight_bw=case["weight_bw"], memory__sram_input_bw=case["input_bw"],
                     memory__dram_bw=2.0)
    if case["bit_serial"]:
        overrides.update(arithmetic__mode="bit_serial", arithmetic__number_format="fixed_point",
                         arithmetic__weight_bits=8, arithmetic__act_bits=8, arithmetic__acc_bits=24)
    hw = make_hw(case["rows"], case["cols"], 8, array__dataflow=case["dataflow"], **overrides)
    x = rng.integers(-3, 4, size=(case["m"], case["k"])).astype(np.float32)
    cyc = simulate_matmul(packed, x, hw, case["m"], case["timing"], "cycle", case["resident"])
    ana = simulate_matmul(packed, None, hw, case["m"], case["timing"], "analytic", case["resident"])
    assert cyc.counts == ana.counts
    assert cyc.counts.useful_macs == packed.nonzeros * case["m"]
    np.testing.assert_array_equal(cyc.y, (x.astype(np.float64) @ packed.unpack().T.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_double_buffering_never_slower_than_scalesim(rng, dataflow):
    w = sparse_matrix(rng, 70, 50, 1.0)
    for m in (1, 4, 32):
        for bw in (1000.0, 3.0):
            hw = make_hw(8, 8, memory__sram_weight_bw=bw, array__dataflow=dataflow)
            fast = simulate_matmul(PackedMatrix.from_dense(w), None, hw, m, "sasim", "analytic").counts.cycles
            slow = simulate_matmul(PackedMatrix.from_dense(w), None, hw, m, "scalesim", "analytic").counts.cycles
            assert fast <= slow
