"""Packing every matrix of a workload or checkpoint (column combining on the fly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sasim.combine.pack import pack_matrix
from sasim.combine.packed import PackedMatrix, RowBlocks
from sasim.errors import SasimError
from sasim.hw.config import HardwareConfig
from sasim.sim.lstm import LayerPacking
from sasim.workload.checkpoint import (carried_metadata, load_raw, save_checkpoint, tensor_state_dict,
                                       to_sasim_state_dict)
from sasim.workload.lstm import LSTMWorkload, layers_from_state_dict


def pack_workload(workload: LSTMWorkload, hw: HardwareConfig | None, alpha: int, gamma: float, rule: str = "prune",
                  policy: str = "paper", section: int = 256, row_cap: int | None = None,
                  mix_ih_hh: bool = True, per_gate: bool = False) -> list[LayerPacking]:
    """Pack every layer's ``[W_ih | W_hh]`` (and ``W_hr``) with the same parameters.

    ``mix_ih_hh=False`` keeps groups from mixing ``W_ih`` and ``W_hh`` columns (a boundary at ``I``).
    ``per_gate=True`` groups each gate's ``H`` rows (i, f, g, o) separately: four row blocks with
    groups of their own, each its own matrix product on the array.
    """
    fanin = hw.array.mux_fanin if hw is not None else None
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


def packed_to_tensors(prefix: str, packed: PackedMatrix) -> dict:
    """The packed form as tensors for a checkpoint: values, select, group_cols."""
    return {f"{prefix}.packed_values": torch.from_numpy(packed.values),
            f"{prefix}.packed_select": torch.from_numpy(packed.select.astype(np.int16)),
            f"{prefix}.packed_groups": torch.from_numpy(packed.group_cols)}


def combine_checkpoint(path, out, alpha: int, gamma: float, rule: str = "prune", policy: str = "paper",
                       section: int = 256, row_cap: int | None = None, tensors=None, mux_fanin: int | None = None,
                       hw: HardwareConfig | None = None) -> dict:
    """Pack the LSTM matrices (or the named 2-D tensors) of a checkpoint and save a packed checkpoint.

    With ``hw``, each tensor's statistics add ``tiles`` and ``tile_efficiency`` on that array, and
    ``alpha`` may not exceed its ``mux_fanin``. The saved state_dict holds the pruned dense weights (so any loader can use it), a mask per
    packed tensor, and the packed form (``<name>.packed_values/select/groups``); the metadata's
    ``packing`` entry records the parameters and per-tensor statistics.

    Returns
    -------
    dict
        ``{"packing": parameters, "tensors": {name: statistics}}``.
    """
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
    params = dict(alpha=alpha, gamma=gamma, rule=rule, policy=policy, section=section, row_cap=row_cap)
    if hw is not None:
        mux_fanin = hw.array.mux_fanin if mux_fanin is None else min(mux_fanin, hw.array.mux_fanin)
    report = {"source": str(path), "packing": params, "tensors": {}}
    new_state = dict(state)
    for key, members in groups_of.items():
        mats = [state[m].detach().float().numpy() for m in members]
        packed = pack_matrix(np.concatenate(mats, axis=1), alpha, gamma, rule, policy, section, row_cap,
                             mux_fanin=mux_fanin)
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
        st = dict(packed.stats)
        st["shape"] = list(packed.shape)
        report["tensors"][key] = {k: st[k] for k in ("shape", "groups", "group_sizes", "nonzeros_before",
                                                     "nonzeros_after", "pruned_fraction", "packing_efficiency")}
        if hw is not None:
            from sasim.sim.mapping import map_matrix

            tiles = map_matrix(packed, hw).tiles
            report["tensors"][key].update(hw=hw.name, tiles=tiles,
                                          tile_efficiency=packed.nonzeros / (tiles * hw.array.rows * hw.array.cols))
    meta = carried_metadata(raw) if layout == "sasim" else {}
    meta["packing"] = report
    model_config = raw.get("model_config", {}) if layout == "sasim" else {}
    vocab = raw.get("vocab", []) if layout == "sasim" else []
    if Path(out).suffix != ".pt":
        raise SasimError(f"--out must be a .pt file, got {out}")
    save_checkpoint(out, new_state, model_config, vocab, **meta)
    return report


def stored_packed(state: dict, prefix: str, shape: tuple) -> PackedMatrix | None:
    """The packed form saved under ``prefix`` (values, select indices, groups), or None if there is none."""
    if f"{prefix}.packed_values" not in state:
        return None
    return PackedMatrix(values=state[f"{prefix}.packed_values"].float().numpy(),
                        select=state[f"{prefix}.packed_select"].numpy().astype(np.int16),
                        group_cols=state[f"{prefix}.packed_groups"].numpy().astype(np.int64), shape=shape)


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
    import re

    packed = {k[: -len(".packed_values")] for k in state if k.endswith(".packed_values")}
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
