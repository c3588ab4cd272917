"""Private numba kernel of the cycle-level simulator. Call it only through :mod:`sasim.sim.cycle`.

The kernel steps the array one *beat* at a time (one cycle bit-parallel, ``act_bits`` cycles
bit-serial). Each beat it runs, in order:

1. the issue controller: the next tile starts streaming when its weights are loaded and the
   previous tile has issued all its vectors;
2. the weight loader: ``sasim`` timing loads the next tile into shadow registers as soon as the
   current tile has started (double buffering); ``scalesim`` timing only after the previous tile
   has drained;
3. input injection: every array column whose skewed slot is due takes one input vector, all lanes
   of its group, into the bottom of its delay line (a ring buffer of depth R: a value that entered
   at beat ``t`` is at row ``r`` at beat ``t + r``);
4. the datapath: each active PE picks the lane named by its select index, multiplies by its
   weight, adds the partial sum arriving from its left neighbour and passes it right; a row's
   result leaving column C-1 is added into the output accumulator.

It returns the counts the metrics need; values land in ``out``.
"""

import numpy as np

from sasim.jit import njit

# indices into the counts array
BEATS, USEFUL_MACS, MUX_MACS, INPUT_WORDS, OUTPUT_WORDS, WEIGHT_CELLS, LOADS, OVERFLOWS = range(8)
NUM_COUNTS = 8


@njit
def _fit(v, acc_limit, saturate):
    """``v`` in the accumulator's two's-complement range ``[-acc_limit - 1, acc_limit]``: saturated, or wrapped."""
    if saturate:
        return acc_limit if v > acc_limit else -acc_limit - 1
    span = 2 * (acc_limit + 1)
    return (v + acc_limit + 1) % span - acc_limit - 1


@njit
def _simulate_tiles(values, select, group_cols, lane_counts, nz_prefix, mux_prefix, x, rows_n, R, C, nrt, nct, M,
                    load_beats, interval, tile_cells, overlap, compute_values, out, acc_limit=0, saturate=True):
    ntiles = nrt * nct
    A = group_cols.shape[1]
    single_lane = A == 1
    counts = np.zeros(NUM_COUNTS, dtype=np.int64)
    issue_start = np.full(ntiles, -1, dtype=np.int64)
    load_end = np.full(ntiles, -1, dtype=np.int64)
    retired_at = np.full(ntiles, -1, dtype=np.int64)
    # registers take the inputs' and the accumulator's number types: float32, or int64 holding fixed-point words
    lane_buf = np.zeros((R, C, A), dtype=x.dtype)
    psum = np.zeros((R, C), dtype=out.dtype)
    zero_in = x[0, 0] - x[0, 0]
    zero_acc = out[0, 0] - out[0, 0]
    next_load = 0
    next_issue = 0
    first_live = 0
    loader_free = 0
    t = 0
    while first_live < ntiles:
        # 1. issue controller
        j = next_issue
        if j < next_load and load_end[j] <= t:
            if j == 0 or t >= issue_start[j - 1] + M * interval[j - 1]:
                issue_start[j] = t
                next_issue += 1
        # 2. weight loader
        if next_load < ntiles and t >= loader_free:
            if next_load == 0:
                free = True
            elif overlap:
                free = issue_start[next_load - 1] >= 0  # shadow registers free once the previous tile swapped in
            else:
                free = retired_at[next_load - 1] >= 0 and retired_at[next_load - 1] < t  # previous tile drained
            if free:
                load_end[next_load] = t + load_beats[next_load]
                loader_free = load_end[next_load]
                counts[WEIGHT_CELLS] += tile_cells[next_load]
                counts[LOADS] += 1
                next_load += 1
        # 3. input injection at the bottom of every column
        slot = t % R
        for i in range(first_live, next_issue):
            ct = i % nct
            k = interval[i]
            for c in range(C):
                d = t - issue_start[i] - c
                if d < 0:
                    break
                if k == 1:
                    if d >= M:
                        continue
                    m = d
                else:
                    if d % k != 0 or d // k >= M:
                        continue
                    m = d // k
                g = ct * C + c
                counts[INPUT_WORDS] += lane_counts[g]
                if compute_values:
                    for lane in range(A):
                        col = group_cols[g, lane]
                        lane_buf[slot, c, lane] = x[m, col] if col >= 0 else zero_in
        # 4. datapath, oldest tile first; within a row, columns right to left so that each PE reads
        #    its left neighbour's partial sum of the previous beat before that neighbour overwrites it
        for i in range(first_live, next_issue):
            rt = i // nct
            col0 = (i % nct) * C
            k = interval[i]
            base = t - issue_start[i]
            span = (M - 1) * k
            for r in range(R):
                d = base - r
                if d < 0:
                    break
                c_hi = d if d < C - 1 else C - 1
                c_lo = d - span
                if c_lo < 0:
                    c_lo = 0
                if c_lo > c_hi:
                    continue
                row = rt * R + r
                rslot = slot - r  # the delay-line slot holding what row r sees now: (t - r) mod R
                if rslot < 0:
                    rslot += R
                if k == 1:
                    # every PE in [c_lo, c_hi] is active: count its useful MACs from prefix sums
                    counts[USEFUL_MACS] += nz_prefix[row, col0 + c_hi + 1] - nz_prefix[row, col0 + c_lo]
                    counts[MUX_MACS] += mux_prefix[row, col0 + c_hi + 1] - mux_prefix[row, col0 + c_lo]
                    if compute_values:
                        c = c_hi
                        lo = c_lo if c_lo > 0 else 1
                        if single_lane:  # every group holds one column: the multiplexer always picks lane 0
                            while c >= lo:
                                psum[r, c] = psum[r, c - 1] + values[row, col0 + c] * lane_buf[rslot, c, 0]
                                c -= 1
                        else:
                            while c >= lo:
                                col = col0 + c
                                psum[r, c] = psum[r, c - 1] + values[row, col] * lane_buf[rslot, c, select[row, col]]
                                c -= 1
                        if c_lo == 0:
                            psum[r, 0] = values[row, col0] * lane_buf[rslot, 0, select[row, col0]]
                        if acc_limit > 0:  # fixed point: every partial sum must fit the accumulator
                            for c in range(c_lo, c_hi + 1):
                                if psum[r, c] > acc_limit or psum[r, c] < -acc_limit - 1:
                                    counts[OVERFLOWS] += 1
                                    psum[r, c] = _fit(psum[r, c], acc_limit, saturate)
                else:
                    c_hi -= ((c_hi - d) % k + k) % k  # the highest column with (d - c) divisible by k
                    for c in range(c_hi, c_lo - 1, -k):
                        col = col0 + c
                        if values[row, col] != 0:
                            counts[USEFUL_MACS] += 1
                            if lane_counts[col] > 1:
                                counts[MUX_MACS] += 1
                        if compute_values:
                            acc = psum[r, c - 1] if c > 0 else zero_acc
                            psum[r, c] = acc + values[row, col] * lane_buf[rslot, c, select[row, col]]
                            if acc_limit > 0 and (psum[r, c] > acc_limit or psum[r, c] < -acc_limit - 1):
                                counts[OVERFLOWS] += 1
                                psum[r, c] = _fit(psum[r, c], acc_limit, saturate)
                if c_hi == C - 1 and (k == 1 or (d - c_hi) % k == 0):
                    # a result leaves the right edge into the output accumulator
                    m = (d - c_hi) // k
                    if row < rows_n:
                        counts[OUTPUT_WORDS] += 1
                        if compute_values:
                            out[row, m] += psum[r, C - 1]
                            if acc_limit > 0 and (out[row, m] > acc_limit or out[row, m] < -acc_limit - 1):
                                counts[OVERFLOWS] += 1
                                out[row, m] = _fit(out[row, m], acc_limit, saturate)
                    if r == R - 1 and m == M - 1:
                        retired_at[i] = t
        while first_live < next_issue and retired_at[first_live] >= 0:
            first_live += 1
        t += 1
    counts[BEATS] = t
    return counts
