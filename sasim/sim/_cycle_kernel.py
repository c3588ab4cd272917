"""Private numba kernels of the cycle-level simulator. Call them only through :mod:`sasim.sim.cycle`.

One kernel per dataflow (docs/dataflows.md). Each steps the array one *beat* at a time (one cycle
bit-parallel, ``act_bits`` cycles bit-serial) and runs, every beat, in order:

1. the issue controller: the next tile starts streaming when its stationary operand is loaded and
   the previous tile has issued all its items;
2. the loader: ``sasim`` timing loads the next tile into shadow registers as soon as the current
   tile has started (double buffering); ``scalesim`` timing only after the previous tile is done;
3. injection: every edge port whose skewed slot is due takes the next streamed item into the first
   PE of its delay line (what entered at beat ``t`` is ``j`` PEs on at ``t + j``). Output stationary
   keeps its delay lines as ring buffers (the weight ring reversed and doubled, so that a row reads it
   contiguously); weight and input stationary read what a delay line would hold straight from a copy
   of the inputs laid out for it (skewed along rows for weight stationary, gathered per group for
   input stationary), which is the same value without copying it along every beat;
4. the datapath: each active PE multiplies the weight by the input lane its select index names and
   adds it to the partial sum it holds or receives.

Weight stationary (``_simulate_tiles``): vectors enter each column at the bottom, all lanes of its
group; partial sums move right along rows and leave column C-1 into the output accumulator.
Input stationary (``_simulate_is_tiles``): weight cells (value and select) enter each column at the
bottom and move up; each PE holds its vector's lanes of its group; partial sums move right as in
weight stationary. Output stationary (``_simulate_os_tiles``): weight cells enter each row at the
left and move right, input lanes enter each column at the bottom and move up, and each PE keeps its
output's sum until the last group, when the sum leaves for the output buffer.

They return the counts the metrics need; values land in ``out``.
"""

import numpy as np

from sasim.jit import njit, njit_inline

# indices into the counts array
BEATS, USEFUL_MACS, MUX_MACS, INPUT_WORDS, OUTPUT_WORDS, WEIGHT_CELLS, LOADS, OVERFLOWS = range(8)
NUM_COUNTS = 8
# indices into a kernel's schedule state
NEXT_LOAD, NEXT_ISSUE, LOADER_FREE = range(3)


@njit_inline
def _schedule_state(ntiles):
    """Fresh counts and per-tile schedule arrays (issue start, load end, retirement; -1: not yet) and state."""
    minus = np.full(ntiles, -1, dtype=np.int64)
    return (np.zeros(NUM_COUNTS, dtype=np.int64), minus.copy(), minus.copy(), minus, np.zeros(3, dtype=np.int64))


@njit_inline
def _first_live(first_live, next_issue, retired_at):
    """The oldest tile not yet retired (tiles retire in order)."""
    while first_live < next_issue and retired_at[first_live] >= 0:
        first_live += 1
    return first_live


@njit_inline
def _phase(d, k):
    """``(d // k, d % k)`` for ``d >= 0``: which streamed item (items every ``k`` beats) a port ``d`` beats after
    its tile's first is at, and how many beats past it; no division when ``k`` is 1."""
    if k == 1:
        return d, 0
    q = d // k
    return q, d - q * k


@njit_inline
def _phase_back(q, rem, k):
    """The :func:`_phase` of ``d - 1`` from that of ``d`` (the next port along, one beat behind)."""
    if rem == 0:
        return q - 1, k - 1
    return q, rem - 1


@njit_inline
def _top_column(d, q, rem, k, C, q_edge, rem_edge):
    """The highest active column of a row ``d = q*k + rem`` beats into its tile (items every ``k`` beats enter
    column 0 and move one column a beat; ``C - 1 = q_edge*k + rem_edge``), and which item it holds; the
    column may be below 0 when none is active."""
    if d <= C - 1:
        return d, 0
    if rem_edge >= rem:  # k divides d - c first at c = C - 1 - (rem_edge - rem)
        return C - 1 - (rem_edge - rem), q - q_edge
    return C - 1 - (rem_edge - rem + k), q - q_edge + 1


@njit_inline
def _enter_cell(values, select, lane_counts, n, g, wbuf, sbuf, a, b, vectors, counts):
    """Weight cell ``(n, g)`` enters buffer slot ``[a, b]``; on its way across the tile it meets ``vectors``
    vectors, each a useful MAC when the weight is nonzero (behind a multiplexer when its group is wider than 1)."""
    w = values[n, g]
    wbuf[a, b] = w
    sbuf[a, b] = select[n, g]
    counts[WEIGHT_CELLS] += 1
    if w != 0:
        counts[USEFUL_MACS] += vectors
        if lane_counts[g] > 1:
            counts[MUX_MACS] += vectors


@njit_inline
def _issue(t, state, issue_start, load_end, interval, S):
    """The issue controller: the next loaded tile starts streaming once the previous one issued all ``S`` items."""
    j = state[NEXT_ISSUE]
    if j < state[NEXT_LOAD] and load_end[j] <= t:
        if j == 0 or t >= issue_start[j - 1] + S * interval[j - 1]:
            issue_start[j] = t
            state[NEXT_ISSUE] += 1


@njit_inline
def _control(t, state, issue_start, load_end, retired_at, load_beats, interval, S, overlap, ntiles):
    """Steps 1 and 2 of beat ``t``: the issue controller, the loader, and the controller again for a tile with
    nothing to load (output stationary). Returns the tile whose load starts now, or -1."""
    _issue(t, state, issue_start, load_end, interval, S)
    started = -1
    nl = state[NEXT_LOAD]
    if nl < ntiles and t >= state[LOADER_FREE]:
        if nl == 0:
            free = True
        elif overlap:
            free = issue_start[nl - 1] >= 0  # shadow registers free once the previous tile swapped in
        else:
            free = retired_at[nl - 1] >= 0 and retired_at[nl - 1] < t  # previous tile done
        if free:
            load_end[nl] = t + load_beats[nl]
            state[LOADER_FREE] = load_end[nl]
            state[NEXT_LOAD] += 1
            started = nl
            if load_beats[nl] == 0:
                _issue(t, state, issue_start, load_end, interval, S)
    return started


@njit
def _fit(v, acc_limit, saturate):
    """``v`` in the accumulator's two's-complement range ``[-acc_limit - 1, acc_limit]``: saturated, or wrapped."""
    if saturate:
        return acc_limit if v > acc_limit else -acc_limit - 1
    span = 2 * (acc_limit + 1)
    return (v + acc_limit + 1) % span - acc_limit - 1


@njit
def _simulate_tiles(values, select, lane_counts, lane_prefix, nz_prefix, mux_prefix, skewed, rows_n, R, C, nrt, nct,
                    M, load_beats, interval, tile_cells, overlap, compute_values, out, acc_limit=0, saturate=True):
    """Weight stationary: tile ``i`` holds weight rows ``rt*R ..`` and groups ``ct*C ..``; the ``M`` vectors stream
    in at the bottom of every column. ``skewed[m + c, g * A + lane]`` (``c = g % C``, ``A`` lanes a group) is
    vector ``m``'s value of group ``g``'s lane: what column ``c``'s delay line holds for row ``r`` at beat ``t``
    is at ``skewed[d]``, ``d = t - issue - r`` (at interval 1), so the kernel reads it there, along a row."""
    ntiles = nrt * nct
    A = skewed.shape[1] // max(lane_counts.size, 1)  # lanes per group
    single_lane = A == 1
    counts, issue_start, load_end, retired_at, state = _schedule_state(ntiles)
    # partial sums, updated in place right to left: PE (r, c) adds to what PE (r, c-1) held a beat earlier.
    # Registers take the accumulator's number type: float32, or int64 holding fixed-point words
    psum = np.zeros((R, C), dtype=out.dtype)
    zero_acc = out[0, 0] - out[0, 0]
    first_live = 0
    t = 0
    while first_live < ntiles:
        loaded = _control(t, state, issue_start, load_end, retired_at, load_beats, interval, M, overlap, ntiles)
        if loaded >= 0:
            counts[WEIGHT_CELLS] += tile_cells[loaded]
            counts[LOADS] += 1
        next_issue = state[NEXT_ISSUE]
        # 3. input injection at the bottom of every column: column c takes vector (base - c) / k's lanes
        for i in range(first_live, next_issue):
            col0 = (i % nct) * C
            k = interval[i]
            base = t - issue_start[i]
            if k == 1:  # the columns taking a vector now are a run: count their lanes from prefix sums
                hi = base if base < C - 1 else C - 1
                lo = base - (M - 1)
                if lo < 0:
                    lo = 0
                if lo <= hi:
                    counts[INPUT_WORDS] += lane_prefix[col0 + hi + 1] - lane_prefix[col0 + lo]
            else:
                m, rem = _phase(base, k)
                for c in range(min(C, base + 1)):
                    if rem == 0 and m < M:
                        counts[INPUT_WORDS] += lane_counts[col0 + c]
                    m, rem = _phase_back(m, rem, k)
        # 4. datapath, oldest tile first
        for i in range(first_live, next_issue):
            rt = i // nct
            col0 = (i % nct) * C
            k = interval[i]
            base = t - issue_start[i]
            span = (M - 1) * k
            q_edge, rem_edge = _phase(C - 1, k)
            m_d, rem = _phase(base, k)  # row r is d = base - r beats into the tile: vector m_d, rem past it
            for r in range(min(R, base + 1)):
                d = base - r
                c_hi, m_hi = _top_column(d, m_d, rem, k, C, q_edge, rem_edge)  # and the vector there
                c_lo = d - span
                if c_lo < 0:
                    c_lo = 0
                if c_lo > c_hi:
                    m_d, rem = _phase_back(m_d, rem, k)
                    continue
                row = rt * R + r
                if k == 1:
                    # every PE in [c_lo, c_hi] is active: count its useful MACs from prefix sums
                    counts[USEFUL_MACS] += nz_prefix[row, col0 + c_hi + 1] - nz_prefix[row, col0 + c_lo]
                    counts[MUX_MACS] += mux_prefix[row, col0 + c_hi + 1] - mux_prefix[row, col0 + c_lo]
                    if compute_values:
                        # right to left, so that each PE reads its left neighbour's partial sum of the previous
                        # beat before that neighbour overwrites it
                        c = c_hi
                        lo = c_lo if c_lo > 0 else 1
                        if single_lane:  # every group holds one column: the multiplexer always picks lane 0
                            while c >= lo:
                                psum[r, c] = psum[r, c - 1] + values[row, col0 + c] * skewed[d, col0 + c]
                                c -= 1
                        else:
                            while c >= lo:
                                col = col0 + c
                                psum[r, c] = psum[r, c - 1] + values[row, col] * skewed[d, col * A + select[row, col]]
                                c -= 1
                        if c_lo == 0:
                            psum[r, 0] = values[row, col0] * skewed[d, col0 * A + select[row, col0]]
                        if acc_limit > 0:  # fixed point: every partial sum must fit the accumulator
                            for c in range(c_lo, c_hi + 1):
                                if psum[r, c] > acc_limit or psum[r, c] < -acc_limit - 1:
                                    counts[OVERFLOWS] += 1
                                    psum[r, c] = _fit(psum[r, c], acc_limit, saturate)
                else:
                    m = m_hi
                    for c in range(c_hi, c_lo - 1, -k):
                        col = col0 + c
                        if values[row, col] != 0:
                            counts[USEFUL_MACS] += 1
                            if lane_counts[col] > 1:
                                counts[MUX_MACS] += 1
                        if compute_values:
                            a = psum[r, c - 1] if c > 0 else zero_acc
                            a = a + values[row, col] * skewed[m + c, col * A + select[row, col]]
                            if acc_limit > 0 and (a > acc_limit or a < -acc_limit - 1):
                                counts[OVERFLOWS] += 1
                                a = _fit(a, acc_limit, saturate)
                            psum[r, c] = a
                        m += 1
                if c_hi == C - 1:  # a result leaves the right edge into the output accumulator
                    m = m_hi
                    if row < rows_n:
                        counts[OUTPUT_WORDS] += 1
                        if compute_values:
                            out[row, m] += psum[r, C - 1]
                            if acc_limit > 0 and (out[row, m] > acc_limit or out[row, m] < -acc_limit - 1):
                                counts[OVERFLOWS] += 1
                                out[row, m] = _fit(out[row, m], acc_limit, saturate)
                    if r == R - 1 and m == M - 1:
                        retired_at[i] = t
                m_d, rem = _phase_back(m_d, rem, k)
        first_live = _first_live(first_live, next_issue, retired_at)
        t += 1
    counts[BEATS] = t
    return counts


@njit
def _simulate_is_tiles(values, select, lane_counts, held, R, C, nrt, nct, M, load_beats, interval,
                       tile_load_words, overlap, compute_values, out, acc_limit=0, saturate=True):
    """Input stationary: tile ``i`` holds vectors ``rt*R ..`` on its rows and groups ``ct*C ..`` on its columns;
    the ``N`` weight rows stream up the columns. ``held[m, g, lane]`` is what PE (row of vector ``m``, column
    of group ``g``) holds: input ``m``'s value of the group's lane (zero for an empty lane)."""
    N, G = values.shape
    ntiles = nrt * nct
    counts, issue_start, load_end, retired_at, state = _schedule_state(ntiles)
    wbuf = np.zeros((R, C), dtype=values.dtype)  # column c's weight cells: entered at beat t, at row r at t + r
    sbuf = np.zeros((R, C), dtype=np.int64)
    psum = np.zeros((R, C), dtype=out.dtype)
    single_lane = held.shape[2] == 1
    zero_acc = out[0, 0] - out[0, 0]
    zero_w = values[0, 0] - values[0, 0] if N and G else wbuf[0, 0]
    first_live = 0
    t = 0
    while first_live < ntiles:
        loaded = _control(t, state, issue_start, load_end, retired_at, load_beats, interval, N, overlap, ntiles)
        if loaded >= 0:
            counts[INPUT_WORDS] += tile_load_words[loaded]
            counts[LOADS] += 1
        next_issue = state[NEXT_ISSUE]
        slot = t % R
        # 3. weight cells enter every column at the bottom; each meets every vector of the tile on its way up
        for i in range(first_live, next_issue):
            rt = i // nct
            ct = i % nct
            k = interval[i]
            vectors = min(R, M - rt * R)
            base = t - issue_start[i]
            n, rem = _phase(base, k)
            for c in range(min(C, base + 1)):  # column c takes weight row n when rem is 0
                if rem == 0 and n < N:
                    g = ct * C + c
                    if g < G:
                        _enter_cell(values, select, lane_counts, n, g, wbuf, sbuf, slot, c, vectors, counts)
                    else:
                        wbuf[slot, c] = zero_w
                        sbuf[slot, c] = 0
                n, rem = _phase_back(n, rem, k)
        # 4. datapath, oldest tile first, columns right to left within a row (each PE reads its left
        #    neighbour's partial sum of the previous beat before that neighbour overwrites it)
        for i in range(first_live, next_issue):
            rt = i // nct
            col0 = (i % nct) * C
            k = interval[i]
            base = t - issue_start[i]
            span = (N - 1) * k
            q_edge, rem_edge = _phase(C - 1, k)
            g_last = G - 1 - col0  # the last column holding a group
            n_d, rem = _phase(base, k)  # row r is d = base - r beats into the tile: weight row n_d, rem past it
            for r in range(min(R, base + 1)):
                d = base - r
                m = rt * R + r
                if compute_values and m < M:
                    # PE (r, c) meets weight row (d - c) / k when k divides d - c; a row past the last vector
                    # holds sums nobody reads (skipped), columns past the last group pass the partial sum on
                    c_hi = _top_column(d, n_d, rem, k, C, q_edge, rem_edge)[0]
                    c_lo = d - span
                    if c_lo < 0:
                        c_lo = 0
                    rslot = slot - r
                    if rslot < 0:
                        rslot += R
                    c = c_hi
                    while c > g_last and c >= c_lo:
                        psum[r, c] = psum[r, c - 1] if c > 0 else zero_acc
                        c -= k
                    if acc_limit > 0:
                        while c >= c_lo:
                            a = psum[r, c - 1] if c > 0 else zero_acc
                            a = a + wbuf[rslot, c] * held[m, col0 + c, sbuf[rslot, c]]
                            if a > acc_limit or a < -acc_limit - 1:
                                counts[OVERFLOWS] += 1
                                a = _fit(a, acc_limit, saturate)
                            psum[r, c] = a
                            c -= k
                    else:
                        while c >= c_lo and c > 0:
                            lane = 0 if single_lane else sbuf[rslot, c]
                            psum[r, c] = psum[r, c - 1] + wbuf[rslot, c] * held[m, col0 + c, lane]
                            c -= k
                        if c == 0 and c_lo == 0:
                            lane = 0 if single_lane else sbuf[rslot, 0]
                            psum[r, 0] = zero_acc + wbuf[rslot, 0] * held[m, col0, lane]
                if rem == rem_edge and d >= C - 1:  # a result leaves column C-1 into the output accumulator
                    n = n_d - q_edge
                    if n < N:
                        if m < M:
                            counts[OUTPUT_WORDS] += 1
                            if compute_values:
                                out[n, m] += psum[r, C - 1]
                                if acc_limit > 0 and (out[n, m] > acc_limit or out[n, m] < -acc_limit - 1):
                                    counts[OVERFLOWS] += 1
                                    out[n, m] = _fit(out[n, m], acc_limit, saturate)
                        if r == R - 1 and n == N - 1:
                            retired_at[i] = t
                n_d, rem = _phase_back(n_d, rem, k)
        first_live = _first_live(first_live, next_issue, retired_at)
        t += 1
    counts[BEATS] = t
    return counts


@njit
def _simulate_os_tiles(values, select, group_cols, lane_counts, x, R, C, nrt, nct, M, load_beats, interval,
                       overlap, compute_values, out, acc_limit=0, saturate=True):
    """Output stationary: tile ``i`` holds outputs ``rt*R ..`` on its rows and vectors ``mt*C ..`` on its columns;
    the ``G`` groups stream through, weight cells from the left, input lanes from the bottom."""
    N, G = values.shape
    A = group_cols.shape[1]
    single_lane = A == 1
    ntiles = nrt * nct
    counts, issue_start, load_end, retired_at, state = _schedule_state(ntiles)
    # row r's weight cells: the one that entered at beat t sits at C-1 - t%C and again C further on, so that
    # at beat t PE (r, c) reads it (entered at t - c) at wbase + c, wbase = C-1 - t%C, without wrapping
    wring = np.zeros((R, 2 * C), dtype=values.dtype)
    sring = np.zeros((R, 2 * C), dtype=np.int64)
    xring = np.zeros((R, C, A), dtype=x.dtype)  # column c's lanes: entered at beat t, at row r at t + r
    acc = np.zeros((R, C), dtype=out.dtype)
    zero_in = x[0, 0] - x[0, 0]
    zero_acc = out[0, 0] - out[0, 0]
    zero_w = values[0, 0] - values[0, 0]
    first_live = 0
    t = 0
    while first_live < ntiles:
        _control(t, state, issue_start, load_end, retired_at, load_beats, interval, G, overlap, ntiles)
        next_issue = state[NEXT_ISSUE]
        wbase = C - 1 - t % C
        xslot = t % R
        # 3. weight cells enter every row at the left, input lanes every column at the bottom
        for i in range(first_live, next_issue):
            rt = i // nct
            mt = i % nct
            k = interval[i]
            vectors = min(C, M - mt * C)
            base = t - issue_start[i]
            g0, rem0 = _phase(base, k)
            g, rem = g0, rem0
            for r in range(min(R, base + 1)):  # row r takes group g when rem is 0
                if rem != 0 or g >= G:
                    g, rem = _phase_back(g, rem, k)
                    continue
                n = rt * R + r
                if n < N:
                    _enter_cell(values, select, lane_counts, n, g, wring, sring, r, wbase, vectors, counts)
                else:
                    wring[r, wbase] = zero_w
                    sring[r, wbase] = 0
                wring[r, wbase + C] = wring[r, wbase]
                sring[r, wbase + C] = sring[r, wbase]
                g, rem = _phase_back(g, rem, k)
            g, rem = g0, rem0
            for c in range(min(C, base + 1)):  # column c takes group g's lanes when rem is 0
                if rem == 0 and g < G:
                    m = mt * C + c
                    if m < M:
                        counts[INPUT_WORDS] += lane_counts[g]
                    if compute_values:
                        for lane in range(A):
                            col = group_cols[g, lane]
                            xring[xslot, c, lane] = x[m, col] if (m < M and col >= 0) else zero_in
                g, rem = _phase_back(g, rem, k)
        # 4. datapath: each active PE adds one product to the sum it holds; after the last group the sum leaves
        for i in range(first_live, next_issue):
            rt = i // nct
            mt = i % nct
            k = interval[i]
            base = t - issue_start[i]
            c_in = M - mt * C - 1  # the last column holding a vector
            for r in range(R):
                d0 = base - r
                if d0 < 0:
                    break
                n = rt * R + r
                c_last = d0 - (G - 1) * k  # the column doing the last group now
                if compute_values and n < N:
                    # PE (r, c) does group (d0 - c) / k when k divides d0 - c; PEs past the last output or vector
                    # hold sums nobody reads, so they are skipped (a new tile's first group resets them)
                    c_hi = d0 if d0 < C - 1 else C - 1
                    if c_hi > c_in:
                        c_hi = c_in
                    if k > 1:
                        c_hi -= ((c_hi - d0) % k + k) % k  # the highest column with k dividing d0 - c
                    c_lo = c_last if c_last > 0 else 0
                    if c_lo <= c_hi:
                        xs = xslot - r  # the lanes row r sees entered at t - r
                        if xs < 0:
                            xs += R
                        if c_hi == d0:  # PE (r, d0) starts its output: the first group
                            acc[r, d0] = zero_acc
                        # the cell PE (r, c) sees entered row r at t - c: it sits at wbase + c
                        if acc_limit > 0:
                            for c in range(c_hi, c_lo - 1, -k):
                                a = acc[r, c] + wring[r, wbase + c] * xring[xs, c, sring[r, wbase + c]]
                                if a > acc_limit or a < -acc_limit - 1:
                                    counts[OVERFLOWS] += 1
                                    a = _fit(a, acc_limit, saturate)
                                acc[r, c] = a
                        elif single_lane and k == 1:  # contiguous: vectorizable
                            a_row = acc[r, c_lo:c_hi + 1]
                            w_row = wring[r, wbase + c_lo:wbase + c_hi + 1]
                            x_row = xring[xs, c_lo:c_hi + 1, 0]
                            for j in range(c_hi + 1 - c_lo):
                                a_row[j] += w_row[j] * x_row[j]
                        elif single_lane:  # the multiplexer always picks lane 0
                            for c in range(c_hi, c_lo - 1, -k):
                                acc[r, c] += wring[r, wbase + c] * xring[xs, c, 0]
                        else:
                            for c in range(c_hi, c_lo - 1, -k):
                                acc[r, c] += wring[r, wbase + c] * xring[xs, c, sring[r, wbase + c]]
                if 0 <= c_last < C:
                    m = mt * C + c_last
                    if n < N and m < M:
                        counts[OUTPUT_WORDS] += 1
                        if compute_values:
                            out[n, m] = acc[r, c_last]
                    if r == R - 1 and c_last == C - 1:
                        retired_at[i] = t
        first_live = _first_live(first_live, next_issue, retired_at)
        t += 1
    counts[BEATS] = t
    return counts
