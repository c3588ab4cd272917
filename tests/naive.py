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


def naive_fixed_point_matmul(values, select, group_cols, x, rows, cols, acc_bits, saturate=True):
    """Integer reference of the array's order of operations: along each tile row the partial sum
    grows column by column, each step brought into ``acc_bits``; the output accumulator adds the
    column tiles of a row tile in order, each sum brought into range too. Returns (y, overflows)."""
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
