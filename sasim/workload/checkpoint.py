"""Safe checkpoint loading and saving.

Nothing is ever unpickled: ``.pt`` files are read with ``torch.load(..., weights_only=True)`` and
``.safetensors`` files with safetensors. Three layouts are recognised:

* ``sasim``: sasim's own dict ``{"format": "sasim-lm", "model_config", "vocab", "state_dict", ...}``.
* ``awd``: an AWD-LSTM state_dict (``rnns.0.module.weight_hh_l0_raw``, or ``weight_hh_l0`` as saved
  after evaluation, plus ``encoder.weight`` / ``decoder.weight``).
* ``nn.LSTM``: any state_dict with ``<prefix>weight_ih_l<k>`` / ``weight_hh_l<k>`` keys.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from sasim.combine.packed import PackedMatrix, RowBlocks
from sasim.errors import SasimError
from sasim.outputs import check_output_file, save_torch
from sasim.workload.checkpoint_schema import layer_sizes, validate_sasim_checkpoint

FORMAT = "sasim-lm"
FORMAT_VERSION = 1

_RESAVE_HINT = (
    "re-save it as a state_dict: model = torch.load(path, weights_only=False)[0] in a trusted session, "
    "then torch.save(model.state_dict(), 'model_state.pt')"
)


def load_raw(path) -> dict:
    """Load a checkpoint file into a dict without unpickling arbitrary objects.

    Raises
    ------
    SasimError
        Missing file, unreadable file, or a pickled object that is not a plain dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise SasimError(f"checkpoint {path} not found; give an existing .pt or .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open  # only safetensors checkpoints need it

        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
                meta = f.metadata() or {}
        except Exception as exc:  # safetensors raises several types
            raise SasimError(f"{path} is not a valid safetensors file ({exc})") from None
        if "sasim" in meta:
            try:
                obj = json.loads(meta["sasim"])
            except ValueError as exc:
                raise SasimError(f"{path}: the safetensors metadata entry 'sasim' is not valid JSON ({exc}); "
                                 "re-save the checkpoint") from None
            if not isinstance(obj, dict):
                raise SasimError(f"{path}: the safetensors metadata entry 'sasim' must be a JSON object, not a "
                                 f"{type(obj).__name__}; re-save the checkpoint")
            obj["state_dict"] = tensors
            return _validated(obj, path)
        return tensors
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (found {found.group(1)})" if found else ""
            raise SasimError(
                f"{path} holds pickled Python objects{what}, e.g. a whole model, which sasim never unpickles; "
                f"{_RESAVE_HINT}") from None
        raise SasimError(f"{path} is not a readable torch checkpoint; pass a file written by "
                         "torch.save(state_dict) or a .safetensors file") from None
    except Exception as exc:
        raise SasimError(f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from None
    if isinstance(obj, (list, tuple)):
        raise SasimError(f"{path} holds a {type(obj).__name__}, not a state_dict; {_RESAVE_HINT}")
    if not isinstance(obj, dict):
        raise SasimError(f"{path} holds a {type(obj).__name__}, not a dict of tensors; {_RESAVE_HINT}")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict) and "format" not in obj:
        obj = obj["state_dict"]  # a common training-script wrapper
    return _validated(obj, path)


def _validated(obj: dict, path) -> dict:
    """``obj`` after the schema check of its layout: sasim's own format in full, any other dict for tensor keys."""
    if obj.get("format") == FORMAT:
        validate_sasim_checkpoint(obj, path)
    else:
        bad = [k for k, v in obj.items() if isinstance(v, torch.Tensor) and v.is_complex()]
        if bad:
            raise SasimError(f"{path}: tensor {bad[0]} is complex; weights must be real (the imaginary part would "
                             "be lost)")
    return obj


def carried_metadata(raw: dict) -> dict:
    """The metadata a derived checkpoint (packed, pruned, quantized, shipped) keeps from its source: everything
    but the format, the model config, the vocabulary and the tensors, and but ``eval``, whose scores belong
    to the source's weights, not the derived ones."""
    return {k: v for k, v in raw.items()
            if k not in ("format", "format_version", "model_config", "vocab", "state_dict", "eval")}


def save_checkpoint(path, state_dict: dict, model_config: dict, vocab: list, **extra) -> Path:
    """Save a sasim checkpoint (tensors plus plain metadata; loadable with ``weights_only=True``).

    Parameters
    ----------
    path : str or Path
        Output file, ``.pt``.
    state_dict : dict
        Model tensors.
    model_config : dict
        :class:`sasim.lm.model.ModelConfig` as a dict.
    vocab : list of str
        The vocabulary in id order.
    **extra
        Further plain metadata: ``level``, ``train`` (summary), ``packing``, ...
    """
    path = check_output_file(path, "checkpoint", make_parents=True)
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": dict(model_config),
        "vocab": list(vocab),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
    }
    obj.update(extra)
    return save_torch(path, obj)  # atomic: a killed run leaves the previous file, never half of a new one


_AWD_KEY = re.compile(r"^rnns\.(\d+)\.module\.(weight_ih_l0|weight_hh_l0|bias_ih_l0|bias_hh_l0|weight_hr_l0)(_raw)?$")
_SASIM_KEY = re.compile(r"^rnns\.(\d+)\.(weight_ih_l0|weight_hh_l0|bias_ih_l0|bias_hh_l0|weight_hr_l0)$")
_NNLSTM_KEY = re.compile(r"^(.*?)(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)$")


def detect_layout(obj: dict) -> str:
    """Name the layout of a loaded checkpoint: ``sasim``, ``awd`` or ``nn.LSTM``."""
    if obj.get("format") == FORMAT:
        return "sasim"
    keys = [k for k in obj if isinstance(k, str)]
    if any(_AWD_KEY.match(k) for k in keys):
        return "awd"
    if any(_NNLSTM_KEY.match(k) for k in keys):
        return "nn.LSTM"
    sample = ", ".join(keys[:6]) or "no keys"
    raise SasimError(
        f"checkpoint has no LSTM weights (keys: {sample}{', ...' if len(keys) > 6 else ''}); sasim reads "
        "nn.LSTM state_dicts (weight_ih_l0, weight_hh_l0, ...), AWD-LSTM state_dicts (rnns.0.module.weight_hh_l0_raw) "
        "and its own checkpoints written by `sasim train`"
    )


def packed_to_tensors(prefix: str, packed: PackedMatrix | RowBlocks) -> dict:
    """The packed form as tensors for a checkpoint: values, select, group_cols; row blocks (block pruning) as
    ``prefix.packed_block_rows`` (each block's rows) and each block's tensors under ``prefix.blockJ``."""
    if isinstance(packed, RowBlocks):
        out = {f"{prefix}.packed_block_rows": torch.tensor([b.shape[0] for b in packed.blocks], dtype=torch.int64)}
        for j, block in enumerate(packed.blocks):
            out.update(packed_to_tensors(f"{prefix}.block{j}", block))
        return out
    return {f"{prefix}.packed_values": torch.from_numpy(packed.values),
            f"{prefix}.packed_select": torch.from_numpy(packed.select.astype(np.int16)),
            f"{prefix}.packed_groups": torch.from_numpy(packed.group_cols)}


def has_packed(state: dict, prefix: str) -> bool:
    """Whether ``state`` holds a packed form under ``prefix`` (one matrix, or row blocks)."""
    return f"{prefix}.packed_values" in state or f"{prefix}.packed_block_rows" in state


def stored_packed(state: dict, prefix: str, shape: tuple) -> PackedMatrix | RowBlocks | None:
    """The packed form saved under ``prefix`` (values, select indices, groups; or row blocks of them), or None
    if there is none."""
    if f"{prefix}.packed_block_rows" in state:
        rows = [int(r) for r in state[f"{prefix}.packed_block_rows"].tolist()]
        if sum(rows) != shape[0] or min(rows, default=0) < 1:
            raise SasimError(f"the row blocks stored under {prefix} cover {sum(rows)} rows, not {shape[0]}; "
                             "re-create the checkpoint with sasim combine")
        return RowBlocks([stored_packed(state, f"{prefix}.block{j}", (r, shape[1])) for j, r in enumerate(rows)])
    if f"{prefix}.packed_values" not in state:
        return None
    return PackedMatrix(values=state[f"{prefix}.packed_values"].float().numpy(),
                        select=state[f"{prefix}.packed_select"].numpy().astype(np.int16),
                        group_cols=state[f"{prefix}.packed_groups"].numpy().astype(np.int64), shape=shape)


def _unpack_compact(state: dict, model_config: dict) -> None:
    """Fill in the dense LSTM matrices a compact packed checkpoint leaves out (it stores each matrix once,
    in packed form: ``scripts/ship_packed_model.py``) by unpacking them."""
    if not any(k.endswith(".packed_values") for k in state) or not model_config:
        return
    sizes = layer_sizes(model_config)  # model_config was validated on load

    def unpack(prefix, shape):
        return torch.from_numpy(stored_packed(state, prefix, shape).unpack())

    for i, (inp, hidden, proj) in enumerate(sizes):
        out = proj or hidden
        if f"rnns.{i}.weight_ih_l0" not in state and has_packed(state, f"rnns.{i}.gates"):
            dense = unpack(f"rnns.{i}.gates", (4 * hidden, inp + out))
            state[f"rnns.{i}.weight_ih_l0"], state[f"rnns.{i}.weight_hh_l0"] = dense[:, :inp], dense[:, inp:]
        if proj and f"rnns.{i}.weight_hr_l0" not in state and has_packed(state, f"rnns.{i}.weight_hr_l0"):
            state[f"rnns.{i}.weight_hr_l0"] = unpack(f"rnns.{i}.weight_hr_l0", (proj, hidden))


def tensor_state_dict(obj: dict) -> tuple[dict, str]:
    """Like :func:`to_sasim_state_dict`, but a checkpoint without LSTM weights is not an error: its tensors are
    returned under their own names, with layout ``"tensors"`` (for packing named tensors of any model)."""
    if obj.get("format") == FORMAT or any(isinstance(k, str) and (_AWD_KEY.match(k) or _NNLSTM_KEY.match(k))
                                          for k in obj):
        return to_sasim_state_dict(obj)
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}, "tensors"


def to_sasim_state_dict(obj: dict) -> tuple[dict, str]:
    """Return ``(state_dict in sasim's naming, layout)`` for any recognised layout.

    sasim names layer ``l``'s tensors ``rnns.l.weight_ih_l0`` etc. A multi-layer ``nn.LSTM`` (keys
    ``weight_ih_l1``...) becomes one sasim layer per torch layer. Non-LSTM tensors (embedding,
    decoder) keep their names with any module prefix removed.
    """
    layout = detect_layout(obj)
    if layout == "sasim":
        state = dict(obj["state_dict"])
        _unpack_compact(state, obj.get("model_config") or {})
        return state, layout
    out = {}
    lstm_keys = {}  # (module prefix, torch layer) -> [(key, kind)]
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        if layout == "awd":
            m = _AWD_KEY.match(key)
            if m:
                lstm_keys.setdefault(("rnns.", int(m.group(1))), []).append((key, m.group(2)[:-3], bool(m.group(3))))
                continue
        else:
            if key.endswith("_reverse"):
                raise SasimError("bidirectional LSTMs are not supported: a language model runs forward only")
            m = _NNLSTM_KEY.match(key)
            if m:
                lstm_keys.setdefault((m.group(1), int(m.group(3))), []).append((key, m.group(2), False))
                continue
        out[".".join(key.split(".")[-2:])] = value
    # layers in numeric order (safetensors and sorted dicts give 0, 1, 10, 11, 2, ...); stacks of several
    # nn.LSTM modules follow each other in the order their first key appears; a gap in a stack's numbering is
    # an error, never a silent renumbering
    prefixes = list(dict.fromkeys(prefix for prefix, _ in lstm_keys))
    index = 0
    for prefix in prefixes:
        numbers = sorted(n for p, n in lstm_keys if p == prefix)
        if numbers != list(range(len(numbers))):
            missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
            where = f"{prefix}" if layout == "awd" else f"{prefix or '(no prefix) '}"
            raise SasimError(f"checkpoint's LSTM layers are numbered {numbers} under {where!r}: layer "
                             f"{missing[0] if missing else numbers[0]} is missing; layers must be numbered 0, 1, 2, ... "
                             "without gaps (re-save the complete model)")
        for number in numbers:
            for key, kind, raw_weight in lstm_keys[(prefix, number)]:
                name = f"rnns.{index}.{kind}_l0"
                if raw_weight or name not in out:  # prefer the *_raw tensor (AWD's undropped weight)
                    out[name] = obj[key]
            index += 1
    return out, layout
