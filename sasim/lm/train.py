"""Truncated-BPTT training of :class:`~sasim.lm.model.LSTMLanguageModel` (awd-lstm-lm conventions).

The hidden state is carried across batches and detached between them; Adam with weight decay,
gradient-norm clipping, LR divided by ``lr_gamma`` at each milestone epoch, explicit seeds. A
checkpoint is written after every epoch (the latest, for ``--resume``) and whenever validation
improves (the best, at ``out``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sasim.checks import check_device
from sasim.errors import SasimError
from sasim.lm.corpus import Corpus
from sasim.lm.model import LSTMLanguageModel, ModelConfig, detach_state
from sasim.lm.presets import TrainConfig
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
    from sasim.lm.corpus import encode_with_vocab, load_corpus

    torch.manual_seed(seed)
    dev = resolve_device(device)
    model.to(dev)
    corpus = load_corpus(data_dir, level=raw.get("level"))
    ids = encode_with_vocab(corpus, raw["vocab"])
    return {"device": dev, "corpus": corpus, "ids": ids, "train": batchify(ids["train"], cfg.batch_size, dev),
            "valid": batchify(ids["valid"], cfg.eval_batch_size, dev) if validate else None}


def epoch_positions(data: torch.Tensor, cfg: TrainConfig) -> int:
    """Positions per stream that one training epoch over ``data`` (``(T, B)``) covers: the whole split, or
    ``cfg.max_train_tokens`` worth of it (at least one BPTT chunk). Its tokens are this times ``B``."""
    limit = data.size(0) - 1
    if cfg.max_train_tokens:
        limit = min(limit, max(cfg.bptt, cfg.max_train_tokens // data.size(1)))
    return limit


def epoch_tokens(data: torch.Tensor, cfg: TrainConfig) -> int:
    """Tokens one training epoch over ``data`` (``(T, B)``) trains on."""
    return epoch_positions(data, cfg) * data.size(1)


def epoch_steps(data: torch.Tensor, cfg: TrainConfig) -> int:
    """Optimizer steps (BPTT chunks) of one training epoch over ``data``."""
    return math.ceil(epoch_positions(data, cfg) / cfg.bptt)


def train_epoch(model, data: torch.Tensor, cfg: TrainConfig, optimizer, progress=None, step_hook=None,
                loss_fn=None) -> float:
    """One pass over ``data`` (``(T, B)``); returns the mean training cross-entropy in nats per token.

    ``step_hook(model)``, when given, runs after every optimizer step (the pruning loop re-applies
    its masks there; fine-tuning updates its weight average there). ``loss_fn(x, y, logits)``, when given,
    returns ``(loss to minimize, cross-entropy to report)`` instead of plain cross-entropy (distillation).
    """
    model.train()
    state = None
    total, count = 0.0, 0
    limit = epoch_positions(data, cfg)
    vocab = model.config.vocab_size
    for start in range(0, limit, cfg.bptt):
        seq = min(cfg.bptt, limit - start)
        x, y = data[start : start + seq], data[start + 1 : start + 1 + seq]
        if state is not None:
            state = detach_state(state)
        optimizer.zero_grad(set_to_none=True)
        logits, state = model(x, state)
        if loss_fn is None:
            objective = loss = F.cross_entropy(logits.view(-1, vocab), y.reshape(-1))
        else:
            objective, loss = loss_fn(x, y, logits)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        if step_hook is not None:
            step_hook(model)
        total += loss.item() * seq
        count += seq
        if progress is not None:
            progress.update(seq * data.size(1))
            progress.set_postfix(loss=f"{loss.item():.3f}", bpc=f"{loss.item() / LN2:.3f}")
    return total / max(count, 1)


def train(corpus: Corpus, cfg: TrainConfig, out, device="cpu", resume: bool = False, preset: str = "",
          show_progress: bool = True) -> dict:
    """Train a model on ``corpus`` and save the best-validation checkpoint at ``out``.

    Returns
    -------
    dict
        The training summary stored in the checkpoint (curve, times, best valid loss).
    """
    from tqdm.auto import tqdm

    from sasim.lm.evaluate import evaluate_loss

    out = Path(out)
    latest = out.with_name(out.stem + ".latest.pt")
    dev = resolve_device(device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg, corpus.vocab_size).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    summary = {"preset": preset, "train_config": cfg.to_dict(), "curve": [], "best_valid_loss": None,
               "device": str(dev), "torch_threads": torch.get_num_threads(), "seconds": 0.0}
    start_epoch = 0
    if resume and latest.is_file():
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
        model.load_state_dict(ck["state_dict"])
        optimizer_state = ck.get("optimizer")
        if optimizer_state:
            optimizer.load_state_dict(optimizer_state)
        summary = ck["train"]
        start_epoch = len(summary["curve"])
        if "rng" in ck:
            torch.set_rng_state(ck["rng"])
    train_data = batchify(corpus.splits["train"], cfg.batch_size, dev)
    valid_data = batchify(corpus.splits["valid"], cfg.eval_batch_size, dev)
    tokens_per_epoch = epoch_tokens(train_data, cfg)
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.lr_milestones)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.time()
        with tqdm(total=tokens_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="tok", unit_scale=True,
                  disable=not show_progress, mininterval=2.0) as bar:
            train_loss = train_epoch(model, train_data, cfg, optimizer, bar)
        valid_loss = evaluate_loss(model, valid_data, cfg.bptt)
        seconds = time.time() - t0
        summary["seconds"] += seconds
        summary["curve"].append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "valid_loss": valid_loss,
                                 "train_bpc": train_loss / LN2, "valid_bpc": valid_loss / LN2, "seconds": seconds})
        print(f"epoch {epoch + 1}: train {train_loss / LN2:.4f} bpc, valid {valid_loss / LN2:.4f} bpc "
              f"({valid_loss:.4f} nats, ppl {math.exp(valid_loss):.2f}), {seconds:.0f} s", flush=True)
        meta = dict(model_config=model.config.to_dict(), vocab=corpus.vocab, level=corpus.level)
        if summary["best_valid_loss"] is None or valid_loss < summary["best_valid_loss"]:
            summary["best_valid_loss"] = valid_loss
            summary["best_epoch"] = epoch + 1
            save_checkpoint(out, model.state_dict(), train=summary, **meta)
        save_checkpoint(latest, model.state_dict(), train=summary, optimizer=optimizer.state_dict(),
                        rng=torch.get_rng_state(), **meta)
    if out.is_file():  # the best checkpoint carries the whole run's summary (curve, time), not a snapshot
        best = load_raw(out)
        extra = {k: v for k, v in best.items() if k not in ("format", "format_version", "model_config", "vocab",
                                                              "state_dict", "train")}
        save_checkpoint(out, best["state_dict"], best["model_config"], best["vocab"], train=summary, **extra)
    from sasim.report.json_report import write_json
    from sasim.report.provenance import run_header

    write_json(out.with_suffix(".json"), run_header(checkpoint=str(out), data=corpus.path, level=corpus.level,
                                                    model_config=model.config.to_dict(), train=summary))
    return summary
