"""Continue retraining a packed checkpoint with its masks and groups frozen (``sasim finetune``).

A ``sasim prune`` run ends with fine-tuning under frozen masks; this carries that phase on from the saved
checkpoint, for a longer budget or a lower learning rate, without pruning or regrouping anything: every
weight outside the packed cells stays zero, the groups and select indices are kept, and the packed values are
re-read from the trained weights.
"""

from __future__ import annotations

import math
import time

import torch

from sasim.errors import SasimError


def _freeze_masks(model, packed_layers: list[dict]) -> None:
    """Set each layer's masks to the occupied cells of its packed form (what the array holds)."""
    for rnn, layer in zip(model.rnns, packed_layers):
        keep = torch.from_numpy(layer["gates"].unpack() != 0).float()
        for kind, part in (("ih", keep[:, : rnn.input_size]), ("hh", keep[:, rnn.input_size:])):
            if hasattr(rnn, f"mask_{kind}"):
                delattr(rnn, f"mask_{kind}")
            rnn.register_buffer(f"mask_{kind}", part.contiguous())
        if "proj" in layer:
            if hasattr(rnn, "mask_hr"):
                delattr(rnn, "mask_hr")
            rnn.register_buffer("mask_hr", torch.from_numpy(layer["proj"].unpack() != 0).float())


def finetune_packed(weights, data_dir, out, epochs: int = 1, lr: float | None = None, max_train_tokens=None,
                    device: str = "cpu", seed: int = 1, show_progress: bool = True) -> dict:
    """Fine-tune a packed checkpoint with masks and groups frozen; save it, scored on valid and test.

    Parameters
    ----------
    weights : str or Path
        A packed sasim checkpoint (``sasim prune`` or ``sasim combine``).
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

    Returns
    -------
    dict
        The ``finetune`` summary: curve, tokens, seconds, lr, and ``eval`` (valid and test, with the saved weights).
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from sasim.combine.torch_api import ColumnCombiner
    from sasim.lm.evaluate import evaluate_loss
    from sasim.lm.loading import load_language_model
    from sasim.lm.presets import train_config_of
    from sasim.lm.prune import density_report, save_scored_packed
    from sasim.lm.train import epoch_tokens, retraining_data, train_epoch
    from sasim.report.json_report import write_json
    from sasim.report.provenance import run_header
    from sasim.workload.checkpoint import carried_metadata
    from sasim.workload.lstm import load_lstm_workload
    from sasim.workload.packing import stored_packings

    if epochs < 1:
        raise SasimError(f"--epochs must be at least 1, got {epochs}")
    model, raw = load_language_model(weights)
    packings = stored_packings(load_lstm_workload(weights)) if raw.get("packing") else None
    if packings is None:
        raise SasimError(f"{weights} is not packed: `sasim finetune` continues retraining a packed checkpoint "
                         "(from `sasim prune` or `sasim combine`); prune a dense one with `sasim prune`")
    if raw.get("quantization"):
        raise SasimError(f"{weights} is quantized; fine-tune the float packed checkpoint it came from")
    packed = [{"gates": p.gates, **({"proj": p.projection} if p.projection is not None else {})} for p in packings]
    _freeze_masks(model, packed)
    cfg = train_config_of(raw, seed, max_train_tokens)
    cfg.lr = cfg.lr * 0.1 if lr is None else lr
    if not cfg.lr > 0:
        raise SasimError(f"--lr must be positive, got {cfg.lr}")
    data = retraining_data(model, raw, data_dir, cfg, device, seed)
    train_data, valid_data = data["train"], data["valid"]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve, t0 = [], time.time()
    for epoch in range(epochs):
        with tqdm(total=epoch_tokens(train_data, cfg), desc=f"finetune {epoch + 1}/{epochs}",
                  unit="tok", unit_scale=True, disable=not show_progress, mininterval=2.0) as bar:
            loss = train_epoch(model, train_data, cfg, optimizer, bar)
        valid = evaluate_loss(model, valid_data, cfg.bptt)
        curve.append({"epoch": epoch + 1, "lr": cfg.lr, "train_loss": loss, "valid_loss": valid})
        if show_progress:
            print(f"finetune epoch {epoch + 1}: train {loss / math.log(2):.4f} bpc, valid {valid / math.log(2):.4f} bpc")
    model.cpu().eval()
    ColumnCombiner.bake_masks(model)
    packed = ColumnCombiner.refill(model, packed)
    summary = {"source": str(weights), "epochs": epochs, "lr": cfg.lr, "curve": curve, "seconds": time.time() - t0,
               "tokens": epoch_tokens(train_data, cfg) * epochs,
               "density": density_report(model)}
    meta = carried_metadata(raw)
    meta["finetune"] = meta.get("finetune", []) + [summary]
    results = save_scored_packed(out, model, packed, raw, meta, summary, data_dir, data["corpus"])
    write_json(Path(out).with_suffix(".json"), run_header(finetune=summary, data=str(data_dir)))
    return {**summary, "eval": results}
