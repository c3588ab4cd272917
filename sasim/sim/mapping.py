"""Mapping a packed matrix onto the array: tiles and their per-tile costs.

Tiles are ``R x C`` blocks of the packed matrix, visited row-tile-major (all column tiles of one
row tile, then the next), so the output accumulator holds one row tile's ``R x M`` partial sums.
Per tile ``i``:

* ``load_beats[i]``: beats to load its weights. Weights shift in from the left edge, one column
  per cycle, so a load takes at least ``C`` cycles; when the tile's bytes (value plus select bits of
  every used cell) exceed what the weight path delivers in that time, the load takes
  ``ceil(bytes / bandwidth)`` cycles. The bandwidth is the weight SRAM's, or ``min(SRAM, DRAM)`` when
  the workload's weights do not fit in the weight SRAM. Cycles become beats by ``ceil(/ s)``.
* ``interval[i]``: beats between consecutive input vectors, 1 unless one vector's lane words (all
  lanes of all the tile's groups) exceed the input SRAM bandwidth of one beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sasim.checks import check_events
from sasim.combine.packed import PackedMatrix
from sasim.hw.config import HardwareConfig


@dataclass
class TileMap:
    """The tiles of one packed matrix on one array, with their per-tile costs."""

    rows: int
    cols: int
    row_tiles: int
    col_tiles: int
    load_beats: np.ndarray
    interval: np.ndarray
    tile_cells: np.ndarray
    tile_lane_words: np.ndarray
    ideal_load_beats: np.ndarray
    cycles_per_beat: int
    cell_bytes: float

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.col_tiles

    @property
    def bandwidth_limited(self) -> bool:
        return bool(np.any(self.load_beats != self.ideal_load_beats) or np.any(self.interval != 1))


def weights_fit(hw: HardwareConfig, matrices) -> bool:
    """Whether the packed matrices of a workload fit in the weight SRAM together (then loads come from SRAM)."""
    return sum(m.cells * hw.cell_bytes(m.max_group_size) for m in matrices) <= hw.memory.weight_sram_bytes


def map_matrix(packed: PackedMatrix, hw: HardwareConfig, weights_resident: bool = True) -> TileMap:
    """Cut ``packed`` into tiles of ``hw``'s array and compute each tile's load time and issue interval."""
    R, C = hw.array.rows, hw.array.cols
    n, g = packed.shape[0], packed.num_groups
    nrt, nct = math.ceil(n / R), math.ceil(g / C)
    s = hw.cycles_per_beat
    cell_bytes = hw.cell_bytes(packed.max_group_size)
    used_rows = np.minimum(R, n - np.arange(nrt) * R)
    used_cols = np.minimum(C, g - np.arange(nct) * C)
    tile_cells = (used_rows[:, None] * used_cols[None, :]).ravel().astype(np.int64)
    bw = hw.memory.sram_weight_bw if weights_resident else min(hw.memory.sram_weight_bw, hw.memory.dram_bw)
    lanes = packed.group_sizes
    lane_words_per_coltile = np.add.reduceat(lanes, np.arange(0, g, C)) if g else np.zeros(0, np.int64)
    tile_lane_words = np.tile(lane_words_per_coltile, nrt).astype(np.int64)
    load_cycles = _ceil_counts("a tile's weight load (cycles)", tile_cells * cell_bytes / bw)
    interval = _ceil_counts("an input vector's issue interval (beats)",
                            tile_lane_words * hw.act_bytes / (hw.memory.sram_input_bw * s))
    load_cycles = np.maximum(C, load_cycles)
    load_beats = -(-load_cycles // s)
    ideal_load_beats = np.full_like(load_beats, -(-C // s))
    interval = np.maximum(1, interval)
    return TileMap(rows=R, cols=C, row_tiles=nrt, col_tiles=nct, load_beats=load_beats, interval=interval,
                   tile_cells=tile_cells, tile_lane_words=tile_lane_words, ideal_load_beats=ideal_load_beats,
                   cycles_per_beat=s, cell_bytes=cell_bytes)


def _ceil_counts(what: str, values: np.ndarray) -> np.ndarray:
    """``ceil(values)`` as int64, checked in float64 first so that a tiny bandwidth cannot wrap the cast."""
    ceiled = np.ceil(values - 1e-9)
    if ceiled.size:
        check_events(what, min(float(ceiled.max()), 2.0**63))
    return ceiled.astype(np.int64)


# Memory estimates, made before anything is allocated (sasim.checks.check_memory compares them with what is free).

def cycle_memory_bytes(shape, tm: TileMap, M: int) -> int:
    """Bytes the cycle-level run of an ``N x K`` matrix mapped as ``tm`` allocates: the padded weights, select
    indices and nonzero prefix sums (21 bytes a cell), the inputs and the outputs (8 bytes a word at most)."""
    cells = tm.row_tiles * tm.rows * (tm.col_tiles * tm.cols + 1)
    return 21 * cells + 8 * M * (shape[0] + shape[1] + tm.row_tiles * tm.rows)


def weights_memory_bytes(shapes) -> int:
    """Bytes of materializing float32 weight matrices of these ``(N, K)`` shapes and packing them: the weights,
    a random mask or packing's working copy, and the packed values (12 bytes a weight)."""
    return 12 * sum(int(n) * int(k) for n, k in shapes)
