"""Packing every matrix of a workload or checkpoint (column combining on the fly)."""

from __future__ import annotations

import re

import numpy as np

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import LayerPacking, PackedMatrix, RowBlocks
from sasim.combine.patterns import Pattern
from sasim.errors import SasimError
from sasim.hw.config import HardwareConfig
from sasim.workload.checkpoint import stored_packed
from sasim.workload.lstm_weights import LSTMWorkload


def pack_workload(workload: LSTMWorkload, hw: HardwareConfig | None, alpha: int, gamma: float, rule: str = "prune",
                  policy: str = "paper", section: int = 256, row_cap: int | None = None,
                  mix_ih_hh: bool = True, per_gate: bool = False, pattern: Pattern | None = None,
                  sparsity: float = 0.0) -> list[LayerPacking]:
    """Pack every layer's ``[W_ih | W_hh]`` (and ``W_hr``) with the same parameters.

    ``mix_ih_hh=False`` keeps groups from mixing ``W_ih`` and ``W_hh`` columns (a boundary at ``I``).
    ``per_gate=True`` groups each gate's ``H`` rows (i, f, g, o) separately: four row blocks with
    groups of their own, each its own matrix product on the array. ``pattern`` other than column combining packs
    each matrix with that pattern instead (``sparsity``: of the blocks or weights it prunes; see
    :meth:`sasim.combine.patterns.Pattern.pack`).
    """
    fanin = hw.array.mux_fanin if hw is not None else None
    if pattern is not None and pattern.kind != "combine":
        pattern.check_fanin(fanin)
        return [LayerPacking(pattern.pack(layer.combined, sparsity),
                             None if layer.w_hr is None else pattern.pack(layer.w_hr, sparsity))
                for layer in workload.layers]
    out = []
    for layer in workload.layers:
        bounds = () if mix_ih_hh else (layer.input_size,)
        if per_gate:
            h = layer.hidden_size
            gates = RowBlocks([pack_matrix(layer.combined[g * h:(g + 1) * h], alpha, gamma, rule, policy, section,
                                           row_cap, bounds, fanin) for g in range(4)])
        else:
            gates = pack_matrix(layer.combined, alpha, gamma, rule, policy, section, row_cap, bounds, fanin)
        proj = None
        if layer.w_hr is not None:
            proj = pack_matrix(layer.w_hr, alpha, gamma, rule, policy, section, row_cap, (), fanin)
        out.append(LayerPacking(gates, proj))
    return out


def stored_packings(workload: LSTMWorkload) -> list[LayerPacking] | None:
    """The packed form saved in a packed checkpoint (``sasim combine`` / ``sasim prune``), or None.

    Raises
    ------
    SasimError
        When the stored packed form does not unpack to the checkpoint's (masked) weights.
    """
    if workload.layout != "sasim":
        return None
    state = workload.raw["state_dict"]
    out = []
    for i, layer in enumerate(workload.layers):
        packed = stored_packed(state, f"rnns.{i}.gates", layer.combined.shape)
        if packed is None:
            return None if i == 0 else _inconsistent(workload, f"layer {i} has no packed form")
        packed.stats = {"nonzeros_before": workload.raw.get("packing", {}).get("tensors", {})
                        .get(f"rnns.{i}.gates", {}).get("nonzeros_before", packed.nonzeros)}
        if not np.array_equal(packed.unpack(), layer.combined):
            _inconsistent(workload, f"layer {i}'s packed form does not unpack to its weights")
        proj = None if layer.w_hr is None else stored_packed(state, f"rnns.{i}.weight_hr_l0", layer.w_hr.shape)
        if proj is not None:
            proj.stats = {"nonzeros_before": proj.nonzeros}
        out.append(LayerPacking(packed, proj))
    return out


def _inconsistent(workload, why):
    raise SasimError(f"{workload.path} is damaged: {why}; re-create it with sasim combine")


def workload_packings(workload: LSTMWorkload) -> list:
    """The packing the array holds for a checkpoint: its stored packed form, or every matrix dense."""
    stored = stored_packings(workload)
    if stored is not None:
        return stored
    return [LayerPacking(PackedMatrix.from_dense(l.combined), None if l.w_hr is None else PackedMatrix.from_dense(l.w_hr))
            for l in workload.layers]


def compact_packed_state(state: dict) -> dict:
    """A packed checkpoint's tensors with each LSTM matrix stored once, in packed form: the dense matrices that
    have a packed form and the masks are dropped (loading unpacks them again, bit for bit)."""

    packed = {k.rsplit(".", 1)[0] for k in state if k.endswith((".packed_values", ".packed_block_rows"))}
    out = {}
    for key, value in state.items():
        m = re.match(r"rnns\.(\d+)\.(weight_ih_l0|weight_hh_l0|weight_hr_l0|mask_ih|mask_hh|mask_hr)$", key)
        if m:
            layer, name = m.groups()
            home = f"rnns.{layer}.gates" if name in ("weight_ih_l0", "weight_hh_l0") else f"rnns.{layer}.weight_hr_l0"
            if name.startswith("mask") or home in packed:
                continue
        out[key] = value
    return out
