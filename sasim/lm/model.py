"""An AWD-LSTM-style language model (Merity, Keskar, Socher 2018), optionally with projections.

Embedding -> embedding dropout -> locked dropout -> stacked single-layer LSTMs (DropConnect on
``W_hh``, locked dropout between layers, optional projection ``W_hr`` per layer as in Jozefowicz
et al. 2016) -> locked dropout -> linear decoder (optionally tied to the embedding).

Parameter names per layer ``l`` are those of ``nn.LSTM``: ``rnns.l.weight_ih_l0``,
``rnns.l.weight_hh_l0``, ``rnns.l.bias_ih_l0``, ``rnns.l.bias_hh_l0`` and ``rnns.l.weight_hr_l0``.
Masks registered on a layer (``mask_ih``, ``mask_hh``, ``mask_hr``) are applied on every forward,
so pruned weights stay zero through dropout, weight decay and optimizer steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sasim.checks import check_float, check_int
from sasim.errors import SasimError
from sasim.workload.checkpoint_schema import layer_sizes


@dataclass
class ModelConfig:
    """Shape and regularisation of an :class:`LSTMLanguageModel`."""

    vocab_size: int
    emb_size: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    proj_size: int = 0
    tie_weights: bool = False
    dropout_e: float = 0.0
    dropout_h: float = 0.1
    dropout_i: float = 0.1
    dropout_o: float = 0.1
    weight_drop: float = 0.2

    def __post_init__(self):
        for name in ("vocab_size", "emb_size", "hidden_size", "num_layers"):
            check_int(name, getattr(self, name), 1)
        check_int("proj_size", self.proj_size, 0)
        if self.proj_size >= self.hidden_size:
            raise SasimError(f"proj_size must be smaller than hidden_size {self.hidden_size} (a projection "
                             f"shrinks the hidden state), got {self.proj_size}", param="proj_size")
        if not isinstance(self.tie_weights, bool):
            raise SasimError(f"tie_weights must be true or false, got {self.tie_weights!r}", param="tie_weights")
        for name in ("dropout_e", "dropout_h", "dropout_i", "dropout_o", "weight_drop"):
            check_float(name, getattr(self, name), 0.0, 1.0, high_open=True)

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_sizes(self) -> list[tuple[int, int, int]]:
        """``(input, hidden, projection)`` of each layer (projection 0 when absent).

        With weight tying, the last layer's output (its hidden size, or its projection when it has
        one) equals ``emb_size`` so that the decoder can share the embedding matrix.
        """
        return layer_sizes(self.to_dict())


class LockedDropout(nn.Module):
    """Variational dropout: one mask per sequence, shared over time. Input is ``(T, B, F)``."""

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or p == 0.0:
            return x
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
        return x * mask


def embedding_dropout(embed: nn.Embedding, words: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole rows (word types) of the embedding matrix, as in awd-lstm-lm."""
    weight = embed.weight
    if training and p > 0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(words, weight)


class LSTMLayer(nn.Module):
    """One single-layer LSTM with DropConnect on ``W_hh`` and an optional projection.

    Runs on torch's fused LSTM kernel with the (masked, dropped) weights passed explicitly.
    """

    def __init__(self, input_size: int, hidden_size: int, proj_size: int = 0, weight_drop: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.weight_drop = weight_drop
        out = proj_size or hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size, out))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * hidden_size))
        if proj_size:
            self.weight_hr_l0 = nn.Parameter(torch.empty(proj_size, hidden_size))
        k = hidden_size**-0.5
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def effective_weights(self, drop: bool = True) -> list[torch.Tensor]:
        """Weights as the forward pass uses them: masks applied, DropConnect on ``W_hh`` in training
        (unless ``drop`` is False)."""
        w_ih, w_hh = self.weight_ih_l0, self.weight_hh_l0
        if hasattr(self, "mask_ih"):
            w_ih = w_ih * self.mask_ih
        if hasattr(self, "mask_hh"):
            w_hh = w_hh * self.mask_hh
        if drop and self.training and self.weight_drop > 0:
            w_hh = F.dropout(w_hh, p=self.weight_drop, training=True)
        weights = [w_ih, w_hh, self.bias_ih_l0, self.bias_hh_l0]
        if self.proj_size:
            w_hr = self.weight_hr_l0
            if hasattr(self, "mask_hr"):
                w_hr = w_hr * self.mask_hr
            weights.append(w_hr)
        return weights

    #: set by :func:`sasim.quant.qat.enable_fake_quant`: the layer then runs quantization-aware (a step loop)
    fake_quant = None

    def forward(self, x: torch.Tensor, state):
        if self.fake_quant is not None:
            return self.fake_quant.forward(self, x, state)
        weights = self.effective_weights()
        if state is None:
            b = x.size(1)
            state = (x.new_zeros(1, b, self.output_size), x.new_zeros(1, b, self.hidden_size))
        # torch's fused kernel, the one nn.LSTM calls; it takes the weight list explicitly.
        out, h, c = torch._VF.lstm(x, state, weights, True, 1, 0.0, self.training, False, False)
        return out, (h, c)


class LSTMLanguageModel(nn.Module):
    """AWD-LSTM-style language model. Input and output are ``(T, B)`` / ``(T, B, V)``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Embedding(config.vocab_size, config.emb_size)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        self.rnns = nn.ModuleList(
            LSTMLayer(i, h, p, config.weight_drop) for i, h, p in config.layer_sizes()
        )
        out = self.rnns[-1].output_size
        self.decoder = nn.Linear(out, config.vocab_size)
        nn.init.zeros_(self.decoder.bias)
        if config.tie_weights:
            if out != config.emb_size:
                raise ValueError("weight tying needs the last layer's output size to equal emb_size")
            self.decoder.weight = self.encoder.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.lockdrop = LockedDropout()

    def forward(self, tokens: torch.Tensor, state=None):
        cfg = self.config
        x = embedding_dropout(self.encoder, tokens, cfg.dropout_e, self.training)
        x = self.lockdrop(x, cfg.dropout_i)
        new_state = []
        for layer, rnn in enumerate(self.rnns):
            x, s = rnn(x, None if state is None else state[layer])
            new_state.append(s)
            if layer != len(self.rnns) - 1:
                x = self.lockdrop(x, cfg.dropout_h)
        x = self.lockdrop(x, cfg.dropout_o)
        return self.decoder(x), new_state


def detach_state(state):
    """Cut the graph between BPTT segments, keeping the values (truncated BPTT)."""
    return [tuple(t.detach() for t in s) for s in state]
