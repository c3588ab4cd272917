"""The Pareto front of points where lower is better on both axes (latency, tiles or energy against bpc)."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points that no other point beats on both ``x`` and ``y`` (lower is better on both).

    Parameters
    ----------
    xs, ys : sequence of float
        The two coordinates of every point, in the same order.

    Returns
    -------
    list of int
        Indices of the front, sorted by ``x`` (ties keep their input order). A point equal to another on both
        axes is on the front with it: neither beats the other.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must have the same length, got {len(xs)} and {len(ys)}")
    front = [i for i in range(len(xs))
             if not any(xs[j] <= xs[i] and ys[j] <= ys[i] and (xs[j] < xs[i] or ys[j] < ys[i])
                        for j in range(len(xs)))]
    return sorted(front, key=lambda i: xs[i])
