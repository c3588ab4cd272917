"""Job: pack the matrices of a checkpoint (its LSTM matrices, or any named 2-D tensors) and save them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sasim.api.simulate import Packing
from sasim.checks import check_float, check_optional_int
from sasim.combine.column_combine import pack_matrix
from sasim.combine.patterns import Pattern, packing_stats
from sasim.errors import SasimError
from sasim.hw.config import load_hw_config
from sasim.sim.mapping import weight_tiles
from sasim.workload.checkpoint import (
    carried_metadata,
    load_raw,
    packed_to_tensors,
    save_checkpoint,
    tensor_state_dict,
    to_sasim_state_dict,
)
from sasim.workload.lstm_weights import layers_from_state_dict


@dataclass(frozen=True)
class Combine:
    """What ``sasim combine`` does: pack a checkpoint's matrices with one sparsity pattern and save the result.

    Parameters
    ----------
    weights, out : str or Path
        The checkpoint to pack, and the packed checkpoint to write (``.pt``).
    pattern : str
        ``combine`` (column combining, with ``packing``), ``nm:N:M``, ``block:RxC`` or ``unstructured``
        (:class:`sasim.combine.patterns.Pattern`).
    packing : Packing or None
        Column combining's ``alpha``, ``gamma``, rule, policy, section and row cap; required for ``combine``
        and refused by the other patterns.
    sparsity : float or None
        The fraction of blocks (``block``) or weights (``unstructured``) to prune; N:M sets its own.
    tensors : tuple of str
        Named 2-D tensors to pack instead of the LSTM matrices (any checkpoint, LSTM or not).
    mux_fanin : int or None
        The multiplexer fan-in to respect (``alpha`` and ``M`` may not exceed it).
    hw : str or None
        A hardware config: each tensor's statistics add its tiles on that array, and its ``mux_fanin`` applies.
    """

    weights: str | Path
    out: str | Path
    pattern: str = "combine"
    packing: Packing | None = None
    sparsity: float | None = None
    tensors: tuple[str, ...] = ()
    mux_fanin: int | None = None
    hw: str | None = None

    def __post_init__(self):
        shape = Pattern.parse(self.pattern)
        if shape.kind == "combine" and self.packing is None:
            raise SasimError("column combining needs alpha and gamma (or another pattern: nm:N:M, block:RxC, "
                             "unstructured)", param="alpha")
        if shape.kind != "combine" and self.packing is not None:
            raise SasimError(f"alpha and gamma are column combining's; the pattern {self.pattern} takes sparsity "
                             "(block, unstructured) or nothing (N:M)", param="alpha")
        if self.sparsity is not None:
            if shape.kind == "combine":
                raise SasimError("column combining prunes only its conflicts; magnitude-prune first (sasim prune), "
                                 "or choose the unstructured or block pattern for sparsity", param="sparsity")
            if shape.fixed_density is not None:
                raise SasimError("an N:M pattern sets its own sparsity (1 - N/M); leave sparsity out",
                                 param="sparsity")
            check_float("sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_optional_int("mux_fanin", self.mux_fanin, 1)
        if Path(self.out).suffix != ".pt":
            raise SasimError(f"out must be a .pt file, got {self.out}", param="out")
        object.__setattr__(self, "tensors", tuple(self.tensors or ()))


def combine(spec: Combine) -> dict:
    """Pack the LSTM matrices (or the named 2-D tensors) of a checkpoint and save a packed checkpoint.

    The saved state_dict holds the pruned dense weights under their original names (so any loader can use
    it), a mask per packed tensor, and the packed form (``<name>.packed_values/select/groups``); the
    metadata's ``packing`` entry records the parameters and per-tensor statistics.

    Returns
    -------
    dict
        ``{"source", "packing": parameters, "tensors": {name: statistics}}``.
    """
    shape = Pattern.parse(spec.pattern)
    path, out, tensors, sparsity = spec.weights, spec.out, spec.tensors, spec.sparsity or 0.0
    if shape.kind == "combine":
        grouping = spec.packing.grouping()
        params = dict(grouping)
    else:
        fixed = shape.fixed_density
        params = dict(pattern=shape.name, sparsity=sparsity if fixed is None else 1 - fixed)
    hw = load_hw_config(spec.hw) if spec.hw else None
    mux_fanin = spec.mux_fanin
    if hw is not None:
        mux_fanin = hw.array.mux_fanin if mux_fanin is None else min(mux_fanin, hw.array.mux_fanin)
    shape.check_fanin(mux_fanin)
    raw = load_raw(path)
    state, layout = tensor_state_dict(raw) if tensors else to_sasim_state_dict(raw)
    if tensors:
        names = []
        for name in tensors:
            if name not in state:
                raise SasimError(f"{path} has no tensor {name!r}; it has: {', '.join(list(state)[:12])}")
            if state[name].ndim != 2:
                raise SasimError(f"tensor {name!r} has shape {tuple(state[name].shape)}; only 2-D matrices can be packed")
            names.append(name)
        groups_of = {name: [name] for name in names}
    else:
        layers = layers_from_state_dict(state, str(path))
        groups_of = {}
        for i, layer in enumerate(layers):
            groups_of[f"rnns.{i}.gates"] = [f"rnns.{i}.weight_ih_l0", f"rnns.{i}.weight_hh_l0"]
            if layer.w_hr is not None:
                groups_of[f"rnns.{i}.weight_hr_l0"] = [f"rnns.{i}.weight_hr_l0"]
    report = {"source": str(path), "packing": params, "tensors": {}}
    new_state = dict(state)
    for key, members in groups_of.items():
        mats = [state[m].detach().float().numpy() for m in members]
        matrix = np.concatenate(mats, axis=1)
        if shape.kind == "combine":
            packed = pack_matrix(matrix, **grouping, mux_fanin=mux_fanin)
        else:
            packed = shape.pack(matrix, sparsity)
        dense = packed.unpack()
        start = 0
        for name, mat in zip(members, mats):
            part = dense[:, start:start + mat.shape[1]]
            start += mat.shape[1]
            new_state[name] = torch.from_numpy(np.ascontiguousarray(part))
            kind = name.rsplit(".", 1)[-1].replace("weight_", "").replace("_l0", "")
            mask_name = name.rsplit(".", 1)[0] + f".mask_{kind}" if name.startswith("rnns.") else name + "_mask"
            new_state[mask_name] = torch.from_numpy(np.ascontiguousarray(part != 0)).float()
        new_state.update(packed_to_tensors(key, packed))
        report["tensors"][key] = packing_stats(packed)
        if hw is not None:
            tiles = weight_tiles(packed, hw)
            report["tensors"][key].update(hw=hw.name, tiles=tiles,
                                          tile_efficiency=packed.nonzeros / (tiles * hw.array.rows * hw.array.cols))
    meta = carried_metadata(raw) if layout == "sasim" else {}
    meta["packing"] = report
    model_config = raw.get("model_config", {}) if layout == "sasim" else {}
    vocab = raw.get("vocab", []) if layout == "sasim" else []
    save_checkpoint(out, new_state, model_config, vocab, **meta)
    return report
