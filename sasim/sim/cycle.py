"""The cycle-level simulator's public entry point: validates inputs, runs the private kernel."""

from __future__ import annotations

import numpy as np

from sasim.checks import check_memory
from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.sim import _cycle_kernel as K
from sasim.sim.analytic import schedule_beats
from sasim.sim.counts import MatmulCounts
from sasim.sim.mapping import TileMap, cycle_memory_bytes

TIMINGS = ("sasim", "scalesim")


def _padded(packed: PackedMatrix, tm: TileMap):
    R, C = tm.rows, tm.cols
    n, g = packed.values.shape
    npad, gpad = tm.row_tiles * R, tm.col_tiles * C
    integer = np.issubdtype(packed.values.dtype, np.integer)
    values = np.zeros((npad, gpad), dtype=np.int64 if integer else np.float32)
    values[:n, :g] = packed.values
    select = np.zeros((npad, gpad), dtype=np.int16 if packed.group_cols.shape[1] > 127 else np.int8)
    select[:n, :g] = packed.select
    group_cols = np.full((gpad, max(packed.group_cols.shape[1], 1)), -1, dtype=np.int64)
    group_cols[:g] = packed.group_cols
    lanes = np.zeros(gpad, dtype=np.int64)
    lanes[:g] = packed.group_sizes
    # per-row prefix sums of nonzero cells (and of nonzero cells behind a multiplexer), so that the
    # kernel counts the useful MACs of a run of active PEs in O(1)
    # (summed as int8 views of the boolean masks: numpy's bool-to-int64 cumsum is about 8x slower)
    nz = values != 0
    nz_prefix = np.zeros((npad, gpad + 1), dtype=np.int64)
    np.cumsum(nz.view(np.int8), axis=1, out=nz_prefix[:, 1:])
    mux_prefix = np.zeros((npad, gpad + 1), dtype=np.int64)
    np.cumsum((nz & (lanes > 1)[None, :]).view(np.int8), axis=1, out=mux_prefix[:, 1:])
    return values, select, group_cols, lanes, nz_prefix, mux_prefix


def simulate_cycles(packed: PackedMatrix, x: np.ndarray | None, tm: TileMap, M: int, timing: str = "sasim",
                    compute_values: bool = True) -> tuple[np.ndarray | None, MatmulCounts]:
    """Simulate ``M`` input vectors through ``packed`` on the array, cycle by cycle.

    Parameters
    ----------
    packed : PackedMatrix
        The weights, ``N x K`` packed into ``G`` groups.
    x : np.ndarray or None
        Inputs ``(M, K)``; ``None`` with ``compute_values=False`` for timing only.
    tm : TileMap
        The mapping from :func:`sasim.sim.mapping.map_matrix`.
    M : int
        Input vectors (independent streams).
    timing : {"sasim", "scalesim"}
        Double-buffered weight loading, or no overlap between tiles (SCALE-Sim's model).
    compute_values : bool
        Compute real output values (otherwise only cycles and counts).

    Returns
    -------
    y : np.ndarray or None
        Outputs ``(M, N)`` float32, as the array's accumulator holds them.
    counts : MatmulCounts
    """
    if compute_values and x is None:
        raise SasimError("compute_values needs the inputs x")
    x = np.ascontiguousarray(x, dtype=np.float32) if compute_values else None
    _check_run(packed, x, M, timing)
    _check_steppable(packed, tm, M, timing)
    if compute_values:
        if not np.isfinite(x).all():
            raise SasimError("inputs hold NaN or Inf values")
    else:
        x = np.zeros((1, 1), dtype=np.float32)
    y, counts, _ = _run(packed, x, np.float32, tm, M, timing, compute_values)
    return y, counts


def _check_run(packed: PackedMatrix, x: np.ndarray | None, M: int, timing: str) -> None:
    """The checks both public entry points make: a known timing, a positive batch, ``(M, K)`` inputs."""
    if timing not in TIMINGS:
        raise SasimError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
    if M <= 0:
        raise SasimError(f"the batch M must be positive, got {M}")
    k = packed.shape[1]
    if x is not None and x.shape != (M, k):
        raise SasimError(f"inputs have shape {x.shape}, expected ({M}, {k})")


#: The most beats a cycle-level run may step (each beat is a pass over the array's PEs).
MAX_CYCLE_BEATS = 2_000_000_000


def _check_steppable(packed: PackedMatrix, tm: TileMap, M: int, timing: str) -> None:
    """Refuse, before stepping or allocating, a cycle-level run that would step too many beats or need more
    memory than is available; the analytic mode gives the same counts without either."""
    beats = schedule_beats(tm, M, timing)
    if beats > MAX_CYCLE_BEATS:
        raise SasimError(f"a cycle-level run would step {beats:,} beats (more than {MAX_CYCLE_BEATS:,}); use "
                         "--mode analytic, which gives the same counts in closed form")
    lanes = max(packed.group_cols.shape[1], 1)
    if tm.dataflow == "input_stationary":  # the lanes the PEs hold
        held_words = M * packed.num_groups * lanes
    elif tm.dataflow == "weight_stationary":  # the lanes and their skewed copy
        held_words = (2 * M + tm.cols) * tm.col_tiles * tm.cols * lanes
    else:
        held_words = 0
    check_memory(cycle_memory_bytes(packed.shape, tm, M, held_words), "the cycle-level run",
                 "use --mode analytic, which needs no per-PE arrays, or a smaller batch")


def _run(packed: PackedMatrix, x: np.ndarray, out_dtype, tm: TileMap, M: int, timing: str, compute_values: bool,
         acc_limit: int = 0, saturate: bool = True) -> tuple[np.ndarray | None, MatmulCounts, int]:
    """Run the dataflow's kernel (and, under bandwidth limits, the same schedule at unlimited bandwidth for the
    stalls), and turn its raw counts into :class:`MatmulCounts`. Inputs are already validated."""
    n = packed.shape[0]
    overlap = timing == "sasim"
    if tm.dataflow == "weight_stationary":
        values, select, group_cols, lanes, nz_prefix, mux_prefix = _padded(packed, tm)
        out = np.zeros((values.shape[0], M if compute_values else 1), dtype=out_dtype)
        lane_prefix = np.concatenate(([0], np.cumsum(lanes)))
        lanes_per_group = group_cols.shape[1]
        skewed = (_skewed_lanes(_held_lanes(x, group_cols), tm.cols) if compute_values
                  else np.zeros((1, lanes.size * lanes_per_group), x.dtype))
        args = (values, select, lanes, lane_prefix, nz_prefix, mux_prefix, skewed, n, tm.rows, tm.cols, tm.row_tiles,
                tm.col_tiles, M)

        def kernel(load_beats, interval, values_on, out):
            return K._simulate_tiles(*args, load_beats, interval, tm.tile_cells, overlap, values_on, out, acc_limit,
                                     saturate)
    else:
        values, select, group_cols, lanes = _unpadded(packed)
        out = np.zeros((n, M) if compute_values else (1, 1), dtype=out_dtype)
        args = (values, select, group_cols, lanes, x, tm.rows, tm.cols, tm.row_tiles, tm.col_tiles, M)
        if tm.dataflow == "input_stationary":
            load_words = np.outer(np.minimum(tm.rows, M - np.arange(tm.row_tiles) * tm.rows),
                                  np.add.reduceat(lanes, np.arange(0, lanes.size, tm.cols))).ravel()
            held = _held_lanes(x, group_cols) if compute_values else np.zeros((1, 1, 1), dtype=x.dtype)
            is_args = (values, select, lanes, held) + args[5:]

            def kernel(load_beats, interval, values_on, out):
                return K._simulate_is_tiles(*is_args, load_beats, interval, load_words, overlap, values_on, out,
                                            acc_limit, saturate)
        else:
            def kernel(load_beats, interval, values_on, out):
                return K._simulate_os_tiles(*args, load_beats, interval, overlap, values_on, out, acc_limit, saturate)
    raw = kernel(tm.load_beats, tm.interval, compute_values, out)
    beats = int(raw[K.BEATS])
    stall_beats = 0
    if tm.bandwidth_limited:
        ideal = kernel(tm.ideal_load_beats, tm.ideal_interval, False, np.zeros((1, 1), out_dtype))
        stall_beats = beats - int(ideal[K.BEATS])
    s = tm.cycles_per_beat
    counts = MatmulCounts(
        cycles=beats * s, stall_cycles=stall_beats * s, tiles=tm.tiles,
        useful_macs=int(raw[K.USEFUL_MACS]), mux_macs=int(raw[K.MUX_MACS]),
        pe_vector_slots=tm.tiles * tm.rows * tm.cols * tm.steps_for(M), input_words=int(raw[K.INPUT_WORDS]),
        output_words=int(raw[K.OUTPUT_WORDS]), weight_cells=int(raw[K.WEIGHT_CELLS]),
        tile_loads=int(raw[K.LOADS]),
    )
    if not compute_values:
        return None, counts, int(raw[K.OVERFLOWS])
    y = out[:n].T.copy()
    return y, counts, int(raw[K.OVERFLOWS])


def _unpadded(packed: PackedMatrix):
    """The packed matrix as the output- and input-stationary kernels read it (they check bounds themselves)."""
    integer = np.issubdtype(packed.values.dtype, np.integer)
    values = np.ascontiguousarray(packed.values, dtype=np.int64 if integer else np.float32)
    select = np.ascontiguousarray(packed.select, dtype=np.int64)
    g = packed.num_groups
    group_cols = np.full((g, max(packed.group_cols.shape[1], 1)), -1, dtype=np.int64)
    group_cols[:, :packed.group_cols.shape[1]] = packed.group_cols
    return values, select, group_cols, np.ascontiguousarray(packed.group_sizes, dtype=np.int64)


def _held_lanes(x: np.ndarray, group_cols: np.ndarray) -> np.ndarray:
    """Every input's lanes, ``(M, G, lanes)``: input ``m``'s value of group ``g``'s lane (zero for an empty lane),
    gathered once instead of through the group's columns at every MAC. Input-stationary PEs hold these; the
    weight-stationary kernel reads them skewed (:func:`_skewed_lanes`)."""
    held = x[:, np.maximum(group_cols, 0)]
    held[:, group_cols < 0] = 0
    return held


def _skewed_lanes(held: np.ndarray, C: int) -> np.ndarray:
    """``held`` ``(M, G, A)`` skewed for the weight-stationary kernel, ``(M + C, G * A)``:
    ``skewed[m + g % C, g * A + lane] = held[m, g, lane]``, so that the vectors a row of PEs sees in one beat
    (vector ``d - c`` at column ``c``) lie along ``skewed[d]``."""
    M, G, A = held.shape
    skewed = np.zeros((M + C, G, A), dtype=held.dtype)
    for c in range(min(C, G)):
        skewed[c:c + M, c::C] = held[:, c::C]
    return skewed.reshape(M + C, G * A)


def simulate_fixed_point(packed: PackedMatrix, x: np.ndarray, tm: TileMap, M: int, acc_bits: int,
                         timing: str = "sasim", saturate: bool = True) -> tuple[np.ndarray, MatmulCounts, int]:
    """The cycle-level simulator on integer (fixed-point) words, bit-exact.

    ``packed.values`` and ``x`` hold integers (quantized weights and activations). Products are exact;
    every partial sum a PE passes on, and every output-accumulator update, must fit in ``acc_bits``
    two's-complement bits: values outside are counted as overflows and saturated (``saturate``) or
    wrapped.

    Returns
    -------
    y : np.ndarray, int64, (M, N)
    counts : MatmulCounts
    overflows : int
        Partial sums and accumulator updates that did not fit.
    """
    if not np.issubdtype(packed.values.dtype, np.integer):
        raise SasimError("fixed-point simulation needs integer weights (quantize them first)")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise SasimError("fixed-point simulation needs integer inputs (quantize them first)")
    if not 2 <= acc_bits <= 62:
        raise SasimError(f"acc_bits must be in 2..62 for the integer simulator, got {acc_bits}")
    _check_run(packed, x, M, timing)
    _check_steppable(packed, tm, M, timing)
    x = np.ascontiguousarray(x, dtype=np.int64)
    return _run(packed, x, np.int64, tm, M, timing, True, (1 << (acc_bits - 1)) - 1, saturate)
