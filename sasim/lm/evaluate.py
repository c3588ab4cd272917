"""Evaluation as awd-lstm-lm computes it: mean cross-entropy per token, ``<eos>`` included.

bits per character = nats / ln 2 (character corpora); perplexity = exp(nats) (word corpora).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


@torch.no_grad()
def evaluate_loss(model, data: torch.Tensor, bptt: int = 100, forward=None, ranks=None) -> float:
    """Mean loss in nats per predicted token over a batchified split ``data`` of shape ``(T, B)``.

    ``forward(tokens, state) -> (logits, state)`` replaces the model's own forward (e.g. with quantized
    layers); the state is carried across BPTT chunks either way. With ``ranks`` (a
    :class:`sasim.lm.distributed.Ranks` of several processes) each rank scores its share of the streams and the
    sums are added over ranks: the same mean as one process.
    """
    if ranks is not None and ranks.active:
        total, count = ranks.sum(*_loss_sums(model, ranks.shard(data, exact=False), bptt, forward))
        return total / count
    total, count = _loss_sums(model, data, bptt, forward)
    return total / count


@torch.no_grad()
def _loss_sums(model, data: torch.Tensor, bptt: int, forward) -> tuple[float, int]:
    """Summed cross-entropy (nats) and predicted tokens over ``data``."""
    model.eval()
    forward = forward or model
    state = None
    total, count = 0.0, 0
    vocab = model.config.vocab_size
    for start in range(0, data.size(0) - 1, bptt):
        seq = min(bptt, data.size(0) - 1 - start)
        x, y = data[start : start + seq], data[start + 1 : start + 1 + seq]
        logits, state = forward(x, state)
        total += F.cross_entropy(logits.view(-1, vocab), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    return total, count


def metrics_from_loss(loss: float, level: str) -> dict:
    """``{"loss_nats", "bpc"}`` for character corpora, ``{"loss_nats", "ppl"}`` for word corpora."""
    if level == "char":
        return {"loss_nats": loss, "bpc": loss / LN2}
    return {"loss_nats": loss, "ppl": math.exp(loss)}
