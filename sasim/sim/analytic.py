"""The analytic model: the cycle-level schedule in closed form, without stepping through cycles.

With per-tile load beats ``L_i``, issue intervals ``k_i``, ``M`` vectors and an ``R x C`` array (beats;
cycles = beats x cycles per beat):

* ``scalesim`` (no overlap): each tile loads, streams, and drains before the next load starts; the
  input port also needs its ``M k_i`` beats of tile ``i`` before tile ``i + 1`` streams (this only
  binds when ``k_i > R + C - 1 + L_{i+1}``). Tile ``i + 1`` starts
  ``max((M - 1) k_i + R + C - 1 + L_{i+1}, M k_i)`` beats after tile ``i``:
  ``beats = L_0 + sum_{i>=1} max((M - 1) k_{i-1} + R + C - 1 + L_i, M k_{i-1}) + (M - 1) k_last + R + C - 1``.
  With ``k = 1`` this is ``sum_i (L_i + M + R + C - 2)``, SCALE-Sim's weight-stationary folds.
* ``sasim`` (double-buffered weights): tile ``i``'s weights load into shadow registers while tile
  ``i - 1`` streams, so tile ``i`` starts ``max(M k_{i-1}, L_i)`` beats after tile ``i - 1``:
  ``beats = L_0 + sum_{i>=1} max(M k_{i-1}, L_i) + (M - 1) k_last + R + C - 1``.

Useful MACs are the packed nonzeros times ``M``; traffic counts follow from the tile sizes.
"""

from __future__ import annotations

import numpy as np

from sasim.checks import check_events
from sasim.combine.packed import PackedMatrix
from sasim.sim.counts import MatmulCounts
from sasim.sim.mapping import TileMap


def schedule_beats(tm: TileMap, M: int, timing: str, load_beats=None, interval=None) -> int:
    """Total beats of the tile schedule (see the module docstring)."""
    L = tm.load_beats if load_beats is None else load_beats
    k = tm.interval if interval is None else interval
    R, C = tm.rows, tm.cols
    # bound the total in float64 first: int64 arithmetic on a huge batch or a tiny bandwidth would wrap silently
    bound = float(np.sum(L, dtype=np.float64)) + float(M) * float(np.sum(k, dtype=np.float64)) * 2 + (R + C) * len(L)
    check_events("cycles (in beats)", min(bound, 2.0**63))
    if timing == "scalesim":
        gaps = np.maximum((M - 1) * k[:-1] + R + C - 1 + L[1:], M * k[:-1])
    else:
        gaps = np.maximum(M * k[:-1], L[1:])
    return int(L[0] + gaps.sum() + (M - 1) * k[-1] + R + C - 1)


def analytic_counts(packed: PackedMatrix, tm: TileMap, M: int, timing: str) -> MatmulCounts:
    """Cycles and event counts of ``M`` vectors through ``packed`` mapped as ``tm``, in closed form."""
    s = tm.cycles_per_beat
    beats = schedule_beats(tm, M, timing)
    ideal = schedule_beats(tm, M, timing, tm.ideal_load_beats, np.ones_like(tm.interval))
    mux = packed.mux_nonzeros
    return MatmulCounts(
        cycles=beats * s,
        stall_cycles=(beats - ideal) * s,
        tiles=tm.tiles,
        useful_macs=packed.nonzeros * M,
        mux_macs=mux * M,
        pe_vector_slots=tm.tiles * tm.rows * tm.cols * M,
        input_words=int(packed.group_sizes.sum()) * tm.row_tiles * M,
        output_words=packed.shape[0] * tm.col_tiles * M,
        weight_cells=int(tm.tile_cells.sum()),
        weight_loads=tm.tiles,
    )
