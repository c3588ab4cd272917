"""One-shot magnitude pruning: the sparse starting point column combining is applied to."""

from __future__ import annotations

import numpy as np

from sasim.errors import SasimError


def magnitude_prune(weight: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` fraction of largest-magnitude weights (ties at the threshold kept), zero the rest."""
    if not 0 < density <= 1:
        raise SasimError(f"density must be in (0, 1], got {density}")
    w = np.asarray(weight, dtype=np.float32)
    keep = max(1, int(round(density * w.size)))
    if keep >= w.size:
        return w.copy()
    threshold = np.partition(np.abs(w).ravel(), w.size - keep)[w.size - keep]
    return np.where(np.abs(w) >= threshold, w, 0).astype(np.float32)


def prune_workload(workload, density: float):
    """Magnitude-prune every layer's ``[W_ih | W_hh]`` (jointly) and ``W_hr`` to ``density``, in place."""
    for layer in workload.layers:
        pruned = magnitude_prune(layer.combined, density)
        layer.w_ih, layer.w_hh = pruned[:, : layer.input_size], pruned[:, layer.input_size:]
        if layer.w_hr is not None:
            layer.w_hr = magnitude_prune(layer.w_hr, density)
    return workload
