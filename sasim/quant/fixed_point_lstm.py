"""Quantized LSTM layers: the integer arithmetic of the array, in torch for evaluation speed and in the
cycle-level simulator for ground truth.

Per layer: ``[W_ih | W_hh]`` (and ``W_hr``) quantized per output row to ``weight_bits``; one activation
scale for the stacked input ``[x_t; h_{t-1}]`` (and one for ``h`` before the projection), calibrated on
sample tokens. Each step the input vector is quantized (round half to even, saturated), the array
accumulates exact integer products, and the vector unit rescales, adds the biases and does the cell
update in float32, or in fixed point with ``vector_bits`` (``vector_frac_bits`` of them fractional) when the
config says so. The torch path sums in float64, exact for integers below 2**53; it equals the
simulator's integers whenever no partial sum leaves ``acc_bits`` (checked up front from the worst case,
so that an overflow is reported rather than silently differing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sasim.checks import check_choice, check_float, check_int
from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.lm.corpus import encode_with_vocab, load_corpus
from sasim.lm.evaluate import evaluate_loss, metrics_from_loss
from sasim.lm.train import batchify
from sasim.quant.quantize import QuantizedMatrix, calibrate_scale, qmax, quantize_weights
from sasim.sim.cycle import simulate_fixed_point
from sasim.sim.mapping import map_matrix


@dataclass
class QuantConfig:
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    calibration: str = "minmax"
    percentile: float = 99.99
    vector_bits: int = 0  # 0: the vector unit computes in float32
    vector_frac_bits: int | None = None  # default: vector_bits - 5 (sign, 4 integer bits: range +-16)

    def __post_init__(self):
        check_int("weight_bits", self.weight_bits, 2, 32)
        check_int("act_bits", self.act_bits, 2, 32)
        check_int("acc_bits", self.acc_bits, 2, 62)
        if self.acc_bits < self.weight_bits + self.act_bits - 1:
            raise SasimError(f"acc_bits {self.acc_bits} cannot hold one product of {self.weight_bits}-bit weights and "
                             f"{self.act_bits}-bit activations ({self.weight_bits + self.act_bits - 1} bits); widen "
                             "acc_bits", param="acc_bits")
        check_choice("calibration", self.calibration, ("minmax", "percentile"))
        check_float("percentile", self.percentile, 0.0, 100.0, low_open=True)
        check_int("vector_bits", self.vector_bits, 0, 32)
        if self.vector_bits:
            if not 4 <= self.vector_bits <= 32:
                raise SasimError(f"vector_bits must be 0 (float32) or 4..32, got {self.vector_bits}")
            if self.vector_frac_bits is None:
                self.vector_frac_bits = max(self.vector_bits - 5, 0)
            if not 0 <= self.vector_frac_bits < self.vector_bits:
                raise SasimError(f"vector_frac_bits must be in 0..{self.vector_bits - 1}, got {self.vector_frac_bits}")

    def to_dict(self) -> dict:
        return asdict(self)


def vector_round(t: torch.Tensor, cfg: QuantConfig) -> torch.Tensor:
    """A value of the vector unit at its precision: unchanged in float32 (``vector_bits`` 0), else rounded half
    to even onto the grid ``2**-vector_frac_bits`` and saturated to ``vector_bits``. Under autograd the
    rounding is a straight-through estimator (gradient 1), which quantization-aware training relies on."""
    if not cfg.vector_bits:
        return t
    step = 2.0 ** -cfg.vector_frac_bits
    top = qmax(cfg.vector_bits) * step
    rounded = torch.clamp(torch.round(t / step) * step, -top, top)
    return t + (rounded - t).detach() if t.requires_grad else rounded


def lstm_cell_update(gates: torch.Tensor, c: torch.Tensor, cfg: QuantConfig):
    """The vector unit's LSTM cell update from the gate pre-activations ``(B, 4H)``; returns ``(h, c)``.
    Every intermediate value passes through :func:`vector_round`."""
    def v(t):
        return vector_round(t, cfg)

    i, f, g, o = v(gates).chunk(4, 1)
    c = v(v(torch.sigmoid(f)) * c + v(torch.sigmoid(i)) * v(torch.tanh(g)))
    h = v(v(torch.sigmoid(o)) * v(torch.tanh(c)))
    return h, c


@dataclass
class QuantizedLayer:
    gates: QuantizedMatrix
    input_scale: float
    projection: QuantizedMatrix | None = None
    projection_scale: float | None = None


def worst_case_acc_bits(q: QuantizedMatrix, act_bits: int) -> int:
    """Accumulator bits that no partial sum of this matrix can exceed (sum of |weights| x largest input)."""
    peak = int(np.abs(q.q).sum(axis=1).max()) * qmax(act_bits)
    return int(peak).bit_length() + 1


@torch.no_grad()
def calibrate_lstm(model, tokens: torch.Tensor, cfg: QuantConfig) -> list[QuantizedLayer]:
    """Quantize every LSTM layer of an eval-mode :class:`LSTMLanguageModel` from calibration ``tokens`` (T, B)."""
    model.eval()
    x = model.encoder(tokens)
    scales = []
    for rnn in model.rnns:
        out, _ = rnn(x, None)
        h_prev = torch.cat([torch.zeros_like(out[:1]), out[:-1]])
        stacked = torch.cat([x, h_prev], dim=2).double().cpu().numpy()
        scale = {"input": calibrate_scale(stacked, cfg.act_bits, cfg.calibration, cfg.percentile), "projection": None}
        if rnn.proj_size:
            # h before the projection: recompute the cell outputs of this pass
            h_cells = _cell_outputs(rnn, x)
            scale["projection"] = calibrate_scale(h_cells.cpu().numpy(), cfg.act_bits, cfg.calibration, cfg.percentile)
        scales.append(scale)
        x = out
    return quantize_lstm(model, cfg, scales)


@torch.no_grad()
def quantize_lstm(model, cfg: QuantConfig, scales: list[dict]) -> list[QuantizedLayer]:
    """Quantize every LSTM layer's weights (per output row) with given activation scales
    (``[{"input": s, "projection": s or None}]`` per layer, as :func:`calibrate_lstm` derives them or a
    quantized checkpoint stores them). Refuses an accumulator that the worst case could overflow."""
    if len(scales) != len(model.rnns):
        raise SasimError(f"{len(scales)} activation scales for {len(model.rnns)} LSTM layers")
    layers = []
    for rnn, scale in zip(model.rnns, scales):
        weights = rnn.effective_weights()
        gates = quantize_weights(torch.cat(weights[:2], 1).double().cpu().numpy(), cfg.weight_bits)
        layer = QuantizedLayer(gates, _activation_scale(scale, "input"))
        if rnn.proj_size:
            layer.projection = quantize_weights(weights[4].double().cpu().numpy(), cfg.weight_bits)
            layer.projection_scale = _activation_scale(scale, "projection")
        for q in (layer.gates, layer.projection):
            if q is not None and worst_case_acc_bits(q, cfg.act_bits) > cfg.acc_bits:
                raise SasimError(f"acc_bits {cfg.acc_bits} can overflow: these weights need up to "
                                 f"{worst_case_acc_bits(q, cfg.act_bits)} bits in the worst case; widen acc_bits")
        layers.append(layer)
    return layers


def _activation_scale(scale, name: str) -> float:
    """A stored activation scale, which must be a finite number > 0 (NaN, 0 or a negative scale would score a
    wrong number silently)."""
    value = scale.get(name) if isinstance(scale, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SasimError(f"activation scale '{name}' must be a finite number > 0, got {value!r}; re-run "
                         "sasim quantize to calibrate it")
    return float(value)


def layer_scales(qlayers: list[QuantizedLayer]) -> list[dict]:
    """The activation scales of quantized layers, as :func:`quantize_lstm` takes them."""
    return [{"input": q.input_scale, "projection": q.projection_scale} for q in qlayers]


_FLOAT_VECTOR_UNIT = QuantConfig()  # vector_bits 0: the float32 cell update


def _cell_outputs(rnn, x):
    """The cell outputs ``h`` before the projection, in float32, for calibrating the projection's input."""
    w = rnn.effective_weights()
    h = x.new_zeros(x.size(1), rnn.output_size)
    c = x.new_zeros(x.size(1), rnn.hidden_size)
    cells = []
    for t in range(x.size(0)):
        hc, c = lstm_cell_update(x[t] @ w[0].T + h @ w[1].T + w[2] + w[3], c, _FLOAT_VECTOR_UNIT)
        cells.append(hc)
        h = hc @ w[4].T
    return torch.stack(cells)


def _quantize_input(v: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    top = qmax(bits)
    return torch.clamp(torch.round(v.double() / scale), -top, top)  # torch.round: half to even


def _quantized_stack(model, qlayers: list[QuantizedLayer], x: torch.Tensor, cfg: QuantConfig, state, product):
    """The LSTM stack's steps with integer products: ``product(layer, "gates" | "proj", q)`` returns the
    accumulators (float64, ``(B, N)``) of the quantized input ``q``; everything else is shared, so the torch
    and simulator paths differ only there."""
    outs = x
    new_state = []
    for li, (rnn, ql) in enumerate(zip(model.rnns, qlayers)):
        bias = (rnn.bias_ih_l0 + rnn.bias_hh_l0).float()
        ws = torch.from_numpy(ql.gates.scales)
        steps, batch = outs.shape[:2]
        if state is None:
            h = outs.new_zeros(batch, rnn.output_size)
            c = outs.new_zeros(batch, rnn.hidden_size)
        else:
            h, c = state[li]
        ys = []
        for t in range(steps):
            qx = _quantize_input(torch.cat([outs[t], h], 1), ql.input_scale, cfg.act_bits)
            gates = (product(li, "gates", qx) * ws[None, :] * ql.input_scale).float() + bias
            h, c = lstm_cell_update(gates, c, cfg)
            if ql.projection is not None:
                qh = _quantize_input(h, ql.projection_scale, cfg.act_bits)
                h = (product(li, "proj", qh) * torch.from_numpy(ql.projection.scales)[None, :]
                     * ql.projection_scale).float()
            ys.append(h)
        outs = torch.stack(ys)
        new_state.append((h, c))
    return outs, new_state


@torch.no_grad()
def quantized_lstm_forward(model, qlayers: list[QuantizedLayer], x: torch.Tensor, cfg: QuantConfig,
                           state=None, return_state: bool = False):
    """The LSTM stack with the array's integer arithmetic; ``x`` is (T, B, I) embeddings; returns (T, B, out)
    (and the final ``[(h, c)]`` per layer with ``return_state``, to carry across BPTT chunks)."""
    weights = [{"gates": _exact_product_weights(q.gates, cfg.act_bits),
                "proj": None if q.projection is None else _exact_product_weights(q.projection, cfg.act_bits)}
               for q in qlayers]

    def product(li, which, q):
        w = weights[li][which]
        return (q.to(w.dtype) @ w.T).double()

    outs, new_state = _quantized_stack(model, qlayers, x, cfg, state, product)
    return (outs, new_state) if return_state else outs


def _exact_product_weights(q: QuantizedMatrix, act_bits: int) -> torch.Tensor:
    """The integer weights as float32 when no partial sum can exceed 2**24 (float32 then adds integers
    exactly, in any order: 3x faster), else as float64 (exact below 2**53)."""
    peak = int(np.abs(q.q).sum(axis=1).max()) * qmax(act_bits)
    return torch.from_numpy(q.q).to(torch.float32 if peak <= 2**24 else torch.float64)


@torch.no_grad()
def evaluate_quantized(model, qlayers: list[QuantizedLayer], cfg: QuantConfig, data: torch.Tensor,
                       bptt: int = 100) -> float:
    """Mean loss in nats per token over a batchified split (awd-lstm-lm convention), with the quantized LSTM
    layers; the embedding and the decoder stay float32 (they are not on the array)."""

    def forward(tokens, state):
        outs, state = quantized_lstm_forward(model, qlayers, model.encoder(tokens), cfg, state, return_state=True)
        return model.decoder(outs), state

    return evaluate_loss(model, data, bptt, forward)


def _int_packed(q: QuantizedMatrix):
    n, k = q.q.shape
    return PackedMatrix(values=q.q.astype(np.int64), select=np.zeros((n, k), np.int8),
                        group_cols=np.arange(k, dtype=np.int64)[:, None], shape=(n, k))


@torch.no_grad()
def simulate_quantized_lstm(model, qlayers: list[QuantizedLayer], x: torch.Tensor, cfg: QuantConfig, hw,
                            timing: str = "sasim"):
    """:func:`quantized_lstm_forward` with every integer product computed by the cycle-level simulator.

    Returns ``(outputs (T, B, out), overflows)``; the vector unit's work is the same code as the evaluation
    path's, so the two agree bit for bit when the integers do.
    """

    matrices = []
    for q in qlayers:
        layer = {}
        for which, qm in (("gates", q.gates), ("proj", q.projection)):
            if qm is not None:
                packed = _int_packed(qm)
                layer[which] = (packed, map_matrix(packed, hw, batch=x.shape[1]))
        matrices.append(layer)
    overflows = [0]

    def product(li, which, q):
        packed, tm = matrices[li][which]
        acc, _, over = simulate_fixed_point(packed, q.numpy().astype(np.int64), tm, q.shape[0], cfg.acc_bits, timing)
        overflows[0] += over
        return torch.from_numpy(acc).double()

    outs, _ = _quantized_stack(model, qlayers, x, cfg, None, product)
    return outs, overflows[0]


def calibration_batch(ids: np.ndarray, tokens: int, length: int = 8) -> torch.Tensor:
    """Calibration tokens ``(length, tokens // length)``: the first ``tokens`` of ``ids`` (rounded down to a
    multiple of ``length``) as side-by-side sequences of ``length`` tokens, each run from a zero state."""
    usable = (min(tokens, len(ids)) // length) * length
    if usable == 0:
        raise SasimError(f"calibration needs at least {length} tokens, got {min(tokens, len(ids))}")
    return torch.from_numpy(ids[:usable].reshape(-1, length).T.copy())


def score_quantized(model, raw: dict, cfg: QuantConfig, data_dir, split: str = "valid", calib_tokens: int = 20_000,
                    eval_tokens: int | None = None, compare_float: bool = False, qlayers=None, corpus=None,
                    batch_size: int = 10, bptt: int = 100) -> dict:
    """Calibrate on the training split's first ``calib_tokens`` and score ``split`` with the quantized LSTM layers
    (or score the given ``qlayers``, e.g. from quantization-aware training or a quantized checkpoint, without
    calibrating). ``corpus``: the already loaded corpus of ``data_dir``.

    Returns ``{"quantized": metrics, "float32": metrics (with compare_float), "tokens", "split", "layers"}``,
    metrics as :func:`sasim.lm.evaluate.metrics_from_loss` gives them, on the same batchified tokens.
    """

    if corpus is None:
        corpus = load_corpus(data_dir, level=raw.get("level"))
    ids = encode_with_vocab(corpus, raw["vocab"])
    if qlayers is None:
        qlayers = calibrate_lstm(model, calibration_batch(ids["train"], calib_tokens), cfg)
    data = batchify(ids[split][:eval_tokens] if eval_tokens else ids[split], batch_size)
    level = raw.get("level", corpus.level)
    result = {"quantized": metrics_from_loss(evaluate_quantized(model, qlayers, cfg, data, bptt), level),
              "tokens": int((data.size(0) - 1) * data.size(1)),
              "split": split + (f"[:{eval_tokens}]" if eval_tokens else ""), "layers": qlayers}
    if compare_float:
        result["float32"] = metrics_from_loss(evaluate_loss(model, data, bptt), level)
    return result
