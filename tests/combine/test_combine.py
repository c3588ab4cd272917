"""Column combining: the fast grouping equals the literal pseudo-code; rules keep their promises."""

import math

import numpy as np
import pytest
from conftest import sparse_matrix
from hypothesis import given
from hypothesis import strategies as st
from naive import naive_combine_prune, naive_paper_groups

from sasim.combine.column_combine import pack_matrix
from sasim.combine.grouping import group_columns
from sasim.errors import SasimError


@st.composite
def matrices(draw):
    n, k = draw(st.integers(1, 30)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    density = draw(st.sampled_from([0.05, 0.15, 0.3, 0.6]))
    rng = np.random.default_rng(seed)
    return sparse_matrix(rng, n, k, density)


params = st.fixed_dictionaries(dict(
    alpha=st.sampled_from([1, 2, 3, 4, 8]), gamma=st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.75]),
    section=st.sampled_from([0, 5, 16]), row_cap=st.sampled_from([None, 0, 1, 2]),
    policy=st.sampled_from(["paper", "min-conflict"]),
))


@given(matrices(), params)
def test_fast_groups_identical_to_naive(w, p):
    fast = [list(g) for g in group_columns(w, **p)]
    slow = naive_paper_groups(w, **p)
    assert fast == slow


@given(matrices(), params, st.sampled_from(["prune", "spill"]))
def test_packing_properties(w, p, rule):
    packed = pack_matrix(w, rule=rule, **p)
    n = w.shape[0]
    nz = w != 0
    sizes = packed.group_sizes
    assert (sizes <= p["alpha"]).all()
    assert packed.nonzeros == np.count_nonzero(packed.unpack())
    if rule == "prune":
        groups = packed.groups()
        budget = math.floor(p["gamma"] * n + 1e-9)
        for g in groups:
            per_row = np.maximum(nz[:, g].sum(axis=1) - 1, 0)
            assert per_row.sum() <= budget
            if p["row_cap"] is not None:
                assert (per_row <= p["row_cap"]).all()
        np.testing.assert_array_equal(packed.unpack(), naive_combine_prune(w, groups))
        # every nonzero column is in exactly one group
        covered = sorted(c for g in groups for c in g)
        assert covered == list(np.flatnonzero(nz.any(axis=0)))
    else:
        np.testing.assert_array_equal(packed.unpack(), w)  # spill never loses a weight
    if p["gamma"] == 0:
        np.testing.assert_array_equal(packed.unpack(), w)  # no conflicts allowed: nothing pruned
        assert packed.stats["pruned_fraction"] == 0
    x = np.random.default_rng(0).standard_normal((3, w.shape[1])).astype(np.float32)
    np.testing.assert_allclose(packed.matmul(x), x @ packed.unpack().T, rtol=1e-5, atol=1e-5)


def test_stats_and_histogram(rng):
    w = sparse_matrix(rng, 64, 128, 0.1)
    p = pack_matrix(w, 8, 1.0)
    st_ = p.stats
    assert st_["groups"] == p.num_groups == sum(st_["group_sizes"].values())
    assert st_["nonzeros_before"] == np.count_nonzero(w)
    assert st_["nonzeros_after"] == p.nonzeros
    assert st_["pruned_fraction"] == pytest.approx(1 - p.nonzeros / np.count_nonzero(w))
    assert st_["packing_efficiency"] == pytest.approx(p.nonzeros / (64 * p.num_groups))
    assert p.num_groups < np.count_nonzero(w.any(axis=0))


def test_boundaries_are_respected(rng):
    w = sparse_matrix(rng, 32, 40, 0.1)
    for g in pack_matrix(w, 8, 1.0, section=0, boundaries=(17,)).groups():
        assert all(c < 17 for c in g) or all(c >= 17 for c in g)


def test_every_row_takes_part_even_if_empty_in_last_section():
    # rows 0..1 conflict only in the last (short) section; the defect in the paper's code skipped them
    w = np.zeros((4, 10), np.float32)
    w[:, :8] = np.eye(4, 8) + np.eye(4, 8, 4)
    w[0, 8], w[0, 9] = 1.0, 2.0
    packed = pack_matrix(w, 2, 1.0, section=8)
    assert packed.unpack()[0, 8] == 0 and packed.unpack()[0, 9] == 2.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(alpha=0, gamma=1.0), "alpha"), (dict(alpha=4, gamma=-1.0), "gamma"),
    (dict(alpha=4, gamma=float("nan")), "gamma"), (dict(alpha=4, gamma=1.0, section=-2), "section"),
    (dict(alpha=4, gamma=1.0, rule="keep"), "rule"), (dict(alpha=4, gamma=1.0, policy="dense-first"), "policy"),
    (dict(alpha=16, gamma=1.0, mux_fanin=8), "mux_fanin"),
])
def test_impossible_parameters(kwargs, match, rng):
    with pytest.raises(SasimError, match=match):
        pack_matrix(sparse_matrix(rng, 8, 8, 0.5), **kwargs)


def test_nan_weights_refused():
    w = np.ones((3, 3), np.float32)
    w[1, 1] = np.nan
    with pytest.raises(SasimError, match="NaN"):
        pack_matrix(w, 2, 1.0)
