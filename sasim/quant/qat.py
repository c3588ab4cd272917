"""Quantization-aware fine-tuning with the straight-through estimator (STE).

While enabled, every :class:`~sasim.lm.model.LSTMLayer` runs a step loop that rounds exactly where the array
and the vector unit round (:mod:`sasim.quant.fixed_point_lstm`): ``[W_ih | W_hh]`` (and ``W_hr``) per output row to
``weight_bits``, the stacked input ``[x_t; h_{t-1}]`` (and ``h`` before the projection) to ``act_bits`` with
activation scales frozen at calibration, and the vector unit's values to ``vector_bits`` when set. The
forward pass sees the quantized values; the backward pass treats rounding as the identity (STE), and
saturated activations pass no gradient (clipped STE). Masks of pruned models stay applied, so the
fine-tuning never regrows a weight. The scales used in training are the ones the quantized model keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sasim.lm.fit import Hook, fit
from sasim.quant.fixed_point_lstm import QuantConfig, lstm_cell_update, quantize_lstm
from sasim.quant.quantize import qmax


@dataclass
class FakeQuant:
    """What one layer rounds to during quantization-aware training."""

    cfg: QuantConfig
    input_scale: float
    projection_scale: float | None = None

    def forward(self, rnn, x: torch.Tensor, state):
        """The layer's forward pass with the array's rounding (the model calls this; it never imports quant)."""
        return fake_quant_lstm(rnn, x, state)


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return x + (q - x).detach()


def fake_quant_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` on its per-output-row symmetric grid (:func:`sasim.quant.quantize.quantize_weights`), STE."""
    top = qmax(bits)
    peak = w.detach().abs().amax(dim=1, keepdim=True)
    scale = torch.where(peak > 0, peak / top, torch.ones_like(peak))
    return _ste(w, torch.clamp(torch.round(w / scale), -top, top) * scale)


def fake_quant_input(x: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    """``x`` rounded to ``bits`` with a fixed ``scale`` and saturated; clipped STE."""
    top = qmax(bits) * scale
    clipped = torch.clamp(x, -top, top)
    return _ste(clipped, torch.round(clipped / scale) * scale)


def fake_quant_lstm(rnn, x: torch.Tensor, state):
    """The forward pass of ``rnn`` (an LSTMLayer with ``fake_quant`` set) with the array's rounding."""
    fq: FakeQuant = rnn.fake_quant
    cfg = fq.cfg
    weights = rnn.effective_weights(drop=False)
    w = fake_quant_rows(torch.cat(weights[:2], 1), cfg.weight_bits)
    if rnn.training and rnn.weight_drop > 0:  # DropConnect on the W_hh part, after rounding (as in training)
        w = torch.cat([w[:, : rnn.input_size], F.dropout(w[:, rnn.input_size:], p=rnn.weight_drop)], 1)
    w_hr = fake_quant_rows(weights[4], cfg.weight_bits) if rnn.proj_size else None
    bias = weights[2] + weights[3]
    if state is None:
        h = x.new_zeros(x.size(1), rnn.output_size)
        c = x.new_zeros(x.size(1), rnn.hidden_size)
    else:
        h, c = state[0][0], state[1][0]
    ys = []
    for t in range(x.size(0)):
        q = fake_quant_input(torch.cat([x[t], h], 1), fq.input_scale, cfg.act_bits)
        h, c = lstm_cell_update(q @ w.T + bias, c, cfg)
        if w_hr is not None:
            h = fake_quant_input(h, fq.projection_scale, cfg.act_bits) @ w_hr.T
        ys.append(h)
    return torch.stack(ys), (h[None], c[None])


def enable_fake_quant(model, cfg: QuantConfig, scales: list[dict]) -> None:
    """Make every LSTM layer of ``model`` run quantization-aware with these activation scales."""
    for rnn, scale in zip(model.rnns, scales):
        rnn.fake_quant = FakeQuant(cfg, scale["input"], scale["projection"])


def disable_fake_quant(model) -> None:
    for rnn in model.rnns:
        rnn.fake_quant = None


class _FakeQuantNote(Hook):
    def record(self, epoch: int, point: dict) -> str:
        return "with fake quantization"


_FAKE_QUANT_NOTE = _FakeQuantNote()


def quantization_aware_finetune(model, train_data: torch.Tensor, valid_data: torch.Tensor, train_cfg, cfg: QuantConfig,
                                scales: list[dict], epochs: int, lr: float | None = None,
                                show_progress: bool = True, log=print) -> tuple[list, dict]:
    """Fine-tune ``model`` in place with the array's rounding in the forward pass.

    Parameters
    ----------
    train_data, valid_data : torch.Tensor
        Batchified splits; ``train_cfg.max_train_tokens`` limits each epoch. ``valid_data`` None: no
        per-epoch validation (the caller scores the result anyway).
    cfg : QuantConfig
        Widths (and vector-unit precision) to train for.
    scales : list of dict
        The activation scales, as calibration derived them (:func:`sasim.quant.fixed_point_lstm.layer_scales` of
        :func:`sasim.quant.fixed_point_lstm.calibrate_lstm`'s layers); training keeps them, and so does the result.
    epochs : int
    lr : float, optional
        Adam learning rate (default: a tenth of ``train_cfg.lr``: fine-tuning).

    Returns
    -------
    (quantized layers, summary)
        The layers quantized from the fine-tuned weights with the training's scales, and the curve.
    """
    lr = train_cfg.lr * 0.1 if lr is None else lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=train_cfg.weight_decay)
    enable_fake_quant(model, cfg, scales)
    try:
        curve = fit(model, train_data, train_cfg, optimizer, epochs, lambda _: lr, valid_data,
                    hooks=[_FAKE_QUANT_NOTE], name="QAT", log=log, show_progress=show_progress)
    finally:
        disable_fake_quant(model)
    model.eval()
    return quantize_lstm(model, cfg, scales), {"scales": scales, "curve": curve, "lr": lr, "epochs": epochs}
