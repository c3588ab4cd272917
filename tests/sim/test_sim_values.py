"""The cycle-level simulator computes the right numbers: compared with plain numpy."""

import numpy as np
import pytest
from conftest import make_hw, sparse_matrix
from naive import naive_matmul

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import PackedMatrix
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul

SHAPES = [(1, 1, 1, 4, 4), (5, 20, 13, 8, 8), (3, 7, 30, 4, 8), (9, 33, 17, 8, 4), (2, 64, 64, 16, 16),
          (17, 5, 3, 8, 8)]


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("timing", ["sasim", "scalesim"])
@pytest.mark.parametrize("m,n,k,r,c", SHAPES)
def test_dense_outputs_exact_on_integers(m, n, k, r, c, timing, dataflow, rng):
    # small integers: every partial sum is exact in float32, so the array must match bit for bit
    w = sparse_matrix(rng, n, k, 0.7, integer=True)
    x = rng.integers(-4, 5, size=(m, k)).astype(np.float32)
    res = simulate_matmul(PackedMatrix.from_dense(w), x, make_hw(r, c, array__dataflow=dataflow), m, timing, "cycle")
    np.testing.assert_array_equal(res.y, naive_matmul(x, w).astype(np.float32))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("m,n,k,r,c", SHAPES)
def test_dense_outputs_close_on_floats(m, n, k, r, c, dataflow, rng):
    w = sparse_matrix(rng, n, k, 0.5)
    x = rng.standard_normal((m, k)).astype(np.float32)
    res = simulate_matmul(PackedMatrix.from_dense(w), x, make_hw(r, c, array__dataflow=dataflow), m, "sasim", "cycle")
    np.testing.assert_allclose(res.y, naive_matmul(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rule", ["prune", "spill"])
@pytest.mark.parametrize("alpha,gamma", [(2, 0.0), (4, 0.5), (8, 1.0), (8, 1.75)])
def test_packed_outputs_equal_pruned_dense(alpha, gamma, rule, dataflow, rng):
    w = sparse_matrix(rng, 40, 60, 0.2, integer=True)
    x = rng.integers(-3, 4, size=(6, 60)).astype(np.float32)
    packed = pack_matrix(w, alpha, gamma, rule, section=16)
    res = simulate_matmul(packed, x, make_hw(8, 8, mux_fanin=8, array__dataflow=dataflow), 6, "sasim", "cycle")
    np.testing.assert_array_equal(res.y, naive_matmul(x, packed.unpack()).astype(np.float32))
    if rule == "spill":
        np.testing.assert_array_equal(packed.unpack(), w)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_bandwidth_limited_and_bit_serial_values_unchanged(rng, dataflow):
    w = sparse_matrix(rng, 20, 24, 0.4, integer=True)
    x = rng.integers(-3, 4, size=(5, 24)).astype(np.float32)
    hw = make_hw(8, 8, memory__sram_weight_bw=3.0, memory__sram_input_bw=5.0, array__dataflow=dataflow)
    res = simulate_matmul(PackedMatrix.from_dense(w), x, hw, 5, "sasim", "cycle")
    assert res.counts.stall_cycles > 0
    np.testing.assert_array_equal(res.y, naive_matmul(x, w).astype(np.float32))


def test_mux_fanin_too_small_is_refused(rng):
    from sasim.errors import SasimError

    packed = pack_matrix(sparse_matrix(rng, 20, 40, 0.1), 8, 1.0)
    with pytest.raises(SasimError, match="mux_fanin"):
        simulate_matmul(packed, None, make_hw(8, 8, mux_fanin=2), 1, "sasim", "analytic")
