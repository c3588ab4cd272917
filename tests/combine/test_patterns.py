"""Sparsity patterns as packings (issue 16): N:M structure, unpacking, and the simulators on them."""

import numpy as np
import pytest
from conftest import make_hw, sparse_matrix
from naive import naive_nm_mask

from sasim.combine.patterns import nm_mask, pack_nm, pack_unstructured
from sasim.errors import SasimError
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (2, 8), (3, 3), (1, 1)])
@pytest.mark.parametrize("k", [1, 7, 16, 21])
def test_nm_keeps_at_most_n_per_block_and_unpacks_to_the_masked_matrix(n, m, k, rng):
    w = sparse_matrix(rng, 13, k, 0.8)
    w[0, :] = 1.0  # ties: the lower columns win
    keep = nm_mask(w, n, m)
    np.testing.assert_array_equal(keep, naive_nm_mask(w, n, m))
    packed = pack_nm(w, n, m)
    dense = packed.unpack()
    np.testing.assert_array_equal(dense, np.where(keep, w, 0))
    for start in range(0, k, m):
        assert (np.count_nonzero(dense[:, start:start + m], axis=1) <= n).all()
    assert packed.max_group_size == min(m, k)
    assert packed.num_groups == sum(min(n, min(m, k - s)) for s in range(0, k, m))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("timing", ["sasim", "scalesim"])
def test_simulators_on_nm_and_unstructured_equal_the_oracle(dataflow, timing, rng):
    w = sparse_matrix(rng, 30, 40, 0.9, integer=True)
    x = rng.integers(-3, 4, size=(5, 40)).astype(np.float32)
    hw = make_hw(8, 8, mux_fanin=8, array__dataflow=dataflow, memory__sram_weight_bw=5.0)
    for packed in (pack_nm(w, 2, 4), pack_unstructured(w, 0.3)):
        cyc = simulate_matmul(packed, x, hw, 5, timing, "cycle")
        ana = simulate_matmul(packed, None, hw, 5, timing, "analytic")
        assert cyc.counts == ana.counts
        np.testing.assert_array_equal(cyc.y, x @ packed.unpack().T)


def test_nm_needs_a_wide_enough_multiplexer_and_sane_n_m(rng):
    packed = pack_nm(sparse_matrix(rng, 8, 16, 0.9), 2, 8)
    with pytest.raises(SasimError, match="mux_fanin"):
        simulate_matmul(packed, None, make_hw(8, 8, mux_fanin=4), 1, "sasim", "analytic")
    with pytest.raises(SasimError, match="n <= m"):
        pack_nm(np.ones((2, 4), np.float32), 3, 2)


def test_unstructured_keeps_zeros_on_the_array(rng):
    w = sparse_matrix(rng, 16, 16, 1.0)
    packed = pack_unstructured(w, 0.25)
    assert packed.num_groups == 16 and packed.nonzeros == 64
    assert packed.stats["pattern"] == "unstructured"
