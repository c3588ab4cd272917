"""The one training loop of sasim: truncated BPTT over batchified streams, epoch by epoch.

Training from scratch, joint pruning, fine-tuning, quantization-aware fine-tuning and the report scripts all
call :func:`fit`. What differs between them is not a copy of the loop but what they hand it:

* a learning-rate schedule (``lr_at(epoch)``);
* a loss (``loss_fn``: distillation mixes in the teacher's distribution);
* :class:`Hook` objects: pruning events and weight averaging run after optimizer steps, checkpoints are
  saved after epochs, and each hook can add fields to an epoch's curve point and its log line.

Masks (pruning) and fake quantization live in the model's forward, so the loop needs nothing for them.

Under ``torchrun`` the loop trains this rank's share of the streams through DistributedDataParallel, averages
the reported losses over ranks, and lets only rank 0 show progress and save (:mod:`sasim.lm.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from sasim.checks import check_choice
from sasim.errors import SasimError
from sasim.lm.distributed import Ranks, current, data_parallel
from sasim.lm.evaluate import evaluate_loss
from sasim.lm.model import detach_state

LN2 = math.log(2.0)

#: autocast dtypes ``fit`` can train in (on a GPU; float32 everywhere)
PRECISIONS = ("fp32", "bf16")

#: optimizer steps between progress-bar loss readouts (each one waits for the device)
_POSTFIX_EVERY = 20


class Hook:
    """What a job adds to :func:`fit`. Override any of the four; the defaults do nothing."""

    def start_epoch(self, epoch: int) -> None:
        """Before epoch ``epoch`` (0-based) starts."""

    def after_step(self, model) -> None:
        """After every optimizer step (pruning events, weight averaging)."""

    def record(self, epoch: int, point: dict) -> str | None:
        """Add fields to the finished epoch's curve ``point``; return text for its log line (or None)."""
        return None

    def save(self, epochs_done: int, curve: list) -> None:
        """Persist the run after ``epochs_done`` epochs (called on rank 0 only)."""


def epoch_positions(data: torch.Tensor, cfg) -> int:
    """Positions per stream that one training epoch over ``data`` (``(T, B)``) covers: the whole split, or
    ``cfg.max_train_tokens`` worth of it (at least one BPTT chunk). Its tokens are this times ``B``."""
    limit = data.size(0) - 1
    if cfg.max_train_tokens:
        limit = min(limit, max(cfg.bptt, cfg.max_train_tokens // data.size(1)))
    return limit


def epoch_tokens(data: torch.Tensor, cfg) -> int:
    """Tokens one training epoch over ``data`` (``(T, B)``) trains on."""
    return epoch_positions(data, cfg) * data.size(1)


def epoch_steps(data: torch.Tensor, cfg) -> int:
    """Optimizer steps (BPTT chunks) of one training epoch over ``data``."""
    return math.ceil(epoch_positions(data, cfg) / cfg.bptt)


def train_epoch(model, data: torch.Tensor, cfg, optimizer, progress=None, step_hook=None, loss_fn=None,
                forward=None, positions: int | None = None, autocast=None) -> float:
    """One pass over ``data`` (``(T, B)``); returns the mean training cross-entropy in nats per token.

    Parameters
    ----------
    model : LSTMLanguageModel
        The model whose parameters are clipped and stepped.
    step_hook : callable, optional
        ``step_hook(model)`` after every optimizer step.
    loss_fn : callable, optional
        ``loss_fn(x, y, logits) -> (loss to minimize, cross-entropy to report)`` instead of plain cross-entropy.
    forward : callable, optional
        What runs the model (its DistributedDataParallel wrapper under torchrun); ``model`` by default.
    positions : int, optional
        Positions per stream to cover (default :func:`epoch_positions` of ``data``; a rank's share of the
        streams covers the positions of the whole batch).
    autocast : dtype, optional
        Run forward passes under ``torch.autocast`` with this dtype (bf16 on a GPU).
    """
    model.train()
    forward = forward or model
    state = None
    total = torch.zeros((), dtype=torch.float64, device=data.device)  # summed on the device: no sync per step
    count = 0
    limit = epoch_positions(data, cfg) if positions is None else positions
    vocab = model.config.vocab_size
    # the bar counts the tokens of the whole batch (every rank's share advances together)
    progress_streams = getattr(progress, "streams", None) or data.size(1)
    for step, start in enumerate(range(0, limit, cfg.bptt)):
        seq = min(cfg.bptt, limit - start)
        x, y = data[start : start + seq], data[start + 1 : start + 1 + seq]
        if state is not None:
            state = detach_state(state)
        optimizer.zero_grad(set_to_none=True)
        with (torch.autocast(data.device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()):
            logits, state = forward(x, state)
            logits = logits.float()
            if loss_fn is None:
                objective = loss = F.cross_entropy(logits.view(-1, vocab), y.reshape(-1))
            else:
                objective, loss = loss_fn(x, y, logits)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        if step_hook is not None:
            step_hook(model)
        total += loss.detach().double() * seq
        count += seq
        if progress is not None:
            progress.update(seq * progress_streams)
            if step % _POSTFIX_EVERY == 0:
                shown = loss.item()
                progress.set_postfix(loss=f"{shown:.3f}", bpc=f"{shown / LN2:.3f}")
    return total.item() / max(count, 1)


def fit(model, train_data: torch.Tensor, cfg, optimizer, epochs: int, lr_at: Callable[[int], float],
        valid_data: torch.Tensor | None = None, hooks: Sequence[Hook] = (), loss_fn=None, first_epoch: int = 0,
        curve: list | None = None, name: str = "epoch", log=print, show_progress: bool = True,
        precision: str = "fp32", ranks: Ranks | None = None) -> list[dict]:
    """Train ``model`` in place for epochs ``first_epoch .. epochs - 1``; return the curve (one point per epoch).

    Parameters
    ----------
    model : LSTMLanguageModel
        On its training device.
    train_data, valid_data : torch.Tensor
        Batchified splits ``(T, B)`` of the whole (global) batch; under torchrun each rank trains on its share of
        the streams. ``valid_data`` None: no per-epoch validation.
    cfg : TrainConfig
        BPTT length, gradient clipping, tokens per epoch.
    optimizer : torch.optim.Optimizer
        Over ``model``'s parameters; its learning rate is set to ``lr_at(epoch)`` before each epoch.
    hooks : sequence of Hook
        Called in order (see :class:`Hook`).
    loss_fn : callable, optional
        See :func:`train_epoch`.
    first_epoch, curve : int, list
        Where a resumed run continues: epochs already done and their curve (extended in place).
    name : str
        Label of progress bars and log lines (``epoch``, ``retrain``, ``finetune``, ``QAT``).
    log : callable
        Prints one line per epoch (rank 0 only).
    precision : {"fp32", "bf16"}
        bf16 runs forward passes under autocast (GPU only); gradients, optimizer and weights stay float32.
    ranks : Ranks, optional
        The process group (default: :func:`sasim.lm.distributed.current`).

    Returns
    -------
    list of dict
        ``curve``: per epoch ``epoch`` (1-based), ``lr``, ``train_loss`` and ``valid_loss`` (nats per token),
        what the hooks record, and ``seconds``.
    """

    ranks = ranks or current()
    check_choice("precision", precision, PRECISIONS)
    device = train_data.device
    if precision == "bf16" and device.type != "cuda":

        raise SasimError("precision bf16 is for GPU training; on a CPU train in fp32 (the default)",
                         param="precision")
    autocast = torch.bfloat16 if precision == "bf16" else None
    curve = [] if curve is None else curve
    positions = epoch_positions(train_data, cfg)
    tokens = positions * train_data.size(1)
    shard = ranks.shard(train_data)
    forward = data_parallel(model, ranks)
    log = log if ranks.is_main else (lambda *_: None)

    def step_hook(m):
        for hook in hooks:
            hook.after_step(m)

    for epoch in range(first_epoch, epochs):
        lr = lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for hook in hooks:
            hook.start_epoch(epoch)
        t0 = time.time()
        with tqdm(total=tokens, desc=f"{name} {epoch + 1}/{epochs}", unit="tok", unit_scale=True,
                  disable=not (show_progress and ranks.is_main), mininterval=2.0) as bar:
            bar.streams = train_data.size(1)
            loss = train_epoch(model, shard, cfg, optimizer, bar, step_hook=step_hook, loss_fn=loss_fn,
                               forward=forward, positions=positions, autocast=autocast)
        loss = ranks.mean(loss)
        valid = None if valid_data is None else evaluate_loss(model, valid_data, cfg.bptt, ranks=ranks)
        point = {"epoch": epoch + 1, "lr": lr, "train_loss": loss, "valid_loss": valid}
        notes = [note for hook in hooks if (note := hook.record(epoch, point))]
        point["seconds"] = time.time() - t0
        curve.append(point)
        log(f"{name} {epoch + 1}: train {loss / LN2:.4f} bpc"
            + ("" if valid is None else f", valid {valid / LN2:.4f} bpc")
            + "".join(f", {note}" for note in notes) + f", {point['seconds']:.0f} s")
        if ranks.is_main:
            for hook in hooks:
                hook.save(epoch + 1, curve)
        ranks.barrier()  # no rank runs ahead of a checkpoint being written
    return curve
