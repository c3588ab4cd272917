"""Workloads without trained weights: a YAML spec of layers, and named presets.

Every layer type becomes matrix products on the array plus element-wise work in the vector unit.
Per timestep (one token for each of the ``batch`` streams):

* ``lstm`` (``input``, ``hidden``, optional ``proj``): ``[W_ih | W_hh]`` (``4H x (I + P)``) and, with a
  projection, ``W_hr`` (``P x H``), each on ``batch`` vectors; the cell update on ``H * batch`` elements.
* ``softmax`` (``vocab``, ``input``, optional ``sampled``): full: ``V x P`` on ``batch`` vectors, then
  exp and sum over ``V * batch`` elements. Sampled (Jozefowicz et al. 2016): ``S`` importance samples
  shared by the step's ``batch`` targets: the rows of the samples and of the batch's targets,
  ``(S + batch) x P``, on ``batch`` vectors; exp and sum over ``(S + batch) * batch`` elements.
* ``char_cnn`` (Kim et al. 2015): characters of each word (padded to ``word_length``) embedded in
  ``char_dim``; for each filter width ``w`` with ``F_w`` filters, a ``F_w x (w * char_dim)`` matrix on
  ``batch * (word_length - w + 1)`` vectors (one per position) and max over time; ``highway`` layers
  of two ``D x D`` matrices each (``D = sum F_w``); a linear map ``output x D``.
* ``qrnn`` (Bradbury et al. 2017; ``input``, ``hidden``, ``window``): the gate matrix ``3H x (window * I)``
  runs on all ``steps * batch`` vectors of a sequence at once; only the element-wise fo-pooling is
  recurrent (``H * batch`` elements per step). Its cost is reported per token as the sequence's / steps.
* ``linear`` (``rows``, ``cols``): one matrix on ``batch`` vectors.

Synthetic weights are seeded, with a ``density`` and a ``pattern`` (``random`` keeps each weight
with probability ``density``; ``columns`` keeps whole columns, the structure column combining
prefers). Fully dense matrices are known by shape alone in analytic mode, so 1B-Word-sized models
need no memory for weights; sparse or packed ones are materialized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sasim.checks import MAX_COUNT
from sasim.errors import SasimError
from sasim.hw.yaml_loader import parse_yaml, read_text_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LSTMSpec(_Strict):
    type: Literal["lstm"]
    input: int = Field(gt=0, le=MAX_COUNT)
    hidden: int = Field(gt=0, le=MAX_COUNT)
    proj: int = Field(0, ge=0)
    combine: bool = True


class SoftmaxSpec(_Strict):
    type: Literal["softmax"]
    vocab: int = Field(gt=0, le=MAX_COUNT)
    input: int = Field(gt=0, le=MAX_COUNT)
    sampled: int = Field(0, ge=0, description="importance samples shared by a step's targets; 0 = full softmax")
    combine: bool = False


class CharCNNSpec(_Strict):
    type: Literal["char_cnn"]
    char_dim: int = Field(16, gt=0)
    word_length: int = Field(50, gt=0)
    filters: dict[int, int] = Field(description="filter width -> number of filters")
    highway: int = Field(2, ge=0)
    output: int = Field(gt=0, le=MAX_COUNT)
    combine: bool = False


class QRNNSpec(_Strict):
    type: Literal["qrnn"]
    input: int = Field(gt=0, le=MAX_COUNT)
    hidden: int = Field(gt=0, le=MAX_COUNT)
    window: int = Field(2, gt=0)
    combine: bool = True


class LinearSpec(_Strict):
    type: Literal["linear"]
    rows: int = Field(gt=0, le=MAX_COUNT)
    cols: int = Field(gt=0, le=MAX_COUNT)
    combine: bool = True


LayerSpec = Annotated[Union[LSTMSpec, SoftmaxSpec, CharCNNSpec, QRNNSpec, LinearSpec], Field(discriminator="type")]


class WeightsSpec(_Strict):
    density: float = Field(1.0, gt=0, le=1)
    pattern: Literal["random", "columns"] = "random"
    seed: int = 0


class PackingSpec(_Strict):
    alpha: int = Field(gt=0, le=MAX_COUNT)
    gamma: float = Field(ge=0)
    rule: Literal["prune", "spill"] = "prune"
    policy: Literal["paper", "min-conflict"] = "paper"
    section: int = Field(256, ge=0)
    row_cap: int | None = Field(None, ge=0)


class WorkloadSpec(_Strict):
    version: Literal[1]
    name: str
    batch: int = Field(1, gt=0, le=MAX_COUNT, description="default M (streams)")
    steps: int = Field(1, gt=0, le=MAX_COUNT, description="default T (timesteps; QRNN sequences)")
    weights: WeightsSpec = WeightsSpec()
    packing: PackingSpec | None = Field(None, description="column combining for layers with combine: true "
                                                          "(the command line's --alpha/--gamma take precedence)")
    layers: list[LayerSpec] = Field(min_length=1)


PRESETS = {
    "awd-char-ptb": dict(version=1, name="AWD-LSTM char-PTB (3 x 1000)", batch=128, layers=[
        dict(type="lstm", input=128, hidden=1000), dict(type="lstm", input=1000, hidden=1000),
        dict(type="lstm", input=1000, hidden=128), dict(type="softmax", vocab=51, input=128)]),
    "awd-enwik8": dict(version=1, name="AWD-LSTM enwik8 (3 x 1840)", batch=128, layers=[
        dict(type="lstm", input=400, hidden=1840), dict(type="lstm", input=1840, hidden=1840),
        dict(type="lstm", input=1840, hidden=400), dict(type="softmax", vocab=205, input=400)]),
    "qrnn-wt103": dict(version=1, name="QRNN WikiText-103 (4 x 2500)", batch=128, steps=70, layers=[
        dict(type="qrnn", input=400, hidden=2500, window=2), dict(type="qrnn", input=2500, hidden=2500, window=1),
        dict(type="qrnn", input=2500, hidden=2500, window=1), dict(type="qrnn", input=2500, hidden=400, window=1),
        dict(type="softmax", vocab=267735, input=400)]),
    "lstm-8192-1024": dict(version=1, name="1B Word LSTM-8192-1024 with char-CNN inputs", batch=128, steps=20, layers=[
        dict(type="char_cnn", char_dim=16, word_length=50, highway=2, output=1024,
             filters={1: 256, 2: 256, 3: 512, 4: 512, 5: 768, 6: 896, 7: 896}),
        dict(type="lstm", input=1024, hidden=8192, proj=1024), dict(type="lstm", input=1024, hidden=8192, proj=1024),
        dict(type="softmax", vocab=793471, input=1024, sampled=8192)]),
}


def parse_workload(data: dict, source: str = "<workload>") -> WorkloadSpec:
    try:
        return WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SasimError(f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems)) from None


def load_workload(name_or_path) -> WorkloadSpec:
    """A preset by name, or a YAML workload file (a :class:`WorkloadSpec` already parsed is returned as it is)."""
    if isinstance(name_or_path, WorkloadSpec):
        return name_or_path
    if str(name_or_path) in PRESETS:
        return parse_workload(PRESETS[str(name_or_path)], str(name_or_path))
    path = Path(name_or_path)
    if not path.is_file():
        raise SasimError(f"workload {name_or_path} is neither a file nor a preset ({', '.join(PRESETS)})")
    data, dups = parse_yaml(read_text_file(path, "workload"), str(path))
    if dups:
        raise SasimError(f"{path}: " + "; ".join(dups))
    if not isinstance(data, dict):
        raise SasimError(f"{path} must hold a mapping (version, name, layers, ...)")
    return parse_workload(data, str(path))


@dataclass
class MatrixOp:
    """One matrix product of a layer: ``rows x cols`` weights on ``vectors`` input vectors."""

    name: str
    rows: int
    cols: int
    vectors: int
    combine: bool


@dataclass
class LayerOps:
    """A layer's work for one timestep (``per_sequence``: for a whole sequence of ``steps``)."""

    name: str
    kind: str
    matrices: list
    vector_elements: int
    per_sequence: bool = False
    extra: dict = field(default_factory=dict)


def expand(spec: WorkloadSpec, batch: int, steps: int) -> list[LayerOps]:
    """The matrix products and vector-unit elements of every layer (see the module docstring)."""
    out = []
    for i, layer in enumerate(spec.layers):
        name = f"{i}.{layer.type}"
        if isinstance(layer, LSTMSpec):
            width = layer.proj or layer.hidden
            mats = [MatrixOp(f"{name}.gates", 4 * layer.hidden, layer.input + width, batch, layer.combine)]
            if layer.proj:
                mats.append(MatrixOp(f"{name}.proj", layer.proj, layer.hidden, batch, layer.combine))
            out.append(LayerOps(name, "lstm", mats, layer.hidden * batch))
        elif isinstance(layer, SoftmaxSpec):
            rows = layer.sampled + batch if layer.sampled else layer.vocab
            kind = "sampled_softmax" if layer.sampled else "softmax"
            out.append(LayerOps(name, kind, [MatrixOp(f"{name}.logits", rows, layer.input, batch, layer.combine)],
                                rows * batch))
        elif isinstance(layer, CharCNNSpec):
            mats, elements = [], 0
            for w, f in sorted(layer.filters.items()):
                if not 0 < w <= layer.word_length:
                    raise SasimError(f"char_cnn filter width {w} must be in 1..{layer.word_length}")
                positions = layer.word_length - w + 1
                mats.append(MatrixOp(f"{name}.conv{w}", f, w * layer.char_dim, batch * positions, layer.combine))
                elements += f * batch * positions  # max over time
            d = sum(layer.filters.values())
            for h in range(layer.highway):
                mats.append(MatrixOp(f"{name}.highway{h}.transform", d, d, batch, layer.combine))
                mats.append(MatrixOp(f"{name}.highway{h}.gate", d, d, batch, layer.combine))
                elements += d * batch
            mats.append(MatrixOp(f"{name}.proj", layer.output, d, batch, layer.combine))
            out.append(LayerOps(name, "char_cnn", mats, elements))
        elif isinstance(layer, QRNNSpec):
            mats = [MatrixOp(f"{name}.gates", 3 * layer.hidden, layer.window * layer.input, batch * steps,
                             layer.combine)]
            out.append(LayerOps(name, "qrnn", mats, layer.hidden * batch * steps, per_sequence=True))
        else:
            out.append(LayerOps(name, "linear", [MatrixOp(f"{name}.linear", layer.rows, layer.cols, batch,
                                                          layer.combine)], 0))
    return out


def synthetic_weights(op: MatrixOp, weights: WeightsSpec, index: int) -> np.ndarray:
    """Seeded synthetic weights of one matrix (each matrix its own stream, from the spec's seed)."""
    rng = np.random.default_rng([weights.seed, index])
    w = rng.standard_normal((op.rows, op.cols), dtype=np.float32) / math.sqrt(op.cols)
    if weights.density < 1:
        if weights.pattern == "random":
            w *= rng.random((op.rows, op.cols), dtype=np.float32) < weights.density
        else:
            w *= (rng.random(op.cols) < weights.density)[None, :]
    return w
