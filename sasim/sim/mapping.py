"""Mapping a matrix product onto the array in each dataflow: tiles and their per-tile costs.

The product is ``y = x @ W.T`` with ``W`` packed to ``N x G`` (``G`` groups of the ``K`` input columns)
and ``M`` input vectors. Each dataflow keeps one operand in the PEs and streams ``steps`` items
through every tile (docs/dataflows.md):

=================== =================== ================= ================ ===============
dataflow            array row r         array column c    stationary       steps per tile
=================== =================== ================= ================ ===============
weight_stationary   output n            group g           weight w[n, g]   M vectors
output_stationary   output n            vector m          sum y[m, n]      G groups
input_stationary    vector m            group g           lanes x[m, g]    N weight rows
=================== =================== ================= ================ ===============

Tiles are ``R x C`` blocks of that grid, visited row-tile-major (all column tiles of one row tile,
then the next). Per tile ``i``:

* ``load_beats[i]``: beats to load the stationary operand, shifted in from the left edge one column
  per cycle, so at least ``C`` cycles, or ``ceil(bytes / bandwidth)`` when its bytes exceed what the
  path delivers in that time. Weight stationary loads weight cells (value plus select bits) from the
  weight SRAM (or ``min(SRAM, DRAM)`` when the workload's weights do not fit in the weight SRAM);
  input stationary loads every lane of its groups for its vectors from the input SRAM; output
  stationary loads nothing (0). Cycles become beats by ``ceil(/ s)``.
* ``interval[i]``: beats between consecutive streamed items, 1 unless one item's bytes exceed what
  its SRAM delivers in one beat. Weight stationary streams a vector's lane words; output stationary
  streams, per group, a weight cell for every row and the group's lanes for every vector (the widest
  group sets the pace); input stationary streams a weight row's cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sasim.checks import check_events, check_int
from sasim.combine.packed import PackedMatrix, RowBlocks
from sasim.errors import SasimError
from sasim.hw.config import DATAFLOWS, HardwareConfig


@dataclass
class TileMap:
    """The tiles of one matrix product on one array in one dataflow, with their per-tile costs.

    ``tile_cells`` are the weight cells each tile loads (weight stationary) or streams (output and
    input stationary). ``steps`` is what each tile streams (G or N); weight stationary streams the batch,
    so its map serves any batch and :meth:`steps_for` gives it.
    """

    dataflow: str
    rows: int
    cols: int
    row_tiles: int
    col_tiles: int
    steps: int | None
    batch: int | None
    load_beats: np.ndarray
    interval: np.ndarray
    tile_cells: np.ndarray
    ideal_load_beats: np.ndarray
    cycles_per_beat: int
    cell_bytes: float

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.col_tiles

    def steps_for(self, M: int) -> int:
        """Items each tile streams for a batch of ``M``: ``M`` in weight stationary, else ``steps``; a map made
        for another batch is refused (output and input stationary tile over the batch)."""
        if self.steps is None:
            return M
        if M != self.batch:
            raise SasimError(f"this {self.dataflow} tile map was made for a batch of {self.batch}, not {M}")
        return self.steps

    @property
    def ideal_interval(self) -> np.ndarray:
        return np.ones_like(self.interval)

    @property
    def bandwidth_limited(self) -> bool:
        return bool(np.any(self.load_beats != self.ideal_load_beats) or np.any(self.interval != 1))


def weights_fit(hw: HardwareConfig, matrices) -> bool:
    """Whether the packed matrices of a workload fit in the weight SRAM together (then loads come from SRAM)."""
    return sum(m.cells * hw.cell_bytes(m.max_group_size) for m in matrices) <= hw.memory.weight_sram_bytes


def weight_tiles(packed, hw: HardwareConfig) -> int:
    """``R x C`` blocks of the packed ``N x G`` matrix: the array tiles pruning and combining minimize (in
    weight stationary, the tiles the array loads; independent of the batch). Row blocks: the sum of theirs."""
    if isinstance(packed, RowBlocks):
        return sum(weight_tiles(b, hw) for b in packed.blocks)
    return math.ceil(packed.shape[0] / hw.array.rows) * math.ceil(packed.num_groups / hw.array.cols)


def _used(total: int, size: int) -> np.ndarray:
    """Rows (or columns) of the array each tile along one axis occupies: ``size``, and the remainder last."""
    return np.minimum(size, total - np.arange(math.ceil(total / size)) * size).astype(np.int64)


def map_matrix(packed: PackedMatrix, hw: HardwareConfig, weights_resident: bool = True,
               batch: int | None = None) -> TileMap:
    """Cut the product of ``packed`` with ``batch`` vectors into tiles of ``hw``'s array in its dataflow, and
    compute each tile's load time and issue interval.

    Parameters
    ----------
    packed : PackedMatrix, or any matrix with ``shape``, ``num_groups``, ``group_sizes`` and ``max_group_size``
    hw : HardwareConfig
    weights_resident : bool
        Whether the workload's weights fit in the weight SRAM (else weights come at ``min(SRAM, DRAM)``).
    batch : int, optional
        ``M``, the input vectors. Output and input stationary tile over it; weight stationary tiles do not depend
        on it (then it may be omitted).
    """
    flow = hw.array.dataflow
    if flow not in DATAFLOWS:
        raise SasimError(f"dataflow must be one of {', '.join(DATAFLOWS)}, got {flow!r}")
    if batch is None and flow != "weight_stationary":
        raise SasimError(f"the {flow} tiles depend on the batch; give batch", param="batch")
    if batch is not None:
        check_int("batch", batch, 1)
    R, C = hw.array.rows, hw.array.cols
    n, g, M = packed.shape[0], packed.num_groups, batch
    s = hw.cycles_per_beat
    cell_bytes = hw.cell_bytes(packed.max_group_size)
    weight_bw = hw.memory.sram_weight_bw if weights_resident else min(hw.memory.sram_weight_bw, hw.memory.dram_bw)
    input_bw = hw.memory.sram_input_bw
    lanes = np.asarray(packed.group_sizes, dtype=np.int64)
    lane_words = np.add.reduceat(lanes, np.arange(0, g, C)) if g else np.zeros(0, np.int64)  # per column tile of G
    if flow == "weight_stationary":
        rows_used, cols_used, steps = _used(n, R), _used(g, C), None
        cells = (rows_used[:, None] * cols_used[None, :]).ravel()
        load_cycles = np.maximum(C, _ceil_counts("a tile's weight load (cycles)", cells * cell_bytes / weight_bw))
        step_cycles = np.tile(lane_words, len(rows_used)) * hw.act_bytes / input_bw
    elif flow == "output_stationary":
        rows_used, cols_used, steps = _used(n, R), _used(M, C), g
        cells = np.repeat(rows_used * g, len(cols_used))
        load_cycles = np.zeros(cells.size, np.int64)
        widest = int(lanes.max()) if g else 0
        step_cycles = np.maximum((rows_used[:, None] * cell_bytes / weight_bw).repeat(len(cols_used), 1),
                                 cols_used[None, :] * widest * hw.act_bytes / input_bw).ravel()
    else:  # input_stationary
        rows_used, cols_used, steps = _used(M, R), _used(g, C), n
        cells = np.tile(cols_used * n, len(rows_used))
        load_bytes = (rows_used[:, None] * lane_words[None, :]).ravel() * hw.act_bytes
        load_cycles = np.maximum(C, _ceil_counts("a tile's input load (cycles)", load_bytes / input_bw))
        step_cycles = np.tile(cols_used * cell_bytes / weight_bw, len(rows_used))
    interval = np.maximum(1, _ceil_counts("an issue interval (beats)", step_cycles / s))
    load_beats = -(-load_cycles // s)
    ideal = np.zeros_like(load_beats) if flow == "output_stationary" else np.full_like(load_beats, -(-C // s))
    return TileMap(dataflow=flow, rows=R, cols=C, row_tiles=len(rows_used), col_tiles=len(cols_used), steps=steps,
                   batch=None if steps is None else M,
                   load_beats=load_beats, interval=interval, tile_cells=cells.astype(np.int64),
                   ideal_load_beats=ideal, cycles_per_beat=s, cell_bytes=cell_bytes)


def _ceil_counts(what: str, values: np.ndarray) -> np.ndarray:
    """``ceil(values)`` as int64, checked in float64 first so that a tiny bandwidth cannot wrap the cast."""
    ceiled = np.ceil(values - 1e-9)
    if ceiled.size:
        check_events(what, min(float(ceiled.max()), 2.0**63))
    return ceiled.astype(np.int64)


# Memory estimates, made before anything is allocated (sasim.checks.check_memory compares them with what is free).

def cycle_memory_bytes(shape, tm: TileMap, M: int, held_words: int = 0) -> int:
    """Bytes the cycle-level run of an ``N x K`` matrix mapped as ``tm`` allocates, at most: the padded weights,
    select indices and nonzero prefix sums (21 bytes a cell), the inputs and the outputs (8 bytes a word), and
    ``held_words`` more words (the dataflow's own copies of the inputs' lanes, which its caller sizes)."""
    n, k = shape
    cells = (n + tm.rows) * (k + tm.cols + 1)
    return 21 * cells + 8 * (M + tm.rows + tm.cols) * (n + k + tm.rows) + 8 * held_words


def weights_memory_bytes(shapes) -> int:
    """Bytes of materializing float32 weight matrices of these ``(N, K)`` shapes and packing them: the weights,
    a random mask or packing's working copy, and the packed values (12 bytes a weight)."""
    return 12 * sum(int(n) * int(k) for n, k in shapes)
