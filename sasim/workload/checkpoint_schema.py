"""The schema of sasim's own checkpoint format, validated on load like the hardware config.

A sasim checkpoint is a dict::

    {"format": "sasim-lm", "format_version": 1,
     "model_config": {} or {vocab_size, emb_size, hidden_size, num_layers, proj_size, tie_weights,
                      dropout_e, dropout_h, dropout_i, dropout_o, weight_drop},
     "vocab": [str, ...],                 # unique symbols in id order, len == vocab_size ([] with {})
     "state_dict": {str: torch.Tensor},   # real floating-point or integer tensors
     "level": "char" | "word",            # optional
     "quantization": {"config": {...}, "scales": [{"input": s, "projection": s | None}, ...]},  # optional
     ...}                                 # further metadata (train, packing, eval, ...) is carried as is

:func:`validate_sasim_checkpoint` reports every problem at once, each with its key path, in one
:class:`~sasim.errors.SasimError`. Tensor shapes against ``model_config`` are checked where the model is
built (:func:`sasim.lm.loading.load_language_model`), since they follow from the layer sizes.
"""

from __future__ import annotations

import math
import numbers

import torch

from sasim.errors import SasimError

#: model_config fields: name -> (kind, minimum, maximum, required). The language model's ModelConfig has exactly
#: these fields (tests/workload/test_checkpoint_schema.py holds the two together).
MODEL_CONFIG_FIELDS = {
    "vocab_size": ("int", 1, 2**31 - 1, True),
    "emb_size": ("int", 1, 2**20, False),
    "hidden_size": ("int", 1, 2**20, False),
    "num_layers": ("int", 1, 1024, False),
    "proj_size": ("int", 0, 2**20, False),
    "tie_weights": ("bool", None, None, False),
    "dropout_e": ("prob", 0.0, 1.0, False),
    "dropout_h": ("prob", 0.0, 1.0, False),
    "dropout_i": ("prob", 0.0, 1.0, False),
    "dropout_o": ("prob", 0.0, 1.0, False),
    "weight_drop": ("prob", 0.0, 1.0, False),
}
QUANT_CONFIG_FIELDS = ("weight_bits", "act_bits", "acc_bits", "calibration", "percentile", "vector_bits",
                       "vector_frac_bits")


def layer_sizes(model_config: dict) -> list[tuple[int, int, int]]:
    """``(input, hidden, projection)`` of each LSTM layer of a (validated) ``model_config`` (projection 0 when
    absent). With weight tying, the last layer's output (its hidden size, or its projection when it has one)
    equals ``emb_size`` so that the decoder can share the embedding matrix. Defaults are the model's."""
    emb, hidden = model_config.get("emb_size", 128), model_config.get("hidden_size", 512)
    layers, proj_size = model_config.get("num_layers", 2), model_config.get("proj_size", 0)
    tie = model_config.get("tie_weights", False)
    sizes, inp = [], emb
    for layer in range(layers):
        hid, proj = hidden, proj_size
        if layer == layers - 1 and tie:
            if proj:
                proj = emb
            else:
                hid = emb
        sizes.append((inp, hid, proj))
        inp = proj or hid
    return sizes


def validate_sasim_checkpoint(raw: dict, path) -> None:
    """Check a loaded sasim-format checkpoint; raise one SasimError listing every problem with its key path."""
    problems: list[str] = []
    _model_config(raw.get("model_config"), problems)
    _vocab(raw.get("vocab"), raw.get("model_config"), problems)
    _state_dict(raw.get("state_dict"), problems)
    level = raw.get("level")
    if level is not None and level not in ("char", "word"):
        problems.append(f"level: must be 'char' or 'word', got {level!r}")
    if raw.get("quantization") is not None:
        _quantization(raw["quantization"], problems)
    if problems:
        if len(problems) == 1:
            raise SasimError(f"{path} is not a valid sasim checkpoint: {problems[0]}; re-save it with sasim "
                             "(sasim train / prune / quantize) or repair that entry")
        lines = "\n  ".join(problems)
        raise SasimError(f"{path} is not a valid sasim checkpoint ({len(problems)} problems; re-save it with sasim "
                         f"or repair these entries):\n  {lines}")


def _model_config(cfg, problems: list) -> None:
    if cfg is None:
        problems.append("model_config: missing (the layer sizes are needed to build the model)")
        return
    if not isinstance(cfg, dict):
        problems.append(f"model_config: must be a mapping, got {type(cfg).__name__}")
        return
    if not cfg:
        return  # a weights-only checkpoint (sasim combine of a plain state_dict): no language model to build
    for key in cfg:
        if key not in MODEL_CONFIG_FIELDS:
            problems.append(f"model_config.{key}: unknown key (known: {', '.join(MODEL_CONFIG_FIELDS)})")
    for key, (kind, low, high, required) in MODEL_CONFIG_FIELDS.items():
        if key not in cfg:
            if required:
                problems.append(f"model_config.{key}: required field is missing")
            continue
        value = cfg[key]
        if kind == "bool":
            if not isinstance(value, bool):
                problems.append(f"model_config.{key}: must be true or false, got {value!r}")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                problems.append(f"model_config.{key}: must be an integer, got {value!r}")
            elif not low <= value <= high:
                problems.append(f"model_config.{key}: must be in {low}..{high}, got {value}")
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                problems.append(f"model_config.{key}: must be a finite number, got {value!r}")
            elif not low <= value < high:
                problems.append(f"model_config.{key}: a dropout probability must be in [0, 1), got {value}")
    hidden, proj = cfg.get("hidden_size", 512), cfg.get("proj_size", 0)
    if (isinstance(hidden, numbers.Integral) and isinstance(proj, numbers.Integral) and not isinstance(proj, bool)
            and proj and proj >= hidden):
        problems.append(f"model_config.proj_size: a projection must be smaller than hidden_size {hidden}, got {proj}")


def _vocab(vocab, cfg, problems: list) -> None:
    if vocab is None:
        problems.append("vocab: missing (the symbols in id order are needed to score text)")
        return
    if not isinstance(vocab, (list, tuple)) or not all(isinstance(s, str) for s in vocab):
        problems.append("vocab: must be a list of strings")
        return
    seen, dupes = set(), []
    for s in vocab:
        if s in seen:
            dupes.append(s)
        seen.add(s)
    if dupes:
        shown = ", ".join(repr(s) for s in dupes[:5])
        problems.append(f"vocab: {len(dupes)} symbol(s) appear twice ({shown}); each symbol needs one id")
    size = cfg.get("vocab_size") if isinstance(cfg, dict) else None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size != len(vocab):
        problems.append(f"vocab: holds {len(vocab)} symbols but model_config.vocab_size is {size}")


def _state_dict(state, problems: list) -> None:
    if state is None:
        problems.append("state_dict: missing (the model's tensors)")
        return
    if not isinstance(state, dict):
        problems.append(f"state_dict: must be a mapping of names to tensors, got {type(state).__name__}")
        return
    if not state:
        problems.append("state_dict: empty")
    for key, value in state.items():
        if not isinstance(key, str):
            problems.append(f"state_dict[{key!r}]: keys must be tensor names (strings), got {type(key).__name__}")
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"state_dict.{key}: must be a tensor, got {type(value).__name__}")
        elif value.is_complex():
            problems.append(f"state_dict.{key}: complex tensor; weights must be real (the imaginary part would be "
                            "lost)")
        elif value.dtype == torch.bool and not key.split(".")[-1].startswith("mask_"):
            problems.append(f"state_dict.{key}: boolean tensor where a number tensor is expected")
    for key, value in state.items():  # masks must match the weights they mask
        if isinstance(key, str) and isinstance(value, torch.Tensor) and ".mask_" in key:
            prefix, kind = key.rsplit(".mask_", 1)
            weight = state.get(f"{prefix}.weight_{kind}_l0")
            if not isinstance(weight, torch.Tensor):
                problems.append(f"state_dict.{key}: a mask without its weight {prefix}.weight_{kind}_l0")
            elif tuple(value.shape) != tuple(weight.shape):
                problems.append(f"state_dict.{key}: shape {tuple(value.shape)} differs from its weight's "
                                f"{tuple(weight.shape)}")


def _quantization(meta, problems: list) -> None:
    if not isinstance(meta, dict):
        problems.append(f"quantization: must be a mapping, got {type(meta).__name__}")
        return
    cfg = meta.get("config")
    if not isinstance(cfg, dict):
        problems.append("quantization.config: missing or not a mapping")
    else:
        for key in cfg:
            if key not in QUANT_CONFIG_FIELDS:
                problems.append(f"quantization.config.{key}: unknown key")
    scales = meta.get("scales")
    if not isinstance(scales, list):
        problems.append("quantization.scales: missing or not a list (one entry per LSTM layer)")
        return
    for i, entry in enumerate(scales):
        if not isinstance(entry, dict) or "input" not in entry:
            problems.append(f"quantization.scales[{i}]: must be a mapping with 'input' (and 'projection')")
            continue
        for name in ("input", "projection"):
            value = entry.get(name)
            if name == "projection" and value is None:
                continue
            if not _positive_finite(value):
                problems.append(f"quantization.scales[{i}].{name}: an activation scale must be a finite number > 0, "
                                f"got {value!r}")


def _positive_finite(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and value > 0)
