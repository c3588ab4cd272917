"""Sparsity patterns other than column combining, in sasim's packed form (issue 16, in progress).

* ``nm``: N:M structured sparsity. In every row, at most ``n`` nonzeros in each block of ``m`` consecutive
  input columns, kept by magnitude within the block (ties to the lower column), as NVIDIA's ASP computes its
  masks. On the array each block becomes ``n`` packed columns whose groups all list the block's ``m`` columns;
  a row's ``j``-th kept weight of the block sits in the block's ``j``-th packed column with the select index of
  its offset in the block, so every PE chooses among ``m`` lanes (``mux_fanin >= m``).
* ``unstructured``: magnitude pruning kept dense on the array (zeros occupy PEs): the no-support baseline.

Both return a :class:`~sasim.combine.packed.PackedMatrix`, so mapping, both simulators and the metrics serve
them unchanged.
"""

from __future__ import annotations

import numpy as np

from sasim.checks import check_int
from sasim.combine.magnitude import magnitude_prune
from sasim.combine.packed import PackedMatrix, validate_matrix
from sasim.errors import SasimError


def nm_mask(weight: np.ndarray, n: int, m: int) -> np.ndarray:
    """The N:M mask of ``weight``: in each row and each block of ``m`` columns, the ``n`` largest magnitudes
    (a last, narrower block keeps at most ``n`` of its columns). Zeros are never kept."""
    check_int("n", n, 1)
    check_int("m", m, 1)
    if n > m:
        raise SasimError(f"an N:M pattern needs n <= m, got {n}:{m}", param="n")
    weight = np.asarray(weight)
    rows, k = weight.shape
    blocks = -(-k // m)
    padded = np.zeros((rows, blocks * m), dtype=np.float64)
    padded[:, :k] = np.abs(weight)
    per_block = padded.reshape(rows, blocks, m)
    # stable sort of -|w|: the largest first, ties to the lower column
    order = np.argsort(-per_block, axis=2, kind="stable")[:, :, :n]
    keep = np.zeros_like(per_block, dtype=bool)
    np.put_along_axis(keep, order, True, axis=2)
    keep &= per_block > 0
    return keep.reshape(rows, blocks * m)[:, :k]


def pack_nm(weight, n: int, m: int) -> PackedMatrix:
    """Prune ``weight`` to N:M by magnitude and pack it: ``n`` packed columns per block of ``m`` columns."""
    weight = validate_matrix(weight)
    keep = nm_mask(weight, n, m)
    rows, k = weight.shape
    blocks = -(-k // m)
    widths = [min(m, k - b * m) for b in range(blocks)]
    per_block = [min(n, w) for w in widths]
    groups = sum(per_block)
    values = np.zeros((rows, groups), dtype=np.float32)
    select = np.zeros((rows, groups), dtype=np.int16 if m > 127 else np.int8)
    group_cols = np.full((groups, m), -1, dtype=np.int64)
    g0 = 0
    for b, (width, slots) in enumerate(zip(widths, per_block)):
        cols = np.arange(b * m, b * m + width)
        group_cols[g0:g0 + slots, :width] = cols
        block_keep = keep[:, cols]
        # the j-th kept weight of a row goes to the block's j-th packed column
        rank = np.cumsum(block_keep, axis=1) - 1
        r_idx, offset = np.nonzero(block_keep)
        slot = rank[r_idx, offset]
        values[r_idx, g0 + slot] = weight[r_idx, cols[offset]]
        select[r_idx, g0 + slot] = offset
        g0 += slots
    before = int(np.count_nonzero(weight))
    after = int(np.count_nonzero(values))
    stats = {"pattern": f"nm:{n}:{m}", "nonzeros_before": before, "nonzeros_after": after,
             "pruned_fraction": 1 - after / before if before else 0.0, "groups": groups,
             "packing_efficiency": after / values.size if values.size else 0.0}
    return PackedMatrix(values=values, select=select, group_cols=group_cols, shape=(rows, k), stats=stats)


def pack_unstructured(weight, density: float) -> PackedMatrix:
    """Magnitude-prune ``weight`` to ``density`` and keep it dense on the array (zeros occupy PEs)."""
    weight = validate_matrix(weight)
    before = int(np.count_nonzero(weight))
    pruned = magnitude_prune(weight, density)
    packed = PackedMatrix.from_dense(pruned)
    after = int(np.count_nonzero(pruned))
    packed.stats.update(pattern="unstructured", nonzeros_before=before, nonzeros_after=after,
                        pruned_fraction=1 - after / before if before else 0.0)
    return packed
