"""Continue retraining a packed checkpoint with its masks and groups frozen (``sasim finetune``).

A ``sasim prune`` run ends with fine-tuning under frozen masks; this carries that phase on from the saved
checkpoint, for a longer budget or a lower learning rate, without pruning or regrouping anything: every
weight outside the packed cells stays zero, the groups and select indices are kept, and the packed values are
re-read from the trained weights.

A dense checkpoint is trained on with the same recipe and saved dense: the control that tells whether a packed
model's gain came from the recipe or would have come to the dense model too.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from sasim.checks import check_float, check_int
from sasim.combine.packed import LayerPacking
from sasim.combine.torch_api import ColumnCombiner
from sasim.errors import SasimError
from sasim.lm.distill import Distiller, load_teacher
from sasim.lm.distributed import Ranks, current
from sasim.lm.evaluate import evaluate_loss
from sasim.lm.fit import Hook, epoch_tokens, fit
from sasim.lm.loading import load_language_model
from sasim.lm.presets import train_config_of
from sasim.lm.prune import density_report, save_scored_packed
from sasim.lm.train import retraining_data
from sasim.report.json_report import write_json
from sasim.report.provenance import run_header
from sasim.workload.checkpoint import carried_metadata
from sasim.workload.layer_packing import stored_packings
from sasim.workload.lstm_weights import load_lstm_workload


def _freeze_masks(model, packed_layers: list[LayerPacking]) -> None:
    """Set each layer's masks to the occupied cells of its packed form (what the array holds)."""
    for rnn, layer in zip(model.rnns, packed_layers):
        keep = torch.from_numpy(layer.gates.unpack() != 0).float()
        masks = {"ih": keep[:, : rnn.input_size], "hh": keep[:, rnn.input_size:]}
        if layer.projection is not None:
            masks["hr"] = torch.from_numpy(layer.projection.unpack() != 0).float()
        for kind, mask in masks.items():
            if hasattr(rnn, f"mask_{kind}"):
                delattr(rnn, f"mask_{kind}")
            rnn.register_buffer(f"mask_{kind}", mask.contiguous())


_DROPOUT_RATES = ("dropout_e", "dropout_i", "dropout_h", "dropout_o", "weight_drop")


def _set_dropout(model, rates: dict) -> dict:
    """Set ``model``'s dropout rates (embedding, locked, DropConnect) to ``rates``; return the rates it had."""
    before = {name: getattr(model.config, name) for name in _DROPOUT_RATES}
    for name, value in rates.items():
        if not 0 <= value < 1:
            raise SasimError(f"dropout_scale makes {name} {value:g}; a dropout probability must stay below 1: use a "
                             "smaller scale", param="dropout_scale")
    for name, value in rates.items():
        setattr(model.config, name, value)
    for rnn in model.rnns:
        rnn.weight_drop = model.config.weight_drop
    return before


class _WeightAverage(Hook):
    """Polyak averaging from epoch ``average_from`` (1-based) on: the running mean of the weights over every
    optimizer step, scored on ``valid_data`` after each epoch (``valid_loss_averaged``)."""

    def __init__(self, model, average_from: int | None, valid_data, bptt: int, ranks: Ranks):
        self.model, self.average_from, self.valid_data, self.bptt, self.ranks = model, average_from, valid_data, bptt, ranks
        self.average = None

    def start_epoch(self, epoch: int) -> None:
        if self.average_from is not None and epoch + 1 == self.average_from:
            self.average = AveragedModel(self.model)

    def after_step(self, model) -> None:
        if self.average is not None:
            self.average.update_parameters(model)

    def record(self, epoch: int, point: dict) -> str | None:
        if self.average is None:
            return None
        point["valid_loss_averaged"] = evaluate_loss(self.average.module, self.valid_data, self.bptt, ranks=self.ranks)
        return f"weight average {point['valid_loss_averaged'] / math.log(2):.4f} bpc"


class _ResetTeacher(Hook):
    """The teacher's hidden state restarts with every epoch, as the student's does."""

    def __init__(self, distiller: Distiller):
        self.distiller = distiller

    def start_epoch(self, epoch: int) -> None:
        self.distiller.reset()


def finetune_packed(weights, data_dir, out, epochs: int = 1, lr: float | None = None, max_train_tokens=None,
                    device: str = "cpu", seed: int = 1, show_progress: bool = True, teacher=None,
                    distill_weight: float = 0.5, dropout_scale: float = 1.0, average_from: int | None = None) -> dict:
    """Fine-tune a packed checkpoint with masks and groups frozen; save it, scored on valid and test.

    Parameters
    ----------
    weights : str or Path
        A packed sasim checkpoint (``sasim prune`` or ``sasim combine``), or a dense one (trained on as a
        control, with no masks, and saved dense).
    data_dir : str or Path
        The corpus it was trained on.
    out : str or Path
        The packed checkpoint to write (its JSON summary goes beside it).
    epochs : int
        Fine-tuning epochs.
    lr : float, optional
        Adam learning rate (default: a tenth of the model's training rate, where ``sasim prune`` ends).
    max_train_tokens : int, optional
        Tokens per epoch (default: the whole training split).
    teacher : str or Path, optional
        A dense checkpoint to distill from (:mod:`sasim.lm.distill`), normally the model the student was
        pruned from.
    distill_weight : float
        Share of the distillation term in the loss when ``teacher`` is given.
    dropout_scale : float
        Multiplies every dropout rate while fine-tuning (a pruned model has less capacity to regularize; Han et
        al. 2015 scale dropout by the square root of the surviving fraction). The saved checkpoint keeps the
        original rates.
    average_from : int, optional
        From this epoch (1-based) on, keep the running mean of the weights over every optimizer step (Polyak
        averaging, as in ASGD and SWA) and save the mean instead of the last step's weights. The masks are
        frozen, so the mean has the same zeros.

    Returns
    -------
    dict
        The ``finetune`` summary: curve, tokens, seconds, lr, and ``eval`` (valid and test, with the saved weights).
    """
    ranks = current()
    check_int("epochs", epochs, 1)
    if average_from is not None and not 1 <= check_int("average_from", average_from, 1) <= epochs:
        raise SasimError(f"average_from must be an epoch between 1 and epochs ({epochs}), got {average_from}",
                         param="average_from")
    check_float("dropout_scale", dropout_scale, 0.0)
    check_float("distill_weight", distill_weight, 0.0, 1.0)
    if lr is not None:
        check_float("lr", lr, 0.0, low_open=True)
    model, raw = load_language_model(weights)
    if raw.get("quantization"):
        raise SasimError(f"{weights} is quantized; fine-tune the float checkpoint it came from")
    packed = (stored_packings(load_lstm_workload(weights)) or []) if raw.get("packing") else []
    if packed:
        _freeze_masks(model, packed)
    cfg = train_config_of(raw, seed, max_train_tokens)
    cfg.lr = cfg.lr * 0.1 if lr is None else lr
    check_float("lr", cfg.lr, 0.0, low_open=True)
    data = retraining_data(model, raw, data_dir, cfg, device, seed)
    train_data, valid_data = data["train"], data["valid"]
    distiller = Distiller(load_teacher(teacher, raw, data["device"]), distill_weight) if teacher else None
    original_dropout = _set_dropout(model, {name: getattr(model.config, name) * dropout_scale
                                            for name in _DROPOUT_RATES})
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    averaging = _WeightAverage(model, average_from, valid_data, cfg.bptt, ranks)
    hooks = [averaging] + ([_ResetTeacher(distiller)] if distiller is not None else [])
    t0 = time.time()
    curve = fit(model, train_data, cfg, optimizer, epochs, lambda _: cfg.lr, valid_data, hooks=hooks,
                loss_fn=distiller, name="finetune", log=print if show_progress else (lambda *_: None),
                show_progress=show_progress, ranks=ranks)
    average = averaging.average
    if average is not None:
        model.load_state_dict(average.module.state_dict())
    _set_dropout(model, original_dropout)  # the saved checkpoint keeps the rates it was trained with
    model.cpu().eval()
    if packed:
        ColumnCombiner.bake_masks(model)
        packed = ColumnCombiner.refill(model, packed)
    summary = {"source": str(weights), "epochs": epochs, "lr": cfg.lr, "curve": curve, "seconds": time.time() - t0,
               "teacher": str(teacher) if teacher else None, "distill_weight": distill_weight if teacher else None,
               "dropout_scale": dropout_scale, "average_from": average_from,
               "tokens": epoch_tokens(train_data, cfg) * epochs,
               "density": density_report(model)}
    meta = carried_metadata(raw)
    meta["finetune"] = meta.get("finetune", []) + [summary]
    results = None
    if ranks.is_main:
        results = save_scored_packed(out, model, packed, raw, meta, summary, data_dir, data["corpus"])
        write_json(Path(out).with_suffix(".json"), run_header(finetune=summary, data=str(data_dir)))
    ranks.barrier()
    return {**summary, "eval": results, "packed": bool(packed)}
