"""Job: pack the matrices of a checkpoint (its LSTM matrices, or any named 2-D tensors) and save them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sasim.combine.column_combine import pack_matrix
from sasim.combine.patterns import Pattern, packing_stats
from sasim.errors import SasimError
from sasim.hw.config import HardwareConfig
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


def combine_checkpoint(path, out, alpha: int = 8, gamma: float = 0.5, rule: str = "prune", policy: str = "paper",
                       section: int = 256, row_cap: int | None = None, tensors=None, mux_fanin: int | None = None,
                       hw: HardwareConfig | None = None, pattern: str = "combine", sparsity: float = 0.0) -> dict:
    """Pack the LSTM matrices (or the named 2-D tensors) of a checkpoint and save a packed checkpoint.

    ``pattern`` chooses the sparsity pattern (:class:`sasim.combine.patterns.Pattern`): ``combine`` (column
    combining with ``alpha``, ``gamma``, ``rule``, ``policy``, ``section``, ``row_cap``), ``nm:N:M``,
    ``block:RxC`` (prunes ``sparsity`` of the blocks) or ``unstructured`` (prunes ``sparsity`` of the weights).

    With ``hw``, each tensor's statistics add ``tiles`` and ``tile_efficiency`` on that array, and
    ``alpha`` may not exceed its ``mux_fanin``. The saved state_dict holds the pruned dense weights (so any loader can use it), a mask per
    packed tensor, and the packed form (``<name>.packed_values/select/groups``); the metadata's
    ``packing`` entry records the parameters and per-tensor statistics.

    Returns
    -------
    dict
        ``{"packing": parameters, "tensors": {name: statistics}}``.
    """
    shape = Pattern.parse(pattern)
    params = dict(alpha=alpha, gamma=gamma, rule=rule, policy=policy, section=section, row_cap=row_cap)
    if shape.kind != "combine":
        fixed = shape.fixed_density
        params = dict(pattern=shape.name, sparsity=sparsity if fixed is None else 1 - fixed)
    elif sparsity:
        raise SasimError("column combining prunes only its conflicts; magnitude-prune first (sasim prune), or "
                         "choose the unstructured or block pattern for sparsity", param="sparsity")
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
            packed = pack_matrix(matrix, alpha, gamma, rule, policy, section, row_cap, mux_fanin=mux_fanin)
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
    if Path(out).suffix != ".pt":
        raise SasimError(f"out must be a .pt file, got {out}", param="out")
    save_checkpoint(out, new_state, model_config, vocab, **meta)
    return report
