"""Truncated-BPTT training of :class:`~sasim.lm.model.LSTMLanguageModel` (awd-lstm-lm conventions).

The hidden state is carried across batches and detached between them; Adam with weight decay,
gradient-norm clipping, LR divided by ``lr_gamma`` at each milestone epoch, explicit seeds. A
checkpoint is written after every epoch (the latest, for ``--resume``) and whenever validation
improves (the best, at ``out``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sasim.checks import check_device
from sasim.errors import SasimError
from sasim.lm.corpus import Corpus, encode_with_vocab, load_corpus
from sasim.lm.distributed import Ranks, current, local_device
from sasim.lm.fit import Hook, fit
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.lm.presets import TrainConfig
from sasim.report.json_report import write_json
from sasim.report.provenance import run_header
from sasim.workload.checkpoint import load_raw, save_checkpoint

LN2 = math.log(2.0)


def batchify(ids: np.ndarray, batch_size: int, device="cpu") -> torch.Tensor:
    """Cut a token stream into ``batch_size`` parallel streams: shape ``(len // batch_size, batch_size)``."""
    n = len(ids) // batch_size
    if n < 2:
        raise SasimError(f"split of {len(ids)} tokens is too short for batch size {batch_size}")
    return torch.from_numpy(ids[: n * batch_size].reshape(batch_size, n).T.copy()).to(device)


def resolve_device(device: str | None) -> torch.device:
    """``cpu`` by default; ``cuda`` when asked for (error if absent); ``auto`` takes a GPU when there is one."""
    if device in (None, "cpu"):
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device("device", device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SasimError("device cuda asked for, but torch sees no GPU here; use cpu", param="device")
    return torch.device(device)


def build_model(cfg: TrainConfig, vocab_size: int) -> LSTMLanguageModel:
    mc = ModelConfig(
        vocab_size=vocab_size, emb_size=cfg.emb_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
        proj_size=cfg.proj_size, tie_weights=cfg.tie_weights, dropout_e=cfg.dropout_e, dropout_h=cfg.dropout_h,
        dropout_i=cfg.dropout_i, dropout_o=cfg.dropout_o, weight_drop=cfg.weight_drop,
    )
    return LSTMLanguageModel(mc)


def retraining_data(model, raw: dict, data_dir, cfg: TrainConfig, device="cpu", seed: int = 1,
                    validate: bool = True) -> dict:
    """Set up retraining of a loaded checkpoint's ``model`` (``raw``: its metadata) on its corpus: seed torch,
    move the model to ``device``, and batchify the splits with the checkpoint's vocabulary.

    Returns ``{"device", "corpus", "ids" (token ids per split), "train" (batchified), "valid" (batchified,
    None without ``validate``)}``.
    """
    ranks = current()
    torch.manual_seed(seed + ranks.rank)  # under torchrun each rank draws its own dropout masks
    dev = local_device(resolve_device(device), ranks)
    model.to(dev)
    corpus = load_corpus(data_dir, level=raw.get("level"))
    ids = encode_with_vocab(corpus, raw["vocab"])
    return {"device": dev, "corpus": corpus, "ids": ids, "train": batchify(ids["train"], cfg.batch_size, dev),
            "valid": batchify(ids["valid"], cfg.eval_batch_size, dev) if validate else None}


def lr_schedule(cfg: TrainConfig) -> Callable[[int], float]:
    """The preset's learning rate per epoch: ``lr`` divided by ``1/lr_gamma`` at each milestone."""
    return lambda epoch: cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)


class _TrainCheckpoints(Hook):
    """Saves the best-validation checkpoint at ``out`` and the resumable state at ``OUT.latest.pt``."""

    def __init__(self, out: Path, latest: Path, model, optimizer, summary: dict, meta: dict, ranks: Ranks):
        self.out, self.latest, self.model, self.optimizer = out, latest, model, optimizer
        self.summary, self.meta, self.ranks = summary, meta, ranks
        self.rng_states = []

    def record(self, epoch: int, point: dict) -> str:
        point["train_bpc"] = point["train_loss"] / LN2
        point["valid_bpc"] = point["valid_loss"] / LN2
        self.rng_states = self.ranks.gather(torch.get_rng_state())  # every rank's, for an exact resume
        return f"{point['valid_loss']:.4f} nats, ppl {math.exp(point['valid_loss']):.2f}"

    def save(self, epochs_done: int, curve: list) -> None:
        summary, valid_loss = self.summary, curve[-1]["valid_loss"]
        summary["seconds"] += curve[-1]["seconds"]
        if summary["best_valid_loss"] is None or valid_loss < summary["best_valid_loss"]:
            summary["best_valid_loss"] = valid_loss
            summary["best_epoch"] = epochs_done
            save_checkpoint(self.out, self.model.state_dict(), train=summary, **self.meta)
        ranks = {"rng_per_rank": self.rng_states} if self.ranks.active else {}
        save_checkpoint(self.latest, self.model.state_dict(), train=summary, optimizer=self.optimizer.state_dict(),
                        rng=self.rng_states[0], **ranks, **self.meta)


def _resume_state(latest: Path, corpus: Corpus, model) -> dict | None:
    """The training checkpoint at ``latest``, checked against this run's corpus and model (None: none there)."""
    if not latest.is_file():
        return None
    ck = load_raw(latest)
    if ck.get("format") != "sasim-lm" or "train" not in ck:
        raise SasimError(f"{latest} is not a sasim training checkpoint; delete it to start afresh")
    if list(ck["vocab"]) != list(corpus.vocab):
        raise SasimError(f"cannot resume from {latest}: it was trained on another vocabulary ({len(ck['vocab'])} "
                         f"symbols, this corpus has {corpus.vocab_size}); resume on the same corpus, or start "
                         "afresh without --resume (another --out)")
    differ = {k: (v, ck["model_config"].get(k)) for k, v in model.config.to_dict().items()
              if ck["model_config"].get(k) != v}
    if differ:
        said = ", ".join(f"{k} {new} (checkpoint: {old})" for k, (new, old) in differ.items())
        raise SasimError(f"cannot resume from {latest}: the model differs from the one it holds: {said}; "
                         "resume with the same preset and options, or start afresh (another --out)")
    return ck


def train(corpus: Corpus, cfg: TrainConfig, out, device="cpu", resume: bool = False, preset: str = "",
          show_progress: bool = True, precision: str = "fp32") -> dict:
    """Train a model on ``corpus`` and save the best-validation checkpoint at ``out``.

    Under ``torchrun`` every rank calls this; they train one model on their shares of the batch
    (:mod:`sasim.lm.distributed`) and rank 0 alone writes ``out``, ``OUT.latest.pt`` and ``OUT.json``.

    Returns
    -------
    dict
        The training summary stored in the checkpoint (curve, times, best valid loss).
    """
    out = Path(out)
    latest = out.with_name(out.stem + ".latest.pt")
    ranks = current()
    dev = local_device(resolve_device(device), ranks)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg, corpus.vocab_size).to(dev)
    if ranks.active:  # one initialization (DDP broadcasts rank 0's), but each rank draws its own dropout masks
        torch.manual_seed(cfg.seed + ranks.rank)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    summary = {"preset": preset, "train_config": cfg.to_dict(), "curve": [], "best_valid_loss": None,
               "device": str(dev), "torch_threads": torch.get_num_threads(), "seconds": 0.0}
    if ranks.active:
        summary["processes"] = ranks.world_size
    ck = ranks.broadcast(_resume_state(latest, corpus, model) if resume and ranks.is_main else None)
    if ck is not None:
        model.load_state_dict(ck["state_dict"])
        if ck.get("optimizer"):
            optimizer.load_state_dict(ck["optimizer"])
        summary = ck["train"]
        rngs = (ck.get("rng_per_rank") or [ck["rng"]]) if "rng" in ck else []
        if len(rngs) == ranks.world_size:
            torch.set_rng_state(rngs[ranks.rank])
        elif rngs:  # resumed on another process count: fresh, distinct dropout streams
            torch.manual_seed(cfg.seed + ranks.rank + 1000 * len(summary["curve"]))
    train_data = batchify(corpus.splits["train"], cfg.batch_size, dev)
    valid_data = batchify(corpus.splits["valid"], cfg.eval_batch_size, dev)
    meta = dict(model_config=model.config.to_dict(), vocab=corpus.vocab, level=corpus.level)
    saver = _TrainCheckpoints(out, latest, model, optimizer, summary, meta, ranks)
    fit(model, train_data, cfg, optimizer, cfg.epochs, lr_schedule(cfg), valid_data, hooks=[saver],
        first_epoch=len(summary["curve"]), curve=summary["curve"], show_progress=show_progress,
        precision=precision, ranks=ranks)
    if ranks.is_main:
        _finish(out, corpus, model, summary)
    ranks.barrier()
    return summary


def _finish(out: Path, corpus: Corpus, model, summary: dict) -> None:
    """Give the best checkpoint the whole run's summary (curve, time), not a snapshot; write ``OUT.json``."""
    if out.is_file():
        best = load_raw(out)
        extra = {k: v for k, v in best.items() if k not in ("format", "format_version", "model_config", "vocab",
                                                              "state_dict", "train")}
        save_checkpoint(out, best["state_dict"], best["model_config"], best["vocab"], train=summary, **extra)
    write_json(out.with_suffix(".json"), run_header(checkpoint=str(out), data=corpus.path, level=corpus.level,
                                                    model_config=model.config.to_dict(), train=summary))
