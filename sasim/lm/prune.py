"""Joint optimization: iterative magnitude pruning, column combining and retraining (Kung et al. 2019).

The recipe (the paper's, by default):

* pruning events are spread evenly over the first half of the retraining steps;
* at event ``i`` of ``n``, each layer's ``[W_ih | W_hh]`` (and ``W_hr``) is magnitude-pruned, among the
  weights still alive, to the sparsity ``target * (1 - 1/alpha) * i / n`` (so the magnitude part rises
  linearly towards ``target * (1 - 1/alpha)``), then regrouped from scratch and combine-pruned under the
  conflict rule (which removes the conflicting weights on top);
* between and after the events the model trains with its masks applied on every forward, so pruned
  weights stay zero through weight drop, weight decay and optimizer steps; after the last event the
  masks and groups are frozen and training continues (fine-tuning).

The result is a packed checkpoint: pruned dense weights, masks, and the packed form per layer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sasim.checks import check_float, check_int
from sasim.combine.grouping import validate_grouping_args
from sasim.combine.packed import DenseShape, LayerPacking
from sasim.combine.patterns import packing_stats
from sasim.combine.torch_api import ColumnCombiner
from sasim.errors import SasimError
from sasim.lm.distributed import Ranks, current
from sasim.lm.fit import Hook, epoch_steps, epoch_tokens, fit
from sasim.lm.loading import evaluate_model, load_language_model
from sasim.outputs import save_torch
from sasim.report.json_report import plain
from sasim.sim.mapping import weight_tiles
from sasim.sim.metrics import accuracy_name
from sasim.workload.checkpoint import packed_to_tensors, save_checkpoint, stored_packed


def _event_steps(total_steps: int, events: int) -> list[int]:
    """Step indices (0-based) of the pruning events, evenly over the first half of training."""
    half = max(1, total_steps // 2)
    return sorted({min(half - 1, int(round(half * i / events))) for i in range(events)})


@torch.no_grad()
def magnitude_prune_masks(rnns, sparsities) -> None:
    """Shrink each layer's masks so that ``sparsities[l]`` of its LSTM weights are zero (largest kept)."""
    for rnn, sparsity in zip(rnns, sparsities):
        pairs = [("ih", rnn.weight_ih_l0), ("hh", rnn.weight_hh_l0)]
        groups = [pairs] + ([[("hr", rnn.weight_hr_l0)]] if rnn.proj_size else [])
        for group in groups:  # W_ih and W_hh are pruned jointly: they form one matrix on the array
            masks = [getattr(rnn, f"mask_{k}") for k, _ in group]
            mags = torch.cat([(w.abs() * m).flatten() for (_, w), m in zip(group, masks)])
            keep = int(round((1 - sparsity) * mags.numel()))
            alive = int((torch.cat([m.flatten() for m in masks]) > 0).sum())
            if keep >= alive:
                continue
            threshold = torch.topk(mags, keep).values.min() if keep > 0 else float("inf")
            for (_, w), m in zip(group, masks):
                m.mul_(((w.abs() * m) >= threshold).to(m.dtype))


def default_events(epochs: int) -> int:
    """Pruning events when none are asked for: two per retraining epoch, at least two."""
    return max(2, 2 * epochs)


def load_dense_for_pruning(weights, alphas, gammas) -> tuple:
    """Load a dense checkpoint to prune and expand ``alphas``/``gammas`` (one value, or one per layer) to one
    per layer: ``(model, raw, alphas, gammas)``. Refuses packed checkpoints and wrong per-layer counts."""

    model, raw = load_language_model(weights)
    if raw.get("packing"):
        raise SasimError(f"{weights} is already packed; prune from the dense checkpoint")
    n = len(model.rnns)
    alphas = list(alphas) * n if len(alphas) == 1 else list(alphas)
    gammas = list(gammas) * n if len(gammas) == 1 else list(gammas)
    if len(alphas) != n or len(gammas) != n:
        raise SasimError(f"alpha and gamma take one value or one per layer ({n} layers), got {len(alphas)} and "
                         f"{len(gammas)}", param="alpha")
    for a, g in zip(alphas, gammas):
        validate_grouping_args(a, g, 0)
    return model, raw, alphas, gammas


def pattern_targets(combiner: ColumnCombiner, target: float) -> tuple[list[float], float]:
    """``(magnitude sparsity per layer, block sparsity)`` a pruning run with ``combiner``'s pattern aims for.

    * ``combine``: magnitudes to ``target * (1 - 1/alpha)``, combining removes the conflicts on top;
    * ``unstructured``: magnitudes to ``target``;
    * ``block``: no weight-wise pruning, ``target`` of the blocks;
    * ``nm``: neither, the pattern sets the density (``n / m``);
    * ``dense``: nothing (the matched dense control).
    """
    kind, layers = combiner.pattern.kind, len(combiner.alpha)
    if kind == "combine":
        return [target * (1 - 1 / a) for a in combiner.alpha], 0.0
    if kind == "unstructured":
        return [target] * layers, 0.0
    return [0.0] * layers, target if kind == "block" else 0.0


def _pruning_event(model, combiner: ColumnCombiner, magnitude_target: list[float], frac: float,
                   block_target: float = 0.0) -> dict:
    """One pruning event: magnitude-prune each layer to ``frac`` of its target, then regroup and combine-prune (or
    repack with the pattern, block pruning to ``frac`` of ``block_target``)."""
    magnitude_prune_masks(model.rnns, [goal * frac for goal in magnitude_target])
    stats = combiner.step(block_target * frac)
    return {"magnitude_sparsity": [g * frac for g in magnitude_target], "block_sparsity": block_target * frac,
            "pruned_fraction": {k: v["pruned_fraction"] for k, v in stats.items()},
            "groups": {k: v["groups"] for k, v in stats.items()}}


def rehearse_pruning(model, alpha, gamma, rule="prune", policy="paper", section=256, target=0.9, events=2,
                     row_cap=None, pattern=None) -> tuple[list, list]:
    """Run the pruning events of :func:`prune_combine_retrain` on ``model`` in place, with no training between
    them; return ``(packed layers, event records)``.

    It shows, in seconds, the groups and density a retraining run with these settings ends near (retraining
    moves the weights between events, so the real run's groups differ a little; with a learning rate of zero
    they are the same). Use it to choose alpha, gamma and the target for a tile budget before training.
    """
    check_float("target_sparsity", target, 0.0, 1.0, low_open=True, high_open=True)
    check_int("events", events, 1)
    combiner = ColumnCombiner(model, alpha, gamma, rule, policy, section, row_cap, pattern).prepare()
    magnitude_target, block_target = pattern_targets(combiner, target)
    records = [{"event": i, **_pruning_event(model, combiner, magnitude_target, i / events, block_target)}
               for i in range(1, events + 1)]
    return combiner.squash(), records


def plan_pruning(model, hw, alpha, gamma, rule="prune", policy="paper", section=256, target=0.9, events=2,
                 row_cap=None, pattern=None) -> dict:
    """Rehearse the pruning events on ``model`` (in place, see :func:`rehearse_pruning`) and count the tiles of
    the result on ``hw``'s array.

    Returns ``{"layers": [{"layer", "matrix", "shape", "groups", "density", "tiles", "dense_tiles"}, ...],
    "tiles", "dense_tiles", "density", "events"}`` (density: nonzero fraction of all LSTM weights).
    """

    packed, records = rehearse_pruning(model, alpha, gamma, rule, policy, section, target, events, row_cap, pattern)
    density = density_report(model)
    layers, nonzeros, weights = [], 0, 0
    for i, layer in enumerate(packed):
        for key, p in layer.matrices():
            dense = weight_tiles(DenseShape(tuple(p.shape)), hw)
            layers.append({"layer": i, "matrix": key, "shape": list(p.shape), "groups": p.num_groups,
                           "density": density[f"layer{i}"] if key == "gates" else p.nonzeros / (p.shape[0] * p.shape[1]),
                           "tiles": weight_tiles(p, hw), "dense_tiles": dense})
            nonzeros, weights = nonzeros + p.nonzeros, weights + p.shape[0] * p.shape[1]
    return {"layers": layers, "tiles": sum(r["tiles"] for r in layers), "events": records,
            "dense_tiles": sum(r["dense_tiles"] for r in layers), "density": nonzeros / weights}


def prune_combine_retrain(model, train_data, valid_data, cfg, alpha, gamma, rule="prune", policy="paper",
                          section=256, target=0.9, epochs=2, events=None, row_cap=None, show_progress=True,
                          log=print, progress_path=None, resume: bool = False, pattern=None) -> tuple[list, dict]:
    """Run the joint optimization on ``model`` in place; return ``(packed layers, summary)``.

    Parameters
    ----------
    model : LSTMLanguageModel
    train_data, valid_data : torch.Tensor
        Batchified splits (``valid_data`` None: no per-epoch validation).
    cfg : TrainConfig
        Optimizer settings (lr, clip, bptt, weight decay); ``cfg.epochs`` is ignored for ``epochs``.
    alpha, gamma : int/float or per-layer lists
    target : float
        Final sparsity the magnitude part aims for is ``target * (1 - 1/alpha)``; combining adds to it. With
        another pattern see :func:`pattern_targets` (unstructured: ``target`` of the weights; block: ``target`` of
        the blocks; N:M: unused).
    epochs : int
        Retraining epochs in total (events in the first half, then fine-tuning).
    events : int, optional
        Pruning events (default: :func:`default_events`, two per retraining epoch, at least two; N:M: one, at
        the first step, then the masks stay frozen, as ASP does).
    pattern : Pattern or str, optional
        ``combine`` (default), ``nm:N:M``, ``block:RxC`` or ``unstructured``.
    progress_path : path, optional
        Where to save the run's state after every epoch (weights, masks, groups, optimizer, random state, event
        schedule and curve), atomically; a killed run then resumes from its last finished epoch.
    resume : bool
        Continue from ``progress_path`` when it exists; the result equals an uninterrupted run's.
    """
    check_float("target_sparsity", target, 0.0, 1.0, low_open=True, high_open=True)
    check_int("epochs", epochs, 1)
    if events is not None:
        check_int("events", events, 1)
    ranks = current()
    combiner = ColumnCombiner(model, alpha, gamma, rule, policy, section, row_cap, pattern).prepare()
    total = epoch_steps(train_data, cfg) * epochs  # the optimizer steps fit will take
    events = events or (1 if combiner.pattern.kind in ("nm", "dense") else default_events(epochs))
    schedule = _event_steps(total, events)
    magnitude_target, block_target = pattern_targets(combiner, target)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    settings = {"pattern": combiner.pattern.name, "alpha": list(combiner.alpha), "gamma": list(combiner.gamma),
                **combiner.kw, "target": target, "epochs": epochs, "schedule": schedule,
                "train_shape": list(train_data.shape)}
    events_hook = _PruningEvents(model, combiner, schedule, magnitude_target, ranks, block_target)
    curve, first_epoch, seconds_before = [], 0, 0.0
    saved = None
    if resume and progress_path is not None:
        saved = ranks.broadcast(_read_progress(progress_path, settings) if ranks.is_main else None)
    if saved is not None:
        first_epoch, seconds_before = _restore_progress(saved, model, optimizer, combiner, events_hook, curve)
        log(f"resumed from {progress_path} after epoch {first_epoch}")
    hooks = [events_hook]
    t0 = time.time()
    if progress_path is not None:
        hooks.append(_ProgressSaver(progress_path, settings, model, optimizer, combiner, events_hook,
                                    lambda: seconds_before + time.time() - t0, ranks))
    late = max(1, int(0.75 * epochs))
    fit(model, train_data, cfg, optimizer, epochs, lambda e: cfg.lr * (0.1 if e >= late and epochs > 1 else 1.0),
        valid_data, hooks=hooks, first_epoch=first_epoch, curve=curve, name="retrain", log=log,
        show_progress=show_progress, ranks=ranks)
    events_hook.finish()
    packed = combiner.squash()
    summary = {"events": events_hook.history, "curve": curve, "seconds": seconds_before + time.time() - t0,
               "schedule": schedule, "pattern": combiner.pattern.name, "magnitude_target": magnitude_target,
               "block_target": block_target, "steps": total,
               "tokens": epoch_tokens(train_data, cfg) * epochs}
    return packed, summary


class _PruningEvents(Hook):
    """Runs the pruning events at their scheduled optimizer steps; every rank runs them on the same weights and
    checks that its masks and groups equal every other rank's."""

    def __init__(self, model, combiner: ColumnCombiner, schedule: list[int], magnitude_target: list[float],
                 ranks: Ranks, block_target: float = 0.0):
        self.model, self.combiner, self.schedule, self.magnitude_target = model, combiner, schedule, magnitude_target
        self.block_target = block_target
        self.ranks = ranks
        self.state = {"step": 0, "event": 0}
        self.history: list[dict] = []

    def after_step(self, _model) -> None:
        state = self.state
        if state["event"] < len(self.schedule) and state["step"] == self.schedule[state["event"]]:
            state["event"] += 1
            record = _pruning_event(self.model, self.combiner, self.magnitude_target, state["event"] / len(self.schedule),
                                    self.block_target)
            self.history.append({"step": state["step"], "event": state["event"], **record})
            self.ranks.check_same(f"masks and groups after pruning event {state['event']}",
                                  _masks_and_groups(self.model, self.combiner))
        state["step"] += 1

    def record(self, epoch: int, point: dict) -> str:
        point["events_done"] = self.state["event"]
        return f"{self.state['event']}/{len(self.schedule)} events"

    def finish(self) -> None:
        """Run the events a schedule past the last step left (tiny data)."""
        while self.state["event"] < len(self.schedule):
            self.state["step"] = self.schedule[self.state["event"]]
            self.after_step(self.model)


def _masks_and_groups(model, combiner: ColumnCombiner) -> list[torch.Tensor]:
    """Every mask and every group assignment of a pruning run, as tensors (to compare across ranks)."""
    tensors = [buf for name, buf in model.named_buffers() if ".mask_" in name]
    for layer in combiner.packed:
        for _, p in (layer.matrices() if layer else []):
            for block in getattr(p, "blocks", [p]):
                tensors += [torch.from_numpy(np.ascontiguousarray(t)) for t in (block.values, block.select)]
    return tensors


class _ProgressSaver(Hook):
    """Saves a pruning run's state after every epoch (see :func:`prune_combine_retrain`)."""

    def __init__(self, path, settings, model, optimizer, combiner, events_hook, seconds, ranks: Ranks):
        self.path, self.settings, self.model, self.optimizer = path, settings, model, optimizer
        self.combiner, self.events_hook, self.seconds, self.ranks = combiner, events_hook, seconds, ranks
        self.rng_states = []

    def record(self, epoch: int, point: dict) -> None:
        self.rng_states = self.ranks.gather(torch.get_rng_state())  # every rank's, for an exact resume

    def save(self, epochs_done: int, curve: list) -> None:
        _save_progress(self.path, self.settings, epochs_done, self.model, self.optimizer, self.combiner,
                       self.events_hook.state, self.events_hook.history, curve, self.seconds(), self.rng_states)


def _save_progress(path, settings, epochs_done, model, optimizer, combiner, state, history, curve, seconds,
                   rng_states) -> None:
    """The state of a pruning run after ``epochs_done`` epochs, saved atomically (see prune_combine_retrain)."""
    packed = {}
    stats = {}
    for i, layer in enumerate(combiner.packed):
        for key, p in (layer.matrices() if layer else []):
            packed.update(packed_to_tensors(f"{i}.{key}", p))
            stats[f"{i}.{key}"] = {"shape": list(p.shape), "stats": plain(p.stats)}
    save_torch(path, {"format": "sasim-prune-progress", "settings": plain(settings), "epochs_done": epochs_done,
                      "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                      "optimizer": optimizer.state_dict(), "rng": rng_states[0], "rng_per_rank": rng_states,
                      "packed": packed,
                      "packed_stats": stats, "state": dict(state), "history": plain(history),
                      "curve": plain(curve), "seconds": seconds})


def _read_progress(path, settings) -> dict | None:
    """A pruning run's saved state at ``path``, checked against this run's settings (None: no file)."""
    if not Path(path).is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SasimError(f"cannot resume from {path} ({type(exc).__name__}); delete it to start afresh") from None
    if not isinstance(ck, dict) or ck.get("format") != "sasim-prune-progress":
        raise SasimError(f"{path} is not the progress file of a sasim prune run; delete it to start afresh")
    ck["settings"].setdefault("pattern", "combine")  # progress files from before patterns were column combining
    if ck["settings"] != plain(settings):
        differ = [k for k in settings if ck["settings"].get(k) != plain(settings).get(k)]
        raise SasimError(f"cannot resume from {path}: it was made with other settings ({', '.join(differ)}); "
                         "resume with the same options, or delete it to start afresh")
    return ck


def _restore_progress(ck, model, optimizer, combiner, events_hook, curve) -> tuple[int, float]:
    """Load a pruning run's saved state into the given objects; return ``(epochs done, seconds spent)``."""
    device = next(model.parameters()).device
    model.load_state_dict(ck["model"])
    model.to(device)
    optimizer.load_state_dict(ck["optimizer"])
    rngs, ranks = ck.get("rng_per_rank") or [ck["rng"]], events_hook.ranks
    torch.set_rng_state(rngs[ranks.rank] if len(rngs) == ranks.world_size else rngs[0])
    layers = [{} for _ in combiner.packed]
    for name, info in ck["packed_stats"].items():
        i, key = name.split(".")
        p = stored_packed(ck["packed"], name, tuple(info["shape"]))  # the reader of every stored packed form
        p.stats = info["stats"]
        layers[int(i)][key] = p
    combiner.packed = [LayerPacking(m["gates"], m.get("proj")) if m else None for m in layers]
    events_hook.state.update(ck["state"])
    events_hook.history.extend(ck["history"])
    curve.extend(ck["curve"])
    return ck["epochs_done"], ck["seconds"]


def density_report(model) -> dict:
    """Nonzero fraction of each layer's LSTM matrices."""
    out = {}
    for i, rnn in enumerate(model.rnns):
        w = torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], 1)
        out[f"layer{i}"] = float((w != 0).float().mean())
    return out


def packed_state(model, packed_layers: list[LayerPacking]) -> dict:
    """The state_dict of a packed checkpoint: weights (masks applied), masks, and the packed form."""

    state = {k: v for k, v in model.state_dict().items()}
    for i, layer in enumerate(packed_layers):
        for key, p in layer.matrices():
            state.update(packed_to_tensors(_tensor_name(i, key), p))
    return state


def _tensor_name(layer: int, key: str) -> str:
    """Where a layer's packed matrix lives in a checkpoint: ``rnns.L.gates`` or ``rnns.L.weight_hr_l0``."""
    return f"rnns.{layer}.gates" if key == "gates" else f"rnns.{layer}.weight_hr_l0"


def packing_meta(packed_layers: list[LayerPacking], params: dict) -> dict:
    """The ``packing`` metadata entry of a packed checkpoint (as ``sasim combine`` writes it)."""
    tensors = {}
    for i, layer in enumerate(packed_layers):
        for key, p in layer.matrices():
            tensors[_tensor_name(i, key)] = packing_stats(p)
    return {"packing": params, "tensors": tensors}


def save_scored_packed(out, model, packed_layers: list[LayerPacking], raw: dict, meta: dict, record: dict, data_dir, corpus,
                       splits=("valid", "test"), evaluate=None) -> dict:
    """Save a packed checkpoint (``model``'s weights, masks and ``packed_layers``, with ``raw``'s config and
    vocabulary and ``meta``), score ``splits`` with exactly the saved file, put the scores into ``record["eval"]``
    (``record`` is part of ``meta``) and save again. ``evaluate(model, raw, data_dir, split, corpus=)`` scores a
    split (default :func:`sasim.lm.loading.evaluate_model`, float; the prune job passes the quantized scorer).

    Returns the full results per split.
    """

    state = packed_state(model, packed_layers)
    save_checkpoint(out, state, raw["model_config"], raw["vocab"], **meta)
    saved, saved_raw = load_language_model(out)  # score exactly the weights the file holds
    evaluate = evaluate or evaluate_model
    results = {split: evaluate(saved, saved_raw, data_dir, split, corpus=corpus) for split in splits}
    record["eval"] = {split: r[accuracy_name(r)] for split, r in results.items()}
    save_checkpoint(out, state, raw["model_config"], raw["vocab"], **meta)
    return results


