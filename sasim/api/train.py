"""Jobs that train: train a language model, fine-tune a checkpoint with frozen masks, quantize a checkpoint.

Each takes a frozen, validated spec and returns a typed result; ``sasim train``, ``sasim finetune`` and
``sasim quantize`` only build the spec and print the result. Under ``torchrun`` every rank calls the job, and the
result's written files come from rank 0 (see docs/training.md)::

    from sasim.api.train import Finetune, finetune

    result = finetune(Finetune(weights="models/ptb-char-packed.pt", data="../shared/data/ptb-char",
                               out="tuned.pt", epochs=1, max_train_tokens=200_000))
    print(result.eval)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sasim.checks import check_choice, check_device, check_float, check_int, check_optional_int, check_seed
from sasim.errors import SasimError
from sasim.hw.config import load_hw_config
from sasim.lm.corpus import load_corpus
from sasim.lm.distributed import current
from sasim.lm.finetune import finetune_packed
from sasim.lm.fit import PRECISIONS
from sasim.lm.presets import PRESETS, TrainConfig, get_preset
from sasim.lm.train import train
from sasim.quant.cost import quantized_cost
from sasim.quant.fixed_point_lstm import QuantConfig, layer_scales
from sasim.quant.workflow import quantize_checkpoint
from sasim.report.json_report import write_json
from sasim.report.provenance import run_header


@dataclass(frozen=True)
class Train:
    """What ``sasim train`` runs: a preset (its sizes and recipe), with the overrides given."""

    data: str
    out: str
    preset: str = "small"
    epochs: int | None = None
    seed: int | None = None
    proj_size: int | None = None
    max_train_tokens: int | None = None
    device: str = "cpu"
    threads: int = 0
    resume: bool = False
    precision: str = "fp32"

    def __post_init__(self):
        check_choice("preset", self.preset, tuple(PRESETS))
        check_optional_int("epochs", self.epochs, 1)
        if self.seed is not None:
            check_seed(self.seed)
        check_optional_int("proj_size", self.proj_size, 0)
        check_optional_int("max_train_tokens", self.max_train_tokens, 1)
        check_device("device", self.device)
        check_int("threads", self.threads, 0)
        check_choice("precision", self.precision, PRECISIONS)

    def config(self) -> TrainConfig:
        """The preset with this spec's overrides."""
        cfg = get_preset(self.preset)
        for name in ("epochs", "seed", "proj_size", "max_train_tokens"):
            if getattr(self, name) is not None:
                setattr(cfg, name, getattr(self, name))
        return cfg


@dataclass(frozen=True)
class TrainResult:
    """A training run: the best checkpoint ``out`` and the summary it holds (curve, times, best epoch)."""

    out: str
    summary: dict

    @property
    def best_valid_loss(self) -> float | None:
        """Nats per token at the best epoch (None on ranks other than 0 under torchrun, which save nothing)."""
        return self.summary.get("best_valid_loss")


def train_model(spec: Train) -> TrainResult:
    """Train ``spec``'s preset on its corpus; save the best-validation checkpoint, ``OUT.latest.pt`` and ``OUT.json``."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    summary = train(load_corpus(spec.data), spec.config(), spec.out, device=spec.device, resume=spec.resume,
                    preset=spec.preset, precision=spec.precision)
    return TrainResult(out=str(spec.out), summary=summary)


@dataclass(frozen=True)
class Finetune:
    """What ``sasim finetune`` runs (see :func:`sasim.lm.finetune.finetune_packed` for each field)."""

    weights: str
    data: str
    out: str
    epochs: int = 1
    lr: float | None = None
    max_train_tokens: int | None = None
    device: str = "cpu"
    seed: int = 1
    distill: str | None = None
    distill_weight: float = 0.5
    dropout_scale: float = 1.0
    average_from: int | None = None

    def __post_init__(self):
        check_int("epochs", self.epochs, 1)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, low_open=True)
        check_optional_int("max_train_tokens", self.max_train_tokens, 1)
        check_device("device", self.device)
        check_seed(self.seed)
        check_float("distill_weight", self.distill_weight, 0.0, 1.0)
        check_float("dropout_scale", self.dropout_scale, 0.0)
        if self.average_from is not None and not 1 <= check_int("average_from", self.average_from, 1) <= self.epochs:
            raise SasimError(f"average_from must be an epoch between 1 and epochs ({self.epochs}), got "
                             f"{self.average_from}", param="average_from")


@dataclass(frozen=True)
class FinetuneResult:
    """A fine-tuning run: the summary saved in ``out``, its scores (valid and test; None on ranks other than 0),
    and whether the checkpoint is packed (masks and groups frozen) or dense (the control)."""

    out: str
    summary: dict
    eval: dict | None
    packed: bool


def finetune(spec: Finetune) -> FinetuneResult:
    """Fine-tune ``spec.weights`` with its masks and groups frozen; save it scored at ``spec.out``."""
    result = finetune_packed(spec.weights, spec.data, spec.out, spec.epochs, spec.lr, spec.max_train_tokens,
                             spec.device, spec.seed, teacher=spec.distill, distill_weight=spec.distill_weight,
                             dropout_scale=spec.dropout_scale, average_from=spec.average_from)
    evaluated = result.pop("eval")
    packed = result.pop("packed")
    return FinetuneResult(out=str(spec.out), summary=result, eval=evaluated, packed=packed)


@dataclass(frozen=True)
class Quantize:
    """What ``sasim quantize`` runs: widths (``quant``), scoring, optional QAT, cost on ``hw``, and outputs."""

    weights: str
    data: str
    quant: QuantConfig
    split: str = "valid"
    calib_tokens: int = 20_000
    eval_tokens: int | None = None
    qat_epochs: int = 0
    qat_lr: float | None = None
    max_train_tokens: int | None = None
    device: str = "cpu"
    seed: int = 1
    out: str | None = None
    hw: str | None = None
    arithmetic: str = "bit_serial"
    json: str | None = None

    def __post_init__(self):
        check_choice("split", self.split, ("valid", "test"))
        check_int("qat_epochs", self.qat_epochs, 0)
        check_device("device", self.device)
        check_seed(self.seed)
        check_choice("arithmetic", self.arithmetic, ("bit_serial", "bit_parallel"))


@dataclass(frozen=True)
class QuantizeResult:
    """Scores before and after rounding on the same tokens (``scored``: see
    :func:`sasim.quant.workflow.quantize_checkpoint`) and the cost on the array (None without ``hw``)."""

    scored: dict
    cost: dict | None


def quantize(spec: Quantize) -> QuantizeResult:
    """Quantize ``spec.weights`` (post-training, or with QAT), score it, cost it on ``spec.hw``; write ``out``/``json``."""
    scored = quantize_checkpoint(spec.weights, spec.data, spec.quant, spec.split, spec.calib_tokens,
                                 spec.eval_tokens, spec.qat_epochs, spec.qat_lr, spec.max_train_tokens, spec.device,
                                 spec.seed, spec.out)
    cfg = spec.quant
    cost = None
    if not current().is_main:  # under torchrun rank 0 alone costs, reports and writes
        return QuantizeResult(scored=scored, cost=None)
    if spec.hw:
        cost = quantized_cost(spec.weights, load_hw_config(spec.hw), cfg.weight_bits, cfg.act_bits,
                              min(cfg.acc_bits, 64), spec.arithmetic)
    if spec.json:
        write_json(spec.json, run_header(quant=cfg.to_dict(), weights=str(spec.weights), split=scored["split"],
                                         float32=scored["float32"], quantized=scored["quantized"], qat=scored["qat"],
                                         cost=cost, seconds=scored["seconds"], scales=layer_scales(scored["layers"])))
    return QuantizeResult(scored=scored, cost=cost)
