"""Slow, obvious reference implementations: the oracles the fast code is tested against."""

from __future__ import annotations

import math

import numpy as np


def naive_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``y[m, n] = sum_k x[m, k] * w[n, k]`` in float64, one loop per index."""
    m_, k_ = x.shape
    n_ = w.shape[0]
    y = np.zeros((m_, n_), dtype=np.float64)
    for m in range(m_):
        for n in range(n_):
            y[m, n] = sum(float(x[m, k]) * float(w[n, k]) for k in range(k_))
    return y


def naive_sections(k: int, section: int, boundaries=()) -> list[tuple[int, int]]:
    cuts = sorted({c for c in range(1, k) if (section and c % section == 0) or c in boundaries})
    edges = [0] + cuts + [k]
    return list(zip(edges[:-1], edges[1:]))


def naive_paper_groups(w, alpha, gamma, section=256, row_cap=None, boundaries=(), policy="paper"):
    """The grouping pseudo-code of the issue, literally: recount everything for every candidate.

    ``policy="min-conflict"`` picks the feasible column adding the fewest conflicts instead
    (ties: largest union, then lowest index).
    """
    n, k = w.shape
    nz = (np.asarray(w) != 0).astype(int)
    budget = math.floor(gamma * n + 1e-9)
    groups = []
    for lo, hi in naive_sections(k, section, boundaries):
        open_cols = [c for c in range(lo, hi) if nz[:, c].any()]
        while open_cols:
            group = [open_cols.pop(0)]
            while True:
                cnt = nz[:, group].sum(axis=1)
                feasible = []
                for c in open_cols:
                    if len(group) + 1 > alpha:
                        break
                    per_row = np.maximum(cnt + nz[:, c] - 1, 0)
                    if per_row.sum() > budget:
                        continue
                    if row_cap is not None and (per_row > row_cap).any():
                        continue
                    feasible.append(c)
                if not feasible:
                    break
                def union(c):
                    return int(((cnt > 0) | (nz[:, c] > 0)).sum())

                def added_conflicts(c):
                    return int(((cnt > 0) & (nz[:, c] > 0)).sum())

                if policy == "min-conflict":
                    best = max(feasible, key=lambda c: (-added_conflicts(c), union(c), -c))
                else:
                    best = max(feasible, key=lambda c: (union(c), -c))
                group.append(best)
                open_cols.remove(best)
            groups.append(group)
    return groups


def naive_combine_prune(w, groups):
    """Keep the largest |w| per (row, group), ties to the lowest column index; return the pruned matrix."""
    w = np.asarray(w, dtype=np.float32)
    out = np.zeros_like(w)
    for group in groups:
        cols = sorted(group)
        for r in range(w.shape[0]):
            best = None
            for c in cols:
                if w[r, c] != 0 and (best is None or abs(w[r, c]) > abs(w[r, best])):
                    best = c
            if best is not None:
                out[r, best] = w[r, best]
    return out


def naive_fixed_point_matmul(values, select, group_cols, x, rows, cols, acc_bits, saturate=True,
                             dataflow="weight_stationary"):
    """Integer reference of the array's order of operations. Weight and input stationary: along each tile
    row the partial sum grows column by column (group by group), each step brought into ``acc_bits``; the
    output accumulator adds the column tiles in order, each sum brought into range too. Output stationary:
    one PE adds every group's product in order into the sum it holds, each step brought into range.
    Returns (y, overflows)."""
    n, g = values.shape
    hi, lo = (1 << (acc_bits - 1)) - 1, -(1 << (acc_bits - 1))
    overflows = 0

    def fit(v):
        nonlocal overflows
        if lo <= v <= hi:
            return v
        overflows += 1
        if saturate:
            return hi if v > hi else lo
        return (v - lo) % (1 << acc_bits) + lo

    m_ = x.shape[0]
    y = [[0] * n for _ in range(m_)]
    if dataflow == "output_stationary":
        cols = g  # one pass over every group, no column tiles
    col_tiles = -(-g // cols)
    for m in range(m_):
        for r in range(n):
            acc = 0
            for ct in range(col_tiles):
                psum = 0
                for c in range(ct * cols, (ct + 1) * cols):  # padded columns pass the sum on unchanged
                    if c < g:
                        col = group_cols[c][select[r][c]]
                        lane = int(x[m][col]) if col >= 0 else 0
                        psum = fit(psum + int(values[r][c]) * lane)
                acc = fit(acc + psum)
            y[m][r] = acc
    return np.array(y, dtype=np.int64), overflows


def naive_tile_schedule(group_sizes, n_rows, hw, M, timing, resident=True):
    """The tile schedule from first principles, in exact fractions: per-tile costs from bytes and bandwidths,
    then a timeline of explicit events. Returns ``{"beats", "ideal_beats", "cycles", "stall_cycles", "tiles",
    "steps", "weight_cells", "input_words", "output_words", "cell_bytes"}``.

    The dataflow is ``hw.array.dataflow``. Each tile (row-tile-major) loads its stationary operand (at least
    C cycles: one column per cycle; longer when its bytes exceed what its path carries; nothing in output
    stationary), then streams S items, one every ``k`` beats (``k`` > 1 when one item's bytes exceed what its
    SRAM carries in a beat); the last item's last MAC is R + C - 2 beats after it enters. ``scalesim``: the next
    load starts when the tile is done. ``sasim``: the next load starts (into shadow registers) when the tile
    starts streaming; a tile streams once loaded and once the previous tile has issued all its items.

    * weight stationary: tiles of (outputs x groups); loads weight cells; streams the M vectors, each carrying
      the lanes of the tile's groups.
    * output stationary: tiles of (outputs x vectors); streams the G groups, each carrying a weight cell per
      output row and the group's lanes per vector (the widest group sets every step's pace).
    * input stationary: tiles of (vectors x groups); loads each vector's lanes of the tile's groups from the
      input SRAM; streams the N weight rows, each carrying one cell per group.
    """
    from fractions import Fraction

    flow = hw.array.dataflow
    R, C = hw.array.rows, hw.array.cols
    s = hw.arithmetic.act_bits if hw.arithmetic.mode == "bit_serial" else 1
    sizes = [int(g) for g in group_sizes]
    G = len(sizes)
    biggest = max(sizes) if sizes else 1
    select_bits = 0 if biggest <= 1 else math.ceil(math.log2(biggest))
    cell_bytes = Fraction(hw.arithmetic.weight_bits + select_bits, 8)
    act_bytes = Fraction(hw.arithmetic.act_bits, 8)
    mem = hw.memory
    weight_bw = Fraction(mem.sram_weight_bw) if resident else min(Fraction(mem.sram_weight_bw), Fraction(mem.dram_bw))
    input_bw = Fraction(mem.sram_input_bw)

    def beats(cycles):
        return math.ceil(Fraction(cycles) / s)

    def blocks(total, size):
        return [(start, min(size, total - start)) for start in range(0, total, size)]

    tiles = []
    if flow == "weight_stationary":
        steps = M
        for _r0, rows in blocks(n_rows, R):
            for c0, cols in blocks(G, C):
                cells, lanes = rows * cols, sum(sizes[c0:c0 + cols])
                tiles.append({"load": beats(max(C, math.ceil(cells * cell_bytes / weight_bw))),
                              "k": max(1, beats(lanes * act_bytes / input_bw)), "weight_cells": cells,
                              "input_words": lanes * M, "output_words": rows * M})
    elif flow == "output_stationary":
        steps = G
        for _r0, rows in blocks(n_rows, R):
            for _m0, vectors in blocks(M, C):
                step = max(rows * cell_bytes / weight_bw, vectors * biggest * act_bytes / input_bw)
                tiles.append({"load": 0, "k": max(1, beats(step)), "weight_cells": rows * G,
                              "input_words": vectors * sum(sizes), "output_words": rows * vectors})
    else:
        steps = n_rows
        for _m0, vectors in blocks(M, R):
            for c0, cols in blocks(G, C):
                lanes = sum(sizes[c0:c0 + cols])
                tiles.append({"load": beats(max(C, math.ceil(vectors * lanes * act_bytes / input_bw))),
                              "k": max(1, beats(cols * cell_bytes / weight_bw)), "weight_cells": cols * n_rows,
                              "input_words": vectors * lanes, "output_words": vectors * n_rows})

    def timeline(loads, ks):
        issue_start = prev_issue_end = None
        load_start = 0
        for i, (load, k) in enumerate(zip(loads, ks)):
            load_end = load_start + load
            issue_start = load_end if i == 0 else max(load_end, prev_issue_end)
            prev_issue_end = issue_start + steps * k
            done = issue_start + (steps - 1) * k + R + C - 1
            load_start = done if timing == "scalesim" else issue_start
        return done

    total = timeline([t["load"] for t in tiles], [t["k"] for t in tiles])
    ideal_load = 0 if flow == "output_stationary" else beats(C)
    ideal = timeline([ideal_load] * len(tiles), [1] * len(tiles))
    return {"beats": total, "ideal_beats": ideal, "cycles": total * s, "stall_cycles": (total - ideal) * s,
            "tiles": len(tiles), "steps": steps, "cell_bytes": cell_bytes,
            **{key: sum(t[key] for t in tiles) for key in ("weight_cells", "input_words", "output_words")}}


def naive_traffic_and_energy(schedule, hw, M, useful_macs, mux_macs, packed_cells, resident):
    """SRAM and DRAM bytes and energy (pJ) of one matrix product, straight from its words and the config:
    SRAM moves every weight cell loaded or streamed, every input lane word and every partial-sum word written to
    the output accumulator; DRAM delivers the packed weights once when they fit in the weight SRAM, else every
    cell the array loads or streams.
    Every PE passes its registers on for every streamed item of every tile (``tiles * R * C * steps`` slots)."""
    from fractions import Fraction

    a, e = hw.arithmetic, hw.energy
    weight_bytes = schedule["weight_cells"] * schedule["cell_bytes"]
    sram = (weight_bytes + schedule["input_words"] * Fraction(a.act_bits, 8)
            + schedule["output_words"] * Fraction(a.acc_bits, 8))
    dram = packed_cells * schedule["cell_bytes"] if resident else weight_bytes
    if a.number_format == "float32":
        mac = mux = reg = 1
    else:
        ref = e.reference_bits
        mac, mux, reg = (Fraction(a.weight_bits * a.act_bits, ref**2), Fraction(a.act_bits, ref),
                         Fraction(a.act_bits + a.acc_bits, 2 * ref))
    slots = schedule["tiles"] * hw.array.rows * hw.array.cols * schedule["steps"]
    energy = (useful_macs * Fraction(e.mac_pj) * mac + mux_macs * Fraction(e.mux_select_pj) * mux
              + slots * Fraction(e.register_pj) * reg + sram * Fraction(e.sram_pj_per_byte)
              + dram * Fraction(e.dram_pj_per_byte))
    return {"sram_bytes": sram, "dram_bytes": dram, "energy_pj": energy}


def naive_nm_mask(w, n, m):
    """N:M by the definition: in each row, walk the blocks of m columns; keep the n largest |w| (nonzero),
    earlier columns first among equals."""
    rows, k = w.shape
    keep = np.zeros((rows, k), dtype=bool)
    for r in range(rows):
        for start in range(0, k, m):
            cols = list(range(start, min(start + m, k)))
            ranked = sorted(cols, key=lambda c: (-abs(float(w[r, c])), c))
            for c in ranked[:n]:
                if w[r, c] != 0:
                    keep[r, c] = True
    return keep


def naive_block_mask(w, block_rows, block_cols, density):
    """Block pruning by the definition: list every block (row-major) with its L2 norm, keep the
    ``max(1, round(density * blocks))`` largest (earlier blocks first among equals) that are not all zero."""
    rows, k = w.shape
    blocks = []
    for r0 in range(0, rows, block_rows):
        for c0 in range(0, k, block_cols):
            cells = [float(w[r, c]) ** 2 for r in range(r0, min(r0 + block_rows, rows))
                     for c in range(c0, min(c0 + block_cols, k))]
            blocks.append((-math.sqrt(sum(cells)), len(blocks), r0, c0))
    keep = np.zeros((rows, k), dtype=bool)
    for norm, _, r0, c0 in sorted(blocks)[:max(1, int(round(density * len(blocks))))]:
        if norm < 0:
            keep[r0:r0 + block_rows, c0:c0 + block_cols] = True
    return keep
