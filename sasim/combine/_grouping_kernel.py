"""Private numba kernel of the paper's grouping policy. Call it through :mod:`sasim.combine.grouping`.

Per group it keeps, for every open column ``c``, ``overlap[c] = |rows(c) & rows(g)|`` up to date as
columns join the group, so that adding ``c`` costs ``overlap[c]`` conflicts and the union is
``|rows(g)| + nnz(c) - overlap[c]``. A step then scans the open columns once instead of
recounting every column's rows.
"""

import numpy as np

from sasim.jit import njit


@njit
def _paper_groups(col_ptr, col_rows, row_ptr, row_cols, ncols, nrows, alpha, budget, row_cap, min_conflict, out_groups):
    """Group the columns ``0..ncols-1`` of one section; return the number of groups written.

    ``col_ptr/col_rows``: CSC pattern of the section's nonzero columns (local indices).
    ``row_ptr/row_cols``: the same pattern by rows. ``out_groups`` is ``(ncols, alpha)``, filled
    with local column indices and ``-1`` padding. ``row_cap < 0`` means no per-row cap.
    """
    open_cols = np.ones(ncols, dtype=np.bool_)
    overlap = np.zeros(ncols, dtype=np.int64)
    blocked = np.zeros(ncols, dtype=np.int64)
    cnt = np.zeros(nrows, dtype=np.int64)
    members = np.empty(alpha, dtype=np.int64)
    remaining = ncols
    first = 0
    ngroups = 0
    while remaining > 0:
        while not open_cols[first]:
            first += 1
        size = 0
        union = 0
        conflicts = 0
        c = first
        while c >= 0:
            # add column c to the group
            open_cols[c] = False
            remaining -= 1
            members[size] = c
            size += 1
            conflicts += overlap[c]
            for p in range(col_ptr[c], col_ptr[c + 1]):
                r = col_rows[p]
                if cnt[r] == 0:
                    union += 1
                    for q in range(row_ptr[r], row_ptr[r + 1]):
                        overlap[row_cols[q]] += 1
                cnt[r] += 1
                if row_cap >= 0 and cnt[r] == row_cap + 1:
                    for q in range(row_ptr[r], row_ptr[r + 1]):
                        blocked[row_cols[q]] += 1
            if size >= alpha or remaining == 0:
                break
            # the feasible open column with the largest union (ties: lowest index)
            best = -1
            best_union = -1
            best_overlap = nrows + 1
            for cand in range(first, ncols):
                if not open_cols[cand] or blocked[cand] > 0:
                    continue
                if conflicts + overlap[cand] > budget:
                    continue
                u = union + (col_ptr[cand + 1] - col_ptr[cand]) - overlap[cand]
                if min_conflict:
                    if overlap[cand] < best_overlap or (overlap[cand] == best_overlap and u > best_union):
                        best_overlap = overlap[cand]
                        best_union = u
                        best = cand
                elif u > best_union:
                    best_union = u
                    best = cand
            c = best
        for j in range(size):
            out_groups[ngroups, j] = members[j]
            for p in range(col_ptr[members[j]], col_ptr[members[j] + 1]):
                r = col_rows[p]
                if cnt[r] > 0:
                    for q in range(row_ptr[r], row_ptr[r + 1]):
                        overlap[row_cols[q]] = 0
                        blocked[row_cols[q]] = 0
                    cnt[r] = 0
        ngroups += 1
    return ngroups
