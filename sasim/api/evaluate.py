"""Job: score a checkpoint on a corpus split (float, or a quantized checkpoint with its integer arithmetic)."""

from __future__ import annotations

from sasim.lm.loading import evaluate_model, load_language_model
from sasim.quant.checkpoint import evaluate_quantized_checkpoint


def evaluate_checkpoint(path, data_dir, split: str = "test", batch_size: int = 10, bptt: int = 100) -> dict:
    """Score a checkpoint on a corpus split: ``{"bpc" or "ppl", "loss_nats", "tokens", "split"}``.

    A quantized checkpoint (``sasim quantize --out``) is scored with its stored integer arithmetic."""
    model, raw = load_language_model(path)
    if raw.get("quantization"):
        return evaluate_quantized_checkpoint(model, raw, data_dir, split, batch_size, bptt)
    return evaluate_model(model, raw, data_dir, split, batch_size, bptt)
