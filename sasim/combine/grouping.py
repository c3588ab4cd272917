"""Grouping policies: which columns share one array column.

``paper``: the policy of Kung, McDanel and Zhang (ASPLOS 2019), per section of ``section``
consecutive columns (0: the whole matrix). The open columns are the section's nonzero columns in
index order; a group starts with the first open column and repeatedly adds the feasible open column
that covers the most rows (``|rows(g) U rows(c)|``, ties: lowest index), where feasible means the
group stays within ``alpha`` columns and its conflicts (over all rows, ``cnt - 1`` per row with
``cnt`` nonzeros) stay within ``floor(gamma * N)``. Optional ``row_cap``: no row of a group may
hold more than ``row_cap`` conflicts.

``min-conflict``: the same sections, order and constraints, but each step adds the feasible column
that adds the fewest conflicts (ties: the largest union, then the lowest index). On the shipped
model's matrices, magnitude-pruned to density 0.1 and 0.2, it needs 6.3% and 2.2% fewer groups than
``paper`` at matched pruned fraction (``benchmarks/bench_policies.py``). Ordering the open columns
densest-first was measured too and gained nothing (within 0.2%), so it is not offered.
"""

from __future__ import annotations

import math

import numpy as np

from sasim.checks import MAX_ALPHA, MAX_GAMMA
from sasim.combine._grouping_kernel import _paper_groups
from sasim.errors import SasimError

POLICIES = ("paper", "min-conflict")


def validate_grouping_args(alpha, gamma, section, row_cap=None, policy="paper") -> None:
    """Raise :class:`SasimError` for impossible grouping parameters."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or not 1 <= alpha <= MAX_ALPHA:
        raise SasimError(f"alpha must be an integer in 1..{MAX_ALPHA} (columns per group), got {alpha!r}")
    if (isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating, np.integer))
            or not math.isfinite(gamma) or not 0 <= gamma <= MAX_GAMMA):
        raise SasimError(f"gamma must be a number in 0..{MAX_GAMMA:g} (conflicts per row on average), got {gamma!r}")
    if not isinstance(section, (int, np.integer)) or section < 0:
        raise SasimError(f"section must be an integer >= 0 (0: no sections), got {section!r}")
    if row_cap is not None and (not isinstance(row_cap, (int, np.integer)) or row_cap < 0):
        raise SasimError(f"row_cap must be an integer >= 0, got {row_cap!r}")
    if policy not in POLICIES:
        raise SasimError(f"unknown grouping policy {policy!r}; choose one of {', '.join(POLICIES)}")


def section_bounds(ncols: int, section: int, boundaries=()) -> list[tuple[int, int]]:
    """Column ranges that groups may not cross: every ``section`` columns and at each given boundary."""
    cuts = set(range(section, ncols, section)) if section else set()
    cuts |= {b for b in boundaries if 0 < b < ncols}
    edges = [0] + sorted(cuts) + [ncols]
    return list(zip(edges[:-1], edges[1:]))


def group_columns(weight: np.ndarray, alpha: int, gamma: float, section: int = 256, row_cap: int | None = None,
                  policy: str = "paper", boundaries=()) -> list[np.ndarray]:
    """Partition the nonzero columns of ``weight`` into groups.

    Parameters
    ----------
    weight : np.ndarray
        ``N x K`` matrix; only its nonzero pattern matters.
    alpha : int
        Most columns per group.
    gamma : float
        Conflict budget: a group's conflicts over all rows are at most ``floor(gamma * N)``.
    section : int
        Groups never cross a boundary of ``section`` consecutive columns (0: no sections).
    row_cap : int, optional
        Most conflicts of one row within one group.
    policy : str
        Grouping policy; see :data:`POLICIES`.
    boundaries : iterable of int
        Further column indices groups may not cross (e.g. between ``W_ih`` and ``W_hh``).

    Returns
    -------
    list of np.ndarray
        Column indices of each group, in the order they were formed (each in joining order).
    """
    validate_grouping_args(alpha, gamma, section, row_cap, policy)
    n, k = weight.shape
    budget = math.floor(gamma * n + 1e-9)
    nz = weight != 0
    groups = []
    for lo, hi in section_bounds(k, section, boundaries):
        block = nz[:, lo:hi]
        cols = np.flatnonzero(block.any(axis=0))
        if cols.size == 0:
            continue
        sub = block[:, cols]
        csc_rows, csc_cols = np.nonzero(sub.T)  # sorted by column, then row
        col_ptr = np.searchsorted(csc_rows, np.arange(cols.size + 1)).astype(np.int64)
        col_rows = csc_cols.astype(np.int64)
        r_idx, c_idx = np.nonzero(sub)  # sorted by row, then column
        row_ptr = np.searchsorted(r_idx, np.arange(n + 1)).astype(np.int64)
        row_cols = c_idx.astype(np.int64)
        out = np.full((cols.size, alpha), -1, dtype=np.int64)
        count = _paper_groups(col_ptr, col_rows, row_ptr, row_cols, cols.size, n, alpha, budget,
                              -1 if row_cap is None else row_cap, policy == "min-conflict", out)
        for g in out[:count]:
            groups.append(cols[g[g >= 0]] + lo)
    return groups
