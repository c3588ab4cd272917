"""Quantized checkpoints: a sasim checkpoint plus the ``quantization`` entry that fixes its integer arithmetic.

The float weights are stored as trained; the integers the array holds are derived from them
deterministically (per-row scales, round half to even), with the activation scales stored here (those
of calibration, or the frozen ones quantization-aware training used). ``sasim eval`` and ``sasim run
--data`` on a fixed-point config score a quantized checkpoint with exactly this arithmetic.
"""

from __future__ import annotations

from sasim.errors import SasimError
from sasim.quant.fixed_point_lstm import QuantConfig, layer_scales, quantize_lstm, score_quantized


def quantization_meta(cfg: QuantConfig, qlayers, **extra) -> dict:
    """The ``quantization`` metadata entry: the config, the activation scales, and ``extra`` (e.g. QAT)."""
    return {"config": cfg.to_dict(), "scales": layer_scales(qlayers), **extra}


def stored_quantization(model, raw: dict):
    """``(QuantConfig, quantized layers)`` of a quantized checkpoint, or None for a float one."""
    meta = raw.get("quantization")
    if not meta:
        return None
    try:
        cfg = QuantConfig(**meta["config"])
        scales = meta["scales"]
    except (KeyError, TypeError) as exc:
        raise SasimError(f"the checkpoint's quantization entry is malformed ({exc}); re-run sasim quantize") from None
    return cfg, quantize_lstm(model, cfg, scales)


def evaluate_quantized_checkpoint(model, raw: dict, data_dir, split: str = "test", batch_size: int = 10,
                                  bptt: int = 100, corpus=None) -> dict:
    """Score a quantized checkpoint with its stored integer arithmetic (as :func:`evaluate_model` does float)."""

    cfg, qlayers = stored_quantization(model, raw)
    scored = score_quantized(model, raw, cfg, data_dir, split, qlayers=qlayers, corpus=corpus, batch_size=batch_size,
                             bptt=bptt)
    return {**scored["quantized"], "tokens": scored["tokens"], "split": scored["split"], "quantization": cfg.to_dict()}
