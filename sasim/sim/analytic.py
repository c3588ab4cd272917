"""The analytic model: the cycle-level schedule in closed form, without stepping through cycles.

Every dataflow runs the same schedule (docs/dataflows.md): tile ``i`` loads its stationary operand in
``L_i`` beats (0 in output stationary), then streams ``S`` items (``M`` vectors in weight stationary,
``G`` groups in output stationary, ``N`` weight rows in input stationary) one every ``k_i`` beats; the
last item's last MAC happens ``R + C - 2`` beats after it enters, so a tile is done
``(S - 1) k_i + R + C - 1`` beats after it starts streaming (beats; cycles = beats x cycles per beat).

* ``scalesim`` (no overlap): each tile loads, streams, and is done before the next load starts; the
  edge also needs its ``S k_i`` beats of tile ``i`` before tile ``i + 1`` streams (this only binds when
  ``k_i > R + C - 1 + L_{i+1}``). Tile ``i + 1`` starts
  ``max((S - 1) k_i + R + C - 1 + L_{i+1}, S k_i)`` beats after tile ``i``:
  ``beats = L_0 + sum_{i>=1} max((S - 1) k_{i-1} + R + C - 1 + L_i, S k_{i-1}) + (S - 1) k_last + R + C - 1``.
  With ``k = 1`` this is ``sum_i (L_i + S + R + C - 2)``, SCALE-Sim's folds in all three dataflows.
* ``sasim`` (double buffering): tile ``i``'s stationary operand loads into shadow registers while tile
  ``i - 1`` streams (output stationary: each PE hands its finished sum to an output register), so tile
  ``i`` starts ``max(S k_{i-1}, L_i)`` beats after tile ``i - 1``:
  ``beats = L_0 + sum_{i>=1} max(S k_{i-1}, L_i) + (S - 1) k_last + R + C - 1``.

Useful MACs are the packed nonzeros times ``M``; traffic counts follow from the tile sizes.
"""

from __future__ import annotations

import numpy as np

from sasim.checks import check_events
from sasim.combine.packed import PackedMatrix
from sasim.sim.counts import MatmulCounts
from sasim.sim.mapping import TileMap


def schedule_beats(tm: TileMap, M: int, timing: str, load_beats=None, interval=None) -> int:
    """Total beats of the tile schedule of ``M`` vectors (see the module docstring)."""
    L = tm.load_beats if load_beats is None else load_beats
    k = tm.interval if interval is None else interval
    S = tm.steps_for(M)
    R, C = tm.rows, tm.cols
    # bound the total in float64 first: int64 arithmetic on a huge batch or a tiny bandwidth would wrap silently
    bound = float(np.sum(L, dtype=np.float64)) + float(S) * float(np.sum(k, dtype=np.float64)) * 2 + (R + C) * len(L)
    check_events("cycles (in beats)", min(bound, 2.0**63))
    if timing == "scalesim":
        gaps = np.maximum((S - 1) * k[:-1] + R + C - 1 + L[1:], S * k[:-1])
    else:
        gaps = np.maximum(S * k[:-1], L[1:])
    return int(L[0] + gaps.sum() + (S - 1) * k[-1] + R + C - 1)


def traffic_counts(packed: PackedMatrix, tm: TileMap, M: int) -> dict:
    """Words and cells moved by ``M`` vectors through ``packed`` mapped as ``tm`` (both simulation modes count
    these the same way; the cycle-level kernel counts them event by event)."""
    n, lanes = packed.shape[0], int(packed.group_sizes.sum())
    if tm.dataflow == "weight_stationary":  # lanes per vector per row tile; partial sums per column tile
        return dict(input_words=lanes * tm.row_tiles * M, output_words=n * tm.col_tiles * M,
                    weight_cells=int(tm.tile_cells.sum()), tile_loads=tm.tiles)
    if tm.dataflow == "output_stationary":  # lanes per group per vector per row tile; each sum leaves once
        return dict(input_words=lanes * tm.row_tiles * M, output_words=n * M,
                    weight_cells=int(tm.tile_cells.sum()), tile_loads=0)
    # input stationary: lanes loaded once per vector; partial sums per column tile
    return dict(input_words=lanes * M, output_words=n * tm.col_tiles * M, weight_cells=int(tm.tile_cells.sum()),
                tile_loads=tm.tiles)


def analytic_counts(packed: PackedMatrix, tm: TileMap, M: int, timing: str) -> MatmulCounts:
    """Cycles and event counts of ``M`` vectors through ``packed`` mapped as ``tm``, in closed form."""
    s = tm.cycles_per_beat
    beats = schedule_beats(tm, M, timing)
    ideal = schedule_beats(tm, M, timing, tm.ideal_load_beats, tm.ideal_interval)
    return MatmulCounts(
        cycles=beats * s,
        stall_cycles=(beats - ideal) * s,
        tiles=tm.tiles,
        useful_macs=packed.nonzeros * M,
        mux_macs=packed.mux_nonzeros * M,
        pe_vector_slots=tm.tiles * tm.rows * tm.cols * tm.steps_for(M),
        **traffic_counts(packed, tm, M),
    )
