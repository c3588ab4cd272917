"""Job: prune, combine and retrain a dense checkpoint (optionally quantization-aware), save it scored; or
rehearse the pruning events without training (``--dry-run``).

    from sasim.api.prune import Prune, prune

    result = prune(Prune(weights="models/ptb-char-small.pt", data="../shared/data/ptb-char", out="packed.pt",
                         alphas=(8,), gammas=(0.5,), epochs=1, max_train_tokens=200_000))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sasim.checks import check_choice, check_device, check_float, check_int, check_optional_int, check_seed
from sasim.combine.column_combine import RULES, check_fanin
from sasim.combine.grouping import POLICIES, validate_grouping_args
from sasim.combine.patterns import Pattern
from sasim.combine.torch_api import ColumnCombiner
from sasim.errors import SasimError
from sasim.hw.config import load_hw_config
from sasim.lm.distributed import current
from sasim.lm.loading import evaluate_model
from sasim.lm.presets import train_config_of
from sasim.lm.prune import (
    default_events,
    density_report,
    load_dense_for_pruning,
    packing_meta,
    plan_pruning,
    prune_combine_retrain,
    save_scored_packed,
)
from sasim.lm.train import retraining_data
from sasim.quant.checkpoint import evaluate_quantized_checkpoint, quantization_meta
from sasim.quant.fixed_point_lstm import QuantConfig, calibrate_lstm, calibration_batch, layer_scales
from sasim.quant.qat import quantization_aware_finetune
from sasim.report.json_report import write_json
from sasim.report.provenance import run_header
from sasim.workload.checkpoint import carried_metadata


def prune_checkpoint(weights, data_dir, out, alphas, gammas, rule="prune", policy="paper", section=256, row_cap=None,
                     target=0.9, epochs=2, events=None, max_train_tokens=None, device="cpu", seed=1,
                     splits=("valid", "test"), show_progress=True, qat=None, qat_epochs=1, validate=True,
                     resume: bool = False, pattern: str = "combine") -> dict:
    """Prune, combine and retrain a dense sasim checkpoint; save the packed checkpoint and its JSON.

    ``pattern`` (``combine``, ``nm:N:M``, ``block:RxC``, ``unstructured``) chooses the sparsity pattern the masks
    and the packed form follow (see :func:`sasim.lm.prune.pattern_targets`).

    With ``qat`` (a :class:`sasim.quant.fixed_point_lstm.QuantConfig`), the retrained model is then fine-tuned
    quantization-aware for ``qat_epochs`` with its masks and groups frozen, and saved as a quantized
    packed checkpoint (scored with its integer arithmetic).

    ``validate`` False skips the per-epoch validation (a sweep scores each point on its own split anyway).

    After every retraining epoch the run's state is saved to ``OUT.latest.pt`` (atomically); with ``resume``
    a killed run continues from there and ends with the same weights, groups and scores as an uninterrupted one.

    Returns the summary (events, curve, density, and the accuracy on ``splits`` with the saved weights).
    """
    model, raw, alphas, gammas = load_dense_for_pruning(weights, alphas, gammas)
    cfg = train_config_of(raw, seed, max_train_tokens)
    data = retraining_data(model, raw, data_dir, cfg, device, seed, validate)
    train_data, valid_data, ids, dev = data["train"], data["valid"], data["ids"], data["device"]
    log = print if show_progress else (lambda *_: None)
    progress = Path(out).with_name(Path(out).stem + ".latest.pt")
    packed, summary = prune_combine_retrain(model, train_data, valid_data, cfg, alphas, gammas, rule, policy, section,
                                            target, epochs, events, row_cap, show_progress, log=log,
                                            progress_path=progress, resume=resume, pattern=pattern)
    quant_meta = {}
    if qat is not None:
        scales = layer_scales(calibrate_lstm(model, calibration_batch(ids["train"], 20_000).to(dev), qat))
        qlayers, qat_summary = quantization_aware_finetune(model, train_data, valid_data, cfg, qat, scales, qat_epochs,
                                                           show_progress=show_progress, log=log)
        packed = ColumnCombiner.refill(model, packed)  # the packed values follow the fine-tuned weights
        quant_meta = {"quantization": quantization_meta(qat, qlayers, qat=qat_summary)}
        summary["qat"] = qat_summary
    model.cpu().eval()
    params = dict(pattern=Pattern.parse(pattern).name, alpha=alphas[0] if len(set(alphas)) == 1 else alphas,
                  gamma=gammas[0] if len(set(gammas)) == 1 else gammas, rule=rule, policy=policy, section=section,
                  row_cap=row_cap, target_sparsity=target, epochs=epochs)
    summary["density"] = density_report(model)
    meta = carried_metadata(raw)
    meta.update(packing=packing_meta(packed, params), prune=summary, **quant_meta)
    ranks = current()
    results = None
    if ranks.is_main:  # under torchrun every rank holds the same packed model; rank 0 scores and writes it
        results = save_scored_packed(out, model, packed, raw, meta, summary, data_dir, data["corpus"], splits,
                                     evaluate=evaluate_quantized_checkpoint if qat is not None else evaluate_model)
        write_json(Path(out).with_suffix(".json"), run_header(packing=params, prune=summary, source=str(weights),
                                                              data=str(data_dir)))
    ranks.barrier()
    return {**summary, "eval": results}


@dataclass(frozen=True)
class Prune:
    """What ``sasim prune`` runs: joint optimization of ``weights`` with one alpha/gamma, or one per layer.

    ``data`` and ``out`` are needed to retrain and save (:func:`prune`), not to rehearse (:func:`rehearse`).
    ``mux_fanin`` refuses alphas wider than the multiplexer of the array the model is meant for.
    """

    weights: str
    alphas: tuple
    gammas: tuple
    data: str | None = None
    out: str | None = None
    rule: str = "prune"
    policy: str = "paper"
    section: int = 256
    row_cap: int | None = None
    target: float = 0.9
    epochs: int = 2
    events: int | None = None
    max_train_tokens: int | None = None
    device: str = "cpu"
    seed: int = 1
    qat: QuantConfig | None = None
    qat_epochs: int = 1
    resume: bool = False
    mux_fanin: int | None = None
    pattern: str = "combine"

    def __post_init__(self):
        if not self.alphas or not self.gammas:
            raise SasimError("alpha and gamma need at least one value each", param="alpha")
        for a in self.alphas:  # one value, or one per layer (their count is checked against the model's layers)
            for g in self.gammas:
                validate_grouping_args(a, g, self.section, self.row_cap, self.policy)
        check_choice("rule", self.rule, RULES)
        check_choice("policy", self.policy, POLICIES)
        check_float("target_sparsity", self.target, 0.0, 1.0, low_open=True, high_open=True)
        check_int("epochs", self.epochs, 1)
        check_optional_int("events", self.events, 1)
        check_optional_int("max_train_tokens", self.max_train_tokens, 1)
        check_device("device", self.device)
        check_seed(self.seed)
        check_int("qat_epochs", self.qat_epochs, 1)
        pattern = Pattern.parse(self.pattern)
        pattern.check_fanin(self.mux_fanin, "the given")
        if self.mux_fanin is not None and pattern.kind == "combine":
            check_fanin(max(self.alphas), self.mux_fanin, "the given")


@dataclass(frozen=True)
class PruneResult:
    """A pruning run: the summary saved in ``out`` (events, curve, density, QAT) and its scores (valid and test;
    None on ranks other than 0 under torchrun)."""

    out: str
    summary: dict
    eval: dict | None


def prune(spec: Prune) -> PruneResult:
    """Prune, combine and retrain ``spec.weights`` on ``spec.data``; save the packed checkpoint at ``spec.out``."""
    if not spec.data or not spec.out:
        raise SasimError("pruning needs data (the corpus to retrain on) and out (the packed checkpoint to write); "
                         "or rehearse the pruning events without training (--dry-run)", param="data")
    result = prune_checkpoint(spec.weights, spec.data, spec.out, list(spec.alphas), list(spec.gammas), spec.rule,
                              spec.policy, spec.section, spec.row_cap, spec.target, spec.epochs, spec.events,
                              spec.max_train_tokens, spec.device, spec.seed, qat=spec.qat, qat_epochs=spec.qat_epochs,
                              resume=spec.resume, pattern=spec.pattern)
    evaluated = result.pop("eval")
    return PruneResult(out=str(spec.out), summary=result, eval=evaluated)


def rehearse(spec: Prune, hw: str) -> dict:
    """The pruning events of ``spec`` on the dense weights without training, and the tiles of the result on
    ``hw``'s array (see :func:`sasim.lm.prune.plan_pruning`); adds ``events`` and ``hw``."""
    model, _, alphas, gammas = load_dense_for_pruning(spec.weights, spec.alphas, spec.gammas)
    pattern = Pattern.parse(spec.pattern)
    events = spec.events or (1 if pattern.kind in ("nm", "dense") else default_events(spec.epochs))
    config = load_hw_config(hw)
    plan = plan_pruning(model, config, alphas, gammas, spec.rule, spec.policy, spec.section, spec.target, events,
                        spec.row_cap, pattern)
    return {**plan, "event_count": events, "array": f"{config.array.rows}x{config.array.cols}"}

