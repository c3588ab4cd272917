"""Sparsity patterns as packings: N:M and block structure, unpacking, storage, and the simulators on them."""

import numpy as np
import pytest
from conftest import make_hw, sparse_matrix
from naive import naive_block_mask, naive_nm_mask

from sasim.combine.packed import RowBlocks
from sasim.combine.patterns import Pattern, block_mask, nm_mask, pack_block, pack_nm, pack_unstructured
from sasim.errors import SasimError
from sasim.hw.config import DATAFLOWS
from sasim.sim.engine import simulate_matmul
from sasim.sim.mapping import weight_tiles
from sasim.workload.checkpoint import packed_to_tensors, stored_packed


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


@pytest.mark.parametrize("br,bc", [(4, 4), (8, 8), (3, 5), (16, 1)])
@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.1])
def test_block_skips_only_all_zero_blocks_and_unpacks_to_the_masked_matrix(br, bc, density, rng):
    w = rng.integers(-4, 5, size=(21, 19)).astype(np.float32)
    w[:8, :8] = 0  # an all-zero block is never kept
    keep = block_mask(w, br, bc, density)
    np.testing.assert_array_equal(keep, naive_block_mask(w, br, bc, density))
    packed = pack_block(w, br, bc, density)
    dense = packed.unpack()
    np.testing.assert_array_equal(dense, np.where(keep, w, 0))
    for r0 in range(0, 21, br):
        for c0 in range(0, 19, bc):
            block = keep[r0:r0 + br, c0:c0 + bc]
            assert block.all() or not block.any()  # whole blocks, kept or pruned
    # each row band holds exactly the columns of its live blocks, one column per group: no multiplexer
    assert isinstance(packed, RowBlocks) and packed.max_group_size <= 1
    for band, r0 in zip(packed.blocks, packed.row_starts):
        np.testing.assert_array_equal(band.group_cols[:, 0], np.flatnonzero(keep[r0]))
    assert packed.stats["pattern"] == f"block:{br}x{bc}"


def test_block_tiles_are_the_live_blocks_when_blocks_are_array_tiles(rng):
    w = rng.standard_normal((64, 96)).astype(np.float32)
    packed = pack_block(w, 8, 8, 0.25)
    hw = make_hw(8, 8)
    live = int(block_mask(w, 8, 8, 0.25)[::8, ::8].sum())
    assert live == round(0.25 * 8 * 12) and weight_tiles(packed, hw) == live
    res = simulate_matmul(packed, None, hw, 3, "sasim", "analytic")
    assert res.counts.tiles == live and res.counts.useful_macs == 3 * 64 * live


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("timing", ["sasim", "scalesim"])
def test_simulators_on_block_equal_the_oracle_with_empty_bands(dataflow, timing, rng):
    w = rng.integers(-3, 4, size=(24, 20)).astype(np.float32)
    w[8:16] = 0  # a band with no live block: skipped, its outputs are zeros
    x = rng.integers(-3, 4, size=(5, 20)).astype(np.float32)
    hw = make_hw(8, 4, array__dataflow=dataflow, memory__sram_weight_bw=5.0)
    packed = pack_block(w, 8, 4, 0.5)
    assert packed.blocks[1].num_groups == 0
    cyc = simulate_matmul(packed, x, hw, 5, timing, "cycle")
    ana = simulate_matmul(packed, None, hw, 5, timing, "analytic")
    assert cyc.counts == ana.counts
    np.testing.assert_array_equal(cyc.y, x @ packed.unpack().T)


def test_row_blocks_survive_a_checkpoint_round_trip(rng):
    w = rng.standard_normal((20, 12)).astype(np.float32)
    packed = pack_block(w, 8, 4, 0.5)
    state = packed_to_tensors("rnns.0.gates", packed)
    back = stored_packed(state, "rnns.0.gates", (20, 12))
    assert isinstance(back, RowBlocks) and [b.shape for b in back.blocks] == [b.shape for b in packed.blocks]
    np.testing.assert_array_equal(back.unpack(), packed.unpack())
    with pytest.raises(SasimError, match="cover 20 rows, not 24"):
        stored_packed(state, "rnns.0.gates", (24, 12))


@pytest.mark.parametrize("text,name", [("combine", "combine"), ("NM:2:4", "nm:2:4"), ("block:32x16", "block:32x16"),
                                       ("unstructured", "unstructured"), ("dense", "dense")])
def test_pattern_names_read_back(text, name):
    assert Pattern.parse(text).name == name


@pytest.mark.parametrize("bad", ["nm:4:4", "nm:2", "nm:a:4", "block:32", "block:0x4", "bogus", "nm:0:4"])
def test_bad_patterns_get_one_clear_error(bad):
    with pytest.raises(SasimError, match="pattern|n must|block_rows|m must"):
        Pattern.parse(bad)


def test_pattern_pack_dispatches_by_kind(rng):
    w = rng.standard_normal((16, 16)).astype(np.float32)
    assert Pattern.parse("nm:1:4").pack(w).num_groups == 4
    assert Pattern.parse("unstructured").pack(w, 0.75).nonzeros == 64
    assert Pattern.parse("block:8x8").pack(w, 0.5).nonzeros == 128
    assert Pattern.parse("combine").pack(w, alpha=2, gamma=0.0).max_group_size <= 2
