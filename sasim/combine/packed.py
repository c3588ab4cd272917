"""The packed form of a weight matrix (docs/contract.md section 1).

A packed ``N x K`` matrix with ``G`` groups is ``values (N x G)``, ``select (N x G)`` and the groups:
``group_cols (G x A)`` lists each group's column indices (``-1`` pads groups shorter than the widest,
``A``). Cell ``(n, g)`` multiplies input ``x[group_cols[g, select[n, g]]]``. A dense matrix is the
case of one column per group. A column may appear in several groups (the ``spill`` rule moves
conflicting weights into further groups), so unpacking sums the cells that name the same column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sasim.errors import SasimError


@dataclass
class PackedMatrix:
    """A column-combined matrix. See the module docstring for the layout.

    Attributes
    ----------
    values : np.ndarray, float32, (N, G)
    select : np.ndarray, int8/int16, (N, G)
    group_cols : np.ndarray, int64, (G, A)
    shape : tuple of int
        ``(N, K)`` of the original matrix.
    stats : dict
        Packing statistics (``nonzeros_before``, ``pruned_fraction`` ...), empty for dense.
    """

    values: np.ndarray
    select: np.ndarray
    group_cols: np.ndarray
    shape: tuple
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        n, k = self.shape
        if self.values.ndim != 2 or self.values.shape[0] != n:
            raise SasimError(f"packed values have shape {self.values.shape}, expected ({n}, groups)")
        if self.select.shape != self.values.shape:
            raise SasimError("packed select indices must have the shape of the values")
        if self.group_cols.ndim != 2 or self.group_cols.shape[0] != self.values.shape[1]:
            raise SasimError("group_cols must have one row per group")
        if self.group_cols.size and (self.group_cols.max() >= k or self.group_cols.min() < -1):
            raise SasimError(f"group_cols names a column outside 0..{k - 1}")
        sizes = self.group_sizes
        if self.select.size and (self.select.min() < 0 or np.any(self.select >= np.maximum(sizes, 1)[None, :])):
            raise SasimError("a select index points past the end of its group")

    @property
    def num_groups(self) -> int:
        return self.values.shape[1]

    @property
    def group_sizes(self) -> np.ndarray:
        return (self.group_cols >= 0).sum(axis=1).astype(np.int64)

    @property
    def max_group_size(self) -> int:
        return int(self.group_sizes.max()) if self.num_groups else 0

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.values))

    @property
    def cells(self) -> int:
        """``N * G``: PE cells the packed matrix occupies."""
        return int(self.values.size)

    @property
    def mux_nonzeros(self) -> int:
        """Nonzero cells in groups of more than one column (their PEs use the multiplexer)."""
        return int(np.count_nonzero(self.values[:, self.group_sizes > 1]))

    def groups(self) -> list[list[int]]:
        """Each group's column indices, as lists."""
        return [[int(c) for c in row if c >= 0] for row in self.group_cols]

    def selected_columns(self) -> np.ndarray:
        """``(N, G)``: the input column each cell multiplies."""
        g = np.arange(self.num_groups)[None, :]
        return self.group_cols[g, self.select.astype(np.int64)]

    def unpack(self) -> np.ndarray:
        """The dense ``N x K`` matrix this packed form computes (exactly the pruned matrix)."""
        n, k = self.shape
        dense = np.zeros((n, k), dtype=self.values.dtype)
        rows = np.broadcast_to(np.arange(n)[:, None], self.values.shape)
        cols = self.selected_columns()
        nz = self.values != 0
        np.add.at(dense, (rows[nz], cols[nz]), self.values[nz])
        return dense

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """``x @ unpack().T`` computed from the packed cells: ``x`` is ``(M, K)``, result ``(M, N)``."""
        lanes = x[:, self.selected_columns()]  # (M, N, G)
        return np.einsum("mng,ng->mn", lanes, self.values)

    @classmethod
    def from_dense(cls, weight: np.ndarray) -> "PackedMatrix":
        """The trivial packing: one column per group, select index 0 everywhere."""
        w = validate_matrix(weight, "weight")
        n, k = w.shape
        return cls(values=w.copy(), select=np.zeros((n, k), dtype=np.int8),
                   group_cols=np.arange(k, dtype=np.int64)[:, None], shape=(n, k))


def validate_matrix(weight, name: str = "weight") -> np.ndarray:
    """Check a weight matrix (2-D, non-empty, finite) and return it as C-contiguous float32."""
    w = np.asarray(weight)
    if w.ndim != 2:
        raise SasimError(f"{name} must be a 2-D matrix, got shape {w.shape}")
    if w.shape[0] == 0 or w.shape[1] == 0:
        raise SasimError(f"{name} has an empty dimension (shape {w.shape})")
    if not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.complexfloating):
        raise SasimError(f"{name} must be real numbers, got dtype {w.dtype}"
                         + ("; the imaginary part would be lost" if np.iscomplexobj(w) else ""))
    w = np.ascontiguousarray(w, dtype=np.float32)
    if not np.isfinite(w).all():
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise SasimError(f"{name} holds {bad} NaN or Inf values; repair or retrain the checkpoint before simulating")
    return w


@dataclass
class RowBlocks:
    """A matrix packed in row blocks, each with groups of its own (e.g. one block per LSTM gate).

    The blocks run on the array one after another as separate matrix products; their outputs
    stack in block order.
    """

    blocks: list
    nonzeros_before: int | None = None  # of the matrix before pruning (None: the blocks' own stats say)
    pattern_stats: dict = field(default_factory=dict)  # what the pattern that made the blocks records

    @property
    def shape(self) -> tuple:
        return (sum(b.shape[0] for b in self.blocks), self.blocks[0].shape[1])

    @property
    def num_groups(self) -> int:
        return sum(b.num_groups for b in self.blocks)

    @property
    def cells(self) -> int:
        return sum(b.cells for b in self.blocks)

    @property
    def nonzeros(self) -> int:
        return sum(b.nonzeros for b in self.blocks)

    @property
    def max_group_size(self) -> int:
        return max(b.max_group_size for b in self.blocks)

    @property
    def group_sizes(self) -> np.ndarray:
        """Every block's group sizes, in block order."""
        return np.concatenate([b.group_sizes for b in self.blocks])

    @property
    def mux_nonzeros(self) -> int:
        return sum(b.mux_nonzeros for b in self.blocks)

    @property
    def stats(self) -> dict:
        before = self.nonzeros_before
        if before is None:
            before = sum(b.stats.get("nonzeros_before", b.nonzeros) for b in self.blocks)
        return {**self.pattern_stats, "nonzeros_before": before, "nonzeros_after": self.nonzeros,
                "groups": self.num_groups, "row_blocks": len(self.blocks)}

    @stats.setter
    def stats(self, value: dict) -> None:
        """Keep what a stored checkpoint says of the matrix before pruning (as :class:`PackedMatrix` does)."""
        value = dict(value)
        self.nonzeros_before = value.pop("nonzeros_before", self.nonzeros_before)
        self.pattern_stats = {k: v for k, v in value.items() if k not in ("nonzeros_after", "groups", "row_blocks")}

    @property
    def row_starts(self) -> list[int]:
        """The first row of each block in the stacked matrix."""
        return [int(s) for s in np.cumsum([0] + [b.shape[0] for b in self.blocks[:-1]])]

    def unpack(self) -> np.ndarray:
        return np.concatenate([b.unpack() for b in self.blocks], axis=0)

    def matmul(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([b.matmul(x) for b in self.blocks], axis=1)


@dataclass
class DenseShape:
    """A fully dense ``N x K`` matrix known by its shape alone (no values): the analytic model's view
    of a matrix too large to materialize, such as a 793,471-word softmax."""

    shape: tuple
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        n, k = self.shape
        if n <= 0 or k <= 0:
            raise SasimError(f"matrix shape must be positive, got {self.shape}")

    @property
    def num_groups(self) -> int:
        return self.shape[1]

    @property
    def group_sizes(self) -> np.ndarray:
        return np.ones(self.shape[1], dtype=np.int64)

    @property
    def max_group_size(self) -> int:
        return 1

    @property
    def nonzeros(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def cells(self) -> int:
        return self.nonzeros

    @property
    def mux_nonzeros(self) -> int:
        return 0


@dataclass
class LayerPacking:
    """The packed matrices of one LSTM layer: ``[W_ih | W_hh]`` (the gates) and, with a projection, ``W_hr``.

    The one packed form of a layer everywhere in sasim: packing, joint pruning, fine-tuning, quantization,
    checkpoints and both simulators.
    """

    gates: PackedMatrix | RowBlocks
    projection: PackedMatrix | None = None

    def matrices(self) -> list[tuple[str, PackedMatrix | RowBlocks]]:
        """``[("gates", gates)]``, plus ``("proj", projection)`` with a projection: each packed matrix with the
        key that names it in checkpoints and reports."""
        return [("gates", self.gates)] + ([("proj", self.projection)] if self.projection is not None else [])
