"""Fixed-point words through the array: bit-exact against an integer reference, overflow counted."""

import numpy as np
import pytest
from conftest import make_hw
from naive import naive_fixed_point_matmul

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.hw.config import DATAFLOWS
from sasim.sim.cycle import simulate_fixed_point
from sasim.sim.mapping import map_matrix


def int_packed(rng, n, k, density, alpha, bits=8):
    q = 2 ** (bits - 1) - 1
    w = rng.integers(-q, q + 1, size=(n, k)) * (rng.random((n, k)) < density)
    p = pack_matrix(w.astype(np.float32), alpha, 1.0) if alpha > 1 else PackedMatrix.from_dense(w.astype(np.float32))
    return PackedMatrix(values=p.values.astype(np.int64), select=p.select, group_cols=p.group_cols, shape=p.shape)


@pytest.mark.parametrize("acc_bits,saturate", [(32, True), (14, True), (14, False), (10, True)])
@pytest.mark.parametrize("alpha", [1, 4])
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_integer_outputs_bit_exact(acc_bits, saturate, alpha, dataflow):
    rng = np.random.default_rng(acc_bits + alpha)
    p = int_packed(rng, 19, 23, 0.5, alpha)
    x = rng.integers(-127, 128, size=(5, 23)).astype(np.int64)
    hw = make_hw(4, 6, 8, array__dataflow=dataflow)
    tm = map_matrix(p, hw, batch=5)
    y, counts, overflows = simulate_fixed_point(p, x, tm, 5, acc_bits, "sasim", saturate)
    ref, ref_over = naive_fixed_point_matmul(p.values, p.select, p.group_cols, x, 4, 6, acc_bits, saturate,
                                             dataflow)
    np.testing.assert_array_equal(y, ref)
    assert overflows == ref_over
    if acc_bits == 32:
        assert overflows == 0
        np.testing.assert_array_equal(y, x @ p.unpack().T)
    if acc_bits == 10:
        assert overflows > 0  # narrow accumulators overflow, and the simulator says so


def test_fixed_point_needs_integers():
    p = PackedMatrix.from_dense(np.ones((3, 3), np.float32))
    with pytest.raises(SasimError, match="integer weights"):
        simulate_fixed_point(p, np.ones((1, 3), np.int64), map_matrix(p, make_hw(4, 4)), 1, 16)
