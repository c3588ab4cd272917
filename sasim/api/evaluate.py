"""Job: score a checkpoint on a corpus split (float, or a quantized checkpoint with its integer arithmetic).

    from sasim.api.evaluate import Evaluate, evaluate

    evaluate(Evaluate(weights="models/ptb-char-small.pt", data="../shared/data/ptb-char", split="test"))["bpc"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sasim.checks import check_choice, check_int
from sasim.lm.loading import evaluate_model, load_language_model
from sasim.quant.checkpoint import evaluate_quantized_checkpoint


@dataclass(frozen=True)
class Evaluate:
    """What ``sasim eval`` scores: a checkpoint on one split of a corpus directory.

    Parameters
    ----------
    weights : str or Path
        A sasim checkpoint (float, packed or quantized) or an AWD-LSTM/nn.LSTM one.
    data : str or Path
        The corpus directory (``train.txt``, ``valid.txt``, ``test.txt``).
    split : {"valid", "test"}
    batch_size, bptt : int
        Evaluation streams and window, as awd-lstm-lm evaluates (10 and 100 by default).
    """

    weights: str | Path
    data: str | Path
    split: str = "test"
    batch_size: int = 10
    bptt: int = 100

    def __post_init__(self):
        check_choice("split", self.split, ("valid", "test"))
        check_int("batch_size", self.batch_size, 1)
        check_int("bptt", self.bptt, 1)


def evaluate(spec: Evaluate) -> dict:
    """Score a checkpoint: ``{"bpc" or "ppl", "loss_nats", "tokens", "split"}``.

    A quantized checkpoint (``sasim quantize --out``) is scored with its stored integer arithmetic."""
    model, raw = load_language_model(spec.weights)
    if raw.get("quantization"):
        return evaluate_quantized_checkpoint(model, raw, spec.data, spec.split, spec.batch_size, spec.bptt)
    return evaluate_model(model, raw, spec.data, spec.split, spec.batch_size, spec.bptt)
