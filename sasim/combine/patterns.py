"""Sparsity patterns, each in sasim's packed form, so mapping, both simulators and the metrics serve them unchanged.

* ``combine``: column combining (:func:`sasim.combine.column_combine.pack_matrix`).

* ``nm``: N:M structured sparsity. In every row, at most ``n`` nonzeros in each block of ``m`` consecutive
  input columns, kept by magnitude within the block (ties to the lower column), as NVIDIA's ASP computes its
  masks. On the array each block becomes ``n`` packed columns whose groups all list the block's ``m`` columns;
  a row's ``j``-th kept weight of the block sits in the block's ``j``-th packed column with the select index of
  its offset in the block, so every PE chooses among ``m`` lanes (``mux_fanin >= m``).
* ``block``: whole ``BR x BC`` blocks pruned by their L2 norm. The matrix runs as row bands of ``BR`` rows
  (:class:`~sasim.combine.packed.RowBlocks`), each with only the columns of its live blocks, one column per
  group: blocks that are all zero are skipped, and no PE needs a multiplexer (0 select bits). With
  ``BR = R`` and ``BC = C`` a live block is exactly one weight-stationary tile.
* ``unstructured``: magnitude pruning kept dense on the array (zeros occupy PEs): the no-support baseline.
* ``dense``: nothing pruned. Retrained with the same loop, schedule and budget, it is the matched dense control
  every accuracy claim compares against.

:class:`Pattern` names one of them (``combine``, ``nm:2:4``, ``block:32x32``, ``unstructured``, ``dense``) and
packs a matrix with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sasim.checks import check_int
from sasim.combine.column_combine import pack_matrix
from sasim.combine.magnitude import magnitude_prune
from sasim.combine.packed import PackedMatrix, RowBlocks, validate_matrix
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
                        pruned_fraction=1 - after / before if before else 0.0, groups=packed.num_groups,
                        packing_efficiency=after / packed.cells)
    return packed


def block_mask(weight: np.ndarray, block_rows: int, block_cols: int, density: float) -> np.ndarray:
    """The block mask of ``weight``: its ``block_rows x block_cols`` blocks (the last ones along each axis
    narrower) ranked by L2 norm, the largest ``round(density * blocks)`` kept (at least one; ties to the
    earlier block in row-major order; all-zero blocks never kept), as a boolean matrix of ``weight``'s shape."""
    check_int("block_rows", block_rows, 1)
    check_int("block_cols", block_cols, 1)
    if not 0 < density <= 1:
        raise SasimError(f"density must be in (0, 1], got {density}", param="density")
    weight = np.asarray(weight, dtype=np.float64)
    n, k = weight.shape
    nb_r, nb_c = -(-n // block_rows), -(-k // block_cols)
    padded = np.zeros((nb_r * block_rows, nb_c * block_cols))
    padded[:n, :k] = weight
    norms = np.sqrt((padded.reshape(nb_r, block_rows, nb_c, block_cols) ** 2).sum(axis=(1, 3))).ravel()
    keep_count = max(1, int(round(density * norms.size)))
    order = np.argsort(-norms, kind="stable")[:keep_count]
    live = np.zeros(norms.size, dtype=bool)
    live[order] = True
    live &= norms > 0
    blocks = live.reshape(nb_r, nb_c)
    return np.repeat(np.repeat(blocks, block_rows, axis=0), block_cols, axis=1)[:n, :k]


def pack_block(weight, block_rows: int, block_cols: int, density: float = 1.0) -> RowBlocks:
    """Prune ``weight`` to its strongest ``density`` of ``block_rows x block_cols`` blocks and pack it as row
    bands of ``block_rows`` rows, each holding only the columns of its live blocks (one column per group, select
    index 0: no multiplexer). A band without a live block has no groups and is skipped on the array.

    ``density=1`` keeps every block that has a nonzero: the packing of an already block-pruned matrix.
    """
    weight = validate_matrix(weight)
    keep = block_mask(weight, block_rows, block_cols, density)
    pruned = np.where(keep, weight, 0).astype(np.float32)
    n, k = weight.shape
    bands = []
    for r0 in range(0, n, block_rows):
        band = pruned[r0:r0 + block_rows]
        cols = np.flatnonzero(keep[r0])  # a block's columns are live in every row of the band
        bands.append(PackedMatrix(values=np.ascontiguousarray(band[:, cols]),
                                  select=np.zeros((band.shape[0], cols.size), np.int8),
                                  group_cols=cols.astype(np.int64)[:, None], shape=band.shape))
    packed = RowBlocks(bands)
    before, after = int(np.count_nonzero(weight)), int(np.count_nonzero(pruned))
    packed.nonzeros_before = before
    packed.pattern_stats = {"pattern": f"block:{block_rows}x{block_cols}", "nonzeros_after": after,
                            "pruned_fraction": 1 - after / before if before else 0.0,
                            "live_blocks": int(keep[::block_rows, ::block_cols].sum()),
                            "blocks": int(-(-n // block_rows) * -(-k // block_cols))}
    return packed


PATTERN_KINDS = ("combine", "nm", "block", "unstructured", "dense")


@dataclass(frozen=True)
class Pattern:
    """A sparsity pattern: ``combine``, ``nm`` (``n`` of every ``m``), ``block`` (``block_rows x block_cols``),
    ``unstructured`` or ``dense`` (none). :meth:`parse` reads the text form (``combine``, ``nm:2:4``,
    ``block:32x32``, ``unstructured``, ``dense``)."""

    kind: str
    n: int = 0
    m: int = 0
    block_rows: int = 0
    block_cols: int = 0

    def __post_init__(self):
        if self.kind not in PATTERN_KINDS:
            raise SasimError(f"pattern must be one of combine, nm:N:M, block:RxC, unstructured, dense; got {self.kind!r}",
                             param="pattern")
        if self.kind == "nm":
            check_int("n", self.n, 1)
            check_int("m", self.m, 2)
            if self.n >= self.m:
                raise SasimError(f"an N:M pattern prunes only with n < m, got {self.n}:{self.m}", param="pattern")
        if self.kind == "block":
            check_int("block_rows", self.block_rows, 1)
            check_int("block_cols", self.block_cols, 1)

    @classmethod
    def parse(cls, text: str) -> "Pattern":
        """``combine``, ``nm:N:M``, ``block:RxC`` or ``unstructured`` as a :class:`Pattern`."""
        parts = str(text).strip().lower().split(":")
        try:
            if parts in (["combine"], ["unstructured"], ["dense"]):
                return cls(parts[0])
            if parts[0] == "nm" and len(parts) == 3:
                return cls("nm", n=int(parts[1]), m=int(parts[2]))
            if parts[0] == "block" and len(parts) == 2:
                rows, cols = parts[1].split("x")
                return cls("block", block_rows=int(rows), block_cols=int(cols))
        except ValueError:
            pass
        raise SasimError(f"cannot read the pattern {text!r}: write combine, nm:N:M (e.g. nm:2:4), block:RxC (e.g. "
                         "block:32x32), unstructured or dense", param="pattern")

    @property
    def name(self) -> str:
        if self.kind == "nm":
            return f"nm:{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.block_rows}x{self.block_cols}"
        return self.kind

    @property
    def fixed_density(self) -> float | None:
        """The density the pattern itself sets (``n / m`` for N:M, 1 for dense), or None when a sparsity target
        sets it."""
        return self.n / self.m if self.kind == "nm" else (1.0 if self.kind == "dense" else None)

    def check_fanin(self, mux_fanin: int | None, owner: str = "the hardware's") -> None:
        """Refuse an N:M pattern whose PEs would choose among more lanes (``m``) than the multiplexer has."""
        if self.kind == "nm" and mux_fanin is not None and self.m > mux_fanin:
            raise SasimError(f"the pattern {self.name} makes every PE choose among {self.m} lanes, but {owner} "
                             f"mux_fanin is {mux_fanin}; use m <= {mux_fanin}, or hardware with a wider multiplexer",
                             param="pattern")

    def pack(self, weight, sparsity: float = 0.0, alpha: int = 8, gamma: float = 0.5, **combine_kw):
        """Prune ``weight`` with this pattern and pack it.

        ``sparsity`` is the fraction of weights (``unstructured``) or blocks (``block``) to prune, among all of
        them; N:M sets its own, and ``combine`` prunes only conflicts (prune magnitudes first, as the joint
        optimization does). ``alpha``, ``gamma`` and ``combine_kw`` apply to ``combine``.
        """
        if not 0 <= sparsity < 1:
            raise SasimError(f"sparsity must be in [0, 1), got {sparsity}", param="sparsity")
        if self.kind == "combine":
            return pack_matrix(weight, alpha, gamma, **combine_kw)
        if self.kind == "nm":
            return pack_nm(weight, self.n, self.m)
        if self.kind == "block":
            return pack_block(weight, self.block_rows, self.block_cols, 1 - sparsity)
        packed = pack_unstructured(weight, 1.0 if self.kind == "dense" else 1 - sparsity)
        packed.stats["pattern"] = self.kind
        return packed


def packing_stats(packed) -> dict:
    """What ``sasim combine`` reports of one packed matrix, in any pattern: shape, groups, group-size histogram,
    nonzeros before and after, pruned fraction and packing efficiency (nonzeros over the cells on the array)."""
    sizes = packed.group_sizes
    before = packed.stats.get("nonzeros_before", packed.nonzeros)
    after = packed.nonzeros
    return {"shape": list(packed.shape), "groups": packed.num_groups,
            "group_sizes": {int(s): int((sizes == s).sum()) for s in np.unique(sizes)},
            "nonzeros_before": before, "nonzeros_after": after,
            "pruned_fraction": 1 - after / before if before else 0.0,
            "packing_efficiency": after / packed.cells if packed.cells else 0.0}
