"""One matrix product on the array, in either simulation mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sasim.checks import check_int
from sasim.combine.packed import DenseShape, PackedMatrix, RowBlocks
from sasim.errors import SasimError
from sasim.hw.config import HardwareConfig
from sasim.sim.analytic import analytic_counts
from sasim.sim.counts import MatmulCounts
from sasim.sim.cycle import TIMINGS, simulate_cycles
from sasim.sim.mapping import TileMap, map_matrix

MODES = ("cycle", "analytic")


@dataclass
class MatmulResult:
    """Outputs (cycle mode only, ``(M, N)``), counts and the mapping of one matrix product."""

    y: np.ndarray | None
    counts: MatmulCounts
    tilemap: TileMap


def check_mode(mode: str, timing: str) -> None:
    if mode not in MODES:
        raise SasimError(f"mode must be one of {', '.join(MODES)}, got {mode!r}", param="mode")
    if timing not in TIMINGS:
        raise SasimError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}", param="timing")


def map_any(packed, hw: HardwareConfig, weights_resident: bool = True, batch: int | None = None):
    """:func:`map_matrix` of a packed matrix, or the list of its row blocks' maps."""
    if isinstance(packed, RowBlocks):
        return [map_matrix(b, hw, weights_resident, batch) for b in packed.blocks]
    return map_matrix(packed, hw, weights_resident, batch)


def simulate_matmul(packed: PackedMatrix | RowBlocks | DenseShape, x: np.ndarray | None, hw: HardwareConfig, M: int,
                    timing: str = "sasim", mode: str = "cycle", weights_resident: bool = True,
                    tilemap: TileMap | None = None) -> MatmulResult:
    """Simulate ``y = x @ W.T`` for the packed ``W`` on ``hw`` (row blocks run one after another).

    Parameters
    ----------
    packed : PackedMatrix
        Weights (dense matrices: :meth:`PackedMatrix.from_dense`).
    x : np.ndarray or None
        ``(M, K)`` inputs; needed in cycle mode, ignored in analytic mode.
    hw : HardwareConfig
    M : int
        Input vectors streamed through each tile.
    timing : {"sasim", "scalesim"}
    mode : {"cycle", "analytic"}
        Cycle-level simulation with real values, or the closed-form model (no values).
    weights_resident : bool
        Whether the workload's weights fit in the weight SRAM (else loads are DRAM-bound).
    """
    check_mode(mode, timing)
    check_int("M (the batch)", M, 1)
    if isinstance(packed, RowBlocks):
        maps = tilemap or [None] * len(packed.blocks)
        results = [simulate_matmul(b, x, hw, M, timing, mode, weights_resident, tm) for b, tm in zip(packed.blocks, maps)]
        counts = results[0].counts
        for r in results[1:]:
            counts = counts + r.counts
        y = None if results[0].y is None else np.concatenate([r.y for r in results], axis=1)
        return MatmulResult(y=y, counts=counts, tilemap=[r.tilemap for r in results])
    if packed.max_group_size > hw.array.mux_fanin:
        raise SasimError(f"groups of up to {packed.max_group_size} columns need mux_fanin >= "
                         f"{packed.max_group_size}, but {hw.name} has {hw.array.mux_fanin}; pack with alpha <= "
                         f"{hw.array.mux_fanin} or use hardware with a wider multiplexer")
    tm = tilemap or map_matrix(packed, hw, weights_resident, M)
    if packed.num_groups == 0:  # a row block with no live column (block pruning): skipped, its outputs are zeros
        y = np.zeros((M, packed.shape[0]), np.float32) if mode == "cycle" and x is not None else None
        return MatmulResult(y=y, counts=MatmulCounts(*[0] * len(MatmulCounts.__dataclass_fields__)), tilemap=tm)
    if mode == "cycle" and not hasattr(packed, "values"):
        raise SasimError(f"the cycle-level mode needs the weights of the {packed.shape[0]} x {packed.shape[1]} matrix; "
                         "use --mode analytic, or a workload small enough to materialize")
    if mode == "cycle":
        y, counts = simulate_cycles(packed, x, tm, M, timing, compute_values=x is not None)
    else:
        y, counts = None, analytic_counts(packed, tm, M, timing)
    return MatmulResult(y=y, counts=counts, tilemap=tm)
