"""Combine-pruning under a conflict rule, producing the packed form.

Rules (docs/contract.md section 1):

* ``prune`` (the paper): in each (row, group) cell keep the largest-magnitude weight (ties: the
  lowest column index) and drop the others.
* ``spill`` (lossless): the losing weights form a residual matrix that is grouped again with the
  same policy and parameters, into further groups, until nothing is left. A column may then appear
  in several groups; its input is fed to each of them. Costs columns, never accuracy.

A per-row cap (``row_cap``) constrains grouping under either rule.
"""

from __future__ import annotations

import numpy as np

from sasim.combine.grouping import group_columns, validate_grouping_args
from sasim.combine.packed import PackedMatrix, validate_matrix
from sasim.errors import SasimError

RULES = ("prune", "spill")


def _combine(weight: np.ndarray, groups: list[np.ndarray], alpha: int):
    """Keep one weight per (row, group) cell; return values, select, group_cols, losers."""
    n = weight.shape[0]
    g = len(groups)
    values = np.zeros((n, g), dtype=np.float32)
    select = np.zeros((n, g), dtype=np.int16 if alpha > 127 else np.int8)
    group_cols = np.full((g, alpha), -1, dtype=np.int64)
    losers = np.zeros_like(weight)
    rows = np.arange(n)
    for j, cols in enumerate(groups):
        cols = np.sort(cols)
        group_cols[j, : cols.size] = cols
        sub = weight[:, cols]
        pick = np.argmax(np.abs(sub), axis=1)  # first maximum: the lowest column index wins ties
        values[:, j] = sub[rows, pick]
        select[:, j] = pick
        lost = sub.copy()
        lost[rows, pick] = 0
        if lost.any():
            losers[:, cols] += lost
    return values, select, group_cols, losers


def check_fanin(alpha: int, mux_fanin: int | None, owner: str = "the hardware's") -> None:
    """Refuse groups wider than the multiplexer: a PE selects among at most ``mux_fanin`` lanes."""
    if mux_fanin is not None and alpha > mux_fanin:
        raise SasimError(f"alpha {alpha} exceeds {owner} mux_fanin {mux_fanin}: a PE can select among at most "
                         f"{mux_fanin} lanes; use alpha {mux_fanin} or less, or hardware with a wider multiplexer",
                         param="alpha")


def pack_matrix(weight, alpha: int, gamma: float, rule: str = "prune", policy: str = "paper", section: int = 256,
                row_cap: int | None = None, boundaries=(), mux_fanin: int | None = None) -> PackedMatrix:
    """Column-combine ``weight`` into its packed form.

    Parameters
    ----------
    weight : array_like
        ``N x K`` weights (zeros are pruned weights).
    alpha, gamma, policy, section, row_cap, boundaries
        Grouping parameters; see :func:`sasim.combine.grouping.group_columns`.
    rule : {"prune", "spill"}
        What happens to conflicting weights.
    mux_fanin : int, optional
        The hardware's multiplexer width; ``alpha`` may not exceed it.

    Returns
    -------
    PackedMatrix
        With ``stats``: ``groups``, ``group_sizes`` (histogram), ``nonzeros_before``, ``nonzeros_after``,
        ``pruned_fraction``, ``packing_efficiency`` and the parameters.
    """
    w = validate_matrix(weight)
    validate_grouping_args(alpha, gamma, section, row_cap, policy)
    if rule not in RULES:
        raise SasimError(f"unknown conflict rule {rule!r}; choose one of {', '.join(RULES)}")
    check_fanin(alpha, mux_fanin)
    n, k = w.shape
    nonzeros_before = int(np.count_nonzero(w))
    parts_v, parts_s, parts_g = [], [], []
    residual = w
    rounds = 0
    while True:
        groups = group_columns(residual, alpha, gamma, section, row_cap, policy, boundaries)
        values, select, group_cols, losers = _combine(residual, groups, alpha)
        parts_v.append(values)
        parts_s.append(select)
        parts_g.append(group_cols)
        rounds += 1
        if rule == "prune" or not losers.any():
            break
        residual = losers
    values = np.concatenate(parts_v, axis=1) if parts_v else np.zeros((n, 0), np.float32)
    select = np.concatenate(parts_s, axis=1)
    group_cols = np.concatenate(parts_g, axis=0)
    width = max(1, int((group_cols >= 0).sum(axis=1).max())) if group_cols.size else 1
    group_cols = group_cols[:, :width]
    packed = PackedMatrix(values=values, select=select, group_cols=group_cols, shape=(n, k))
    nonzeros_after = packed.nonzeros
    sizes = packed.group_sizes
    packed.stats = {
        "alpha": alpha, "gamma": gamma, "rule": rule, "policy": policy, "section": section, "row_cap": row_cap,
        "groups": packed.num_groups, "group_sizes": {int(s): int((sizes == s).sum()) for s in np.unique(sizes)},
        "nonzeros_before": nonzeros_before, "nonzeros_after": nonzeros_after,
        "pruned_fraction": 1 - nonzeros_after / nonzeros_before if nonzeros_before else 0.0,
        "packing_efficiency": nonzeros_after / (n * packed.num_groups) if packed.num_groups else 0.0,
        "spill_rounds": rounds if rule == "spill" else 0,
    }
    return packed
