"""LSTM layer matrices from a checkpoint, validated.

For layer ``l`` the array's matrix is ``[W_ih | W_hh]`` (``4H x (I + H)``, or ``4H x (I + P)`` with a
projection), acting on ``[x_t ; h_{t-1}]``; gate order is PyTorch's (i, f, g, o). A projection adds
``W_hr`` (``P x H``) each step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sasim.combine.packed import validate_matrix
from sasim.errors import SasimError
from sasim.workload.checkpoint import load_raw, to_sasim_state_dict


@dataclass
class LSTMLayerWeights:
    """One LSTM layer's weights as float32 numpy arrays (masks already applied)."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray  # b_ih + b_hh
    w_hr: np.ndarray | None = None

    @property
    def input_size(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.w_ih.shape[0] // 4

    @property
    def output_size(self) -> int:
        return self.w_hr.shape[0] if self.w_hr is not None else self.hidden_size

    @property
    def combined(self) -> np.ndarray:
        """``[W_ih | W_hh]``, the matrix the array holds."""
        return np.concatenate([self.w_ih, self.w_hh], axis=1)


@dataclass
class LSTMWorkload:
    """The LSTM stack of a checkpoint, plus its embedding, decoder and metadata when present."""

    layers: list
    embedding: np.ndarray | None
    vocab: list | None
    level: str | None
    raw: dict
    layout: str
    path: str


_LAYER_KEY = re.compile(r"^rnns\.(\d+)\.")


def _tensor(state, key, path):
    """A weight (2-D, validated) or a bias (1-D) of the state dict as float32 numpy."""
    t = state[key]
    arr = t.detach().float().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float32)
    if ".weight_" in key:
        return validate_matrix(arr, f"{path}: {key}")
    if arr.ndim != 1:
        raise SasimError(f"{path}: {key} must be a vector, got shape {arr.shape}")
    return arr


def layers_from_state_dict(state: dict, path: str = "checkpoint") -> list[LSTMLayerWeights]:
    """Build validated :class:`LSTMLayerWeights` from a state_dict in sasim's naming."""
    layers = []
    index = 0
    while f"rnns.{index}.weight_ih_l0" in state:
        p = f"rnns.{index}."
        for need in ("weight_hh_l0",):
            if p + need not in state:
                raise SasimError(f"{path}: layer {index} has weight_ih_l0 but no {need}")
        w_ih = _tensor(state, p + "weight_ih_l0", path)
        w_hh = _tensor(state, p + "weight_hh_l0", path)
        for kind, w in (("ih", w_ih), ("hh", w_hh)):
            mask = state.get(p + f"mask_{kind}")
            if mask is not None:
                w *= mask.float().numpy()
        four_h = w_ih.shape[0]
        if four_h % 4:
            raise SasimError(f"{path}: {p}weight_ih_l0 has {four_h} rows, not a multiple of 4 (gates i, f, g, o)")
        h = four_h // 4
        w_hr = None
        if p + "weight_hr_l0" in state:
            w_hr = _tensor(state, p + "weight_hr_l0", path)
            mask = state.get(p + "mask_hr")
            if mask is not None:
                w_hr *= mask.float().numpy()
            if w_hr.shape[1] != h:
                raise SasimError(f"{path}: {p}weight_hr_l0 has shape {w_hr.shape}, expected (P, {h})")
        out = w_hr.shape[0] if w_hr is not None else h
        if w_hh.shape != (four_h, out):
            raise SasimError(f"{path}: {p}weight_hh_l0 has shape {w_hh.shape}, expected ({four_h}, {out})")
        bias = np.zeros(four_h, dtype=np.float32)
        for b in ("bias_ih_l0", "bias_hh_l0"):
            if p + b in state:
                vec = _tensor(state, p + b, path).reshape(-1)
                if vec.shape != (four_h,):
                    raise SasimError(f"{path}: {p}{b} has {vec.shape[0]} entries, expected {four_h}")
                bias += vec
        if not np.isfinite(bias).all():
            raise SasimError(f"{path}: layer {index} biases hold NaN or Inf values; repair or retrain the checkpoint")
        if layers and w_ih.shape[1] != layers[-1].output_size:
            raise SasimError(f"{path}: layer {index} takes {w_ih.shape[1]} inputs but layer {index - 1} "
                             f"outputs {layers[-1].output_size}")
        layers.append(LSTMLayerWeights(w_ih=w_ih, w_hh=w_hh, bias=bias, w_hr=w_hr))
        index += 1
    if not layers:
        raise SasimError(f"{path} has no LSTM layers")
    beyond = sorted({int(m.group(1)) for k in state if isinstance(k, str) and (m := _LAYER_KEY.match(k))
                     and int(m.group(1)) >= index})
    if beyond:
        raise SasimError(f"{path}: LSTM layer {index} is missing but layer {beyond[0]} is present; layers must be "
                         "numbered 0, 1, 2, ... without gaps (re-save the complete model)")
    return layers


def load_lstm_workload(path) -> LSTMWorkload:
    """Load the LSTM matrices of a checkpoint (sasim, AWD-LSTM or nn.LSTM layout), never unpickling."""
    raw = load_raw(path)
    state, layout = to_sasim_state_dict(raw)
    layers = layers_from_state_dict(state, str(path))
    emb = state.get("encoder.weight")
    embedding = None
    if emb is not None:
        embedding = validate_matrix(emb.float().numpy(), f"{path}: encoder.weight")
        if embedding.shape[1] != layers[0].input_size:
            embedding = None  # an embedding of another width (e.g. a char-CNN front end): use synthetic inputs
    return LSTMWorkload(layers=layers, embedding=embedding, vocab=raw.get("vocab") if layout == "sasim" else None,
                        level=raw.get("level") if layout == "sasim" else None, raw=raw, layout=layout,
                        path=str(path))
