"""JIT options for every numba kernel in sasim, in one place.

``cache=True`` keeps compiled kernels on disk (``__pycache__``) so that a warm run skips
compilation. No ``fastmath``: the simulator's float32 results must follow IEEE order exactly.
"""

import numba

JIT = dict(cache=True, nogil=True, fastmath=False)


def njit(fn):
    """``numba.njit`` with sasim's options."""
    return numba.njit(**JIT)(fn)


def njit_inline(fn):
    """:func:`njit` inlined into its callers at numba's IR level (small helpers called every beat)."""
    return numba.njit(inline="always", **JIT)(fn)
