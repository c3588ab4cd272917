"""Jobs: simulate an LSTM checkpoint (scored with the weights the array holds), a workload, or one GEMM.

A Python user does what ``sasim run`` does in a few lines::

    from sasim.api.simulate import Packing, RunCheckpoint, run_checkpoint

    result = run_checkpoint(RunCheckpoint(hw="32x32", weights="models/ptb-char-small.pt", batch=1,
                                          packing=Packing(alpha=8, gamma=0.5)))
    print(result.total["cycles_per_step"], result.total["utilization"])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from sasim.checks import check_choice, check_float, check_int, check_memory, check_optional_int, check_seed
from sasim.combine.column_combine import RULES, pack_matrix
from sasim.combine.grouping import POLICIES, validate_grouping_args
from sasim.combine.packed import DenseShape, PackedMatrix
from sasim.errors import SasimError
from sasim.hw.config import HardwareConfig, load_hw_config, resolve_dataflow
from sasim.lm.loading import evaluate_model, load_language_model, with_array_weights
from sasim.quant.checkpoint import stored_quantization
from sasim.quant.fixed_point_lstm import QuantConfig, score_quantized
from sasim.sim.engine import check_mode, simulate_matmul
from sasim.sim.lstm_array import simulate_lstm
from sasim.sim.mapping import weights_fit, weights_memory_bytes
from sasim.sim.metrics import WorkPart, part_metrics, total_metrics
from sasim.sim.workload_sim import cycles_by_kind, simulate_workload
from sasim.workload.layer_packing import pack_workload, stored_packings, workload_packings
from sasim.workload.lstm_weights import load_lstm_workload
from sasim.workload.spec import WorkloadSpec, expand, load_workload


def _check_dataflow(dataflow) -> None:
    if dataflow is not None:
        resolve_dataflow(dataflow)


@dataclass(frozen=True)
class Packing:
    """Column-combining parameters (docs/contract.md section 1) and the LSTM-specific hardware rules."""

    alpha: int
    gamma: float
    rule: str = "prune"
    policy: str = "paper"
    section: int = 256
    row_cap: int | None = None
    per_gate: bool = False
    mix_ih_hh: bool = True

    def __post_init__(self):
        validate_grouping_args(self.alpha, self.gamma, self.section, self.row_cap, self.policy)
        check_choice("rule", self.rule, RULES)
        check_choice("policy", self.policy, POLICIES)

    def grouping(self) -> dict:
        """The parameters that every packed matrix takes (without the LSTM rules)."""
        return dict(alpha=self.alpha, gamma=self.gamma, rule=self.rule, policy=self.policy, section=self.section,
                    row_cap=self.row_cap)


@dataclass(frozen=True)
class RunCheckpoint:
    """What ``sasim run --weights`` simulates: a checkpoint on a hardware config, ``batch`` streams for ``steps``."""

    hw: str
    weights: str
    batch: int = 1
    steps: int = 1
    timing: str = "sasim"
    mode: str = "cycle"
    seed: int = 0
    packing: Packing | None = None
    data: str | None = None
    split: str = "test"
    dataflow: str | None = None  # None: the config's own

    def __post_init__(self):
        _check_dataflow(self.dataflow)
        check_int("batch", self.batch, 1)
        check_int("steps", self.steps, 1)
        check_mode(self.mode, self.timing)
        check_seed(self.seed)
        check_choice("split", self.split, ("valid", "test"))


@dataclass
class RunResult:
    """The metrics of a run (per matrix and in total, under the contract's names) and what produced them."""

    spec: RunCheckpoint
    hw: HardwareConfig
    parts: list
    total: dict
    resident: bool
    packing: dict
    workload_path: str
    layout: str
    layers: int
    accuracy: dict | None = None
    fixed_point: bool = False
    stored_scales: bool = False
    settings: dict = field(default_factory=dict)


def run_checkpoint(spec: RunCheckpoint, progress=None) -> RunResult:
    """Load, pack (a packed checkpoint runs with its stored groups), simulate every LSTM layer, and with
    ``spec.data`` score the model with the weights the array holds (in the config's fixed-point arithmetic
    when it has one)."""
    hw = load_hw_config(spec.hw, spec.dataflow)
    workload = load_lstm_workload(spec.weights)
    stored = stored_packings(workload)
    packing = asdict(spec.packing) if spec.packing else None
    if stored is not None:
        params = workload.raw["packing"]["packing"]
        given = spec.packing.grouping() if spec.packing else {}
        clash = {k: (v, params.get(k)) for k, v in given.items() if params.get(k, v) != v}
        if clash:
            said = ", ".join(f"{k} {v[0]} (checkpoint: {v[1]})" for k, v in clash.items())
            raise SasimError(f"{workload.path} is already packed and its packing disagrees with the flags: {said}; "
                             "drop the packing flags, or pack the original dense checkpoint")
        packings, packing = stored, dict(params, stored=True)  # simulate_matmul checks groups against mux_fanin
    elif spec.packing:
        packings = pack_workload(workload, hw, **spec.packing.grouping(), mix_ih_hh=spec.packing.mix_ih_hh,
                                 per_gate=spec.packing.per_gate)
    else:
        packings = workload_packings(workload)
    parts, _, resident = simulate_lstm(workload, packings, hw, spec.batch, spec.steps, spec.timing, spec.mode,
                                       spec.seed, progress=progress)
    per = [part_metrics(p, hw, resident) for p in parts]
    total = total_metrics(parts, per, hw, spec.steps)
    fixed = hw.arithmetic.number_format == "fixed_point"
    accuracy, stored_scales = None, False
    if spec.data:
        model, raw = load_language_model(workload.path)
        model = with_array_weights(model, packings)
        stored_scales = bool(raw.get("quantization"))
        accuracy = (_fixed_point_accuracy(model, raw, hw, spec) if fixed
                    else evaluate_model(model, raw, spec.data, spec.split))
        total.update({k: v for k, v in accuracy.items() if k in ("bpc", "ppl", "loss_nats")})
    settings = dict(seed=spec.seed, dataflow=hw.array.dataflow, timing=spec.timing, mode=spec.mode, batch=spec.batch, steps=spec.steps,
                    weights=str(workload.path), packing=packing or {"dense": True},
                    data=spec.data and str(spec.data), split=spec.data and spec.split,
                    numerics="float32" if not fixed else
                    "table values float32; accuracy in the config's fixed-point arithmetic" if spec.data else
                    "table values float32 (fixed-point timing)")
    return RunResult(spec=spec, hw=hw, parts=per, total=total, resident=resident, packing=packing or {},
                     workload_path=str(workload.path), layout=workload.layout, layers=len(workload.layers),
                     accuracy=accuracy, fixed_point=fixed, stored_scales=stored_scales, settings=settings)


def _fixed_point_accuracy(model, raw, hw, spec: RunCheckpoint) -> dict:
    """bpc / perplexity with the LSTM layers in the config's fixed-point arithmetic (equal to the simulator's
    integer arithmetic, tests/quant/test_quant_lstm.py); embedding and decoder stay float32."""
    a = hw.arithmetic
    cfg = QuantConfig(weight_bits=a.weight_bits, act_bits=a.act_bits, acc_bits=min(a.acc_bits, 62))
    qlayers = None
    if raw.get("quantization"):  # a quantized checkpoint: its own scales (and vector-unit precision)
        stored, qlayers = stored_quantization(model, raw)
        if (stored.weight_bits, stored.act_bits) != (a.weight_bits, a.act_bits):
            raise SasimError(f"the checkpoint is quantized to {stored.weight_bits}/{stored.act_bits} bits but {hw.name} "
                             f"computes {a.weight_bits}/{a.act_bits}; use a config with its widths, or its float source")
        cfg = QuantConfig(**{**stored.to_dict(), "acc_bits": cfg.acc_bits})
    scored = score_quantized(model, raw, cfg, spec.data, spec.split, calib_tokens=20_000, qlayers=qlayers)
    return {**scored["quantized"], "tokens": scored["tokens"], "split": scored["split"]}


@dataclass(frozen=True)
class Gemm:
    """What ``sasim gemm`` simulates: ``y = x @ W.T`` for a seeded random ``N x K`` matrix of this density."""

    hw: str
    m: int
    n: int
    k: int
    density: float = 1.0
    timing: str = "sasim"
    mode: str = "cycle"
    seed: int = 0
    packing: Packing | None = None
    dataflow: str | None = None  # None: the config's own

    def __post_init__(self):
        _check_dataflow(self.dataflow)
        for name in ("m", "n", "k"):
            check_int(name, getattr(self, name), 1)
        check_float("density", self.density, 0.0, 1.0, low_open=True)
        check_mode(self.mode, self.timing)
        check_seed(self.seed)


@dataclass
class SimResult:
    """Metrics per matrix and in total (contract names), the config, and the settings for the JSON report."""

    hw: HardwareConfig
    parts: list
    total: dict
    resident: bool
    settings: dict
    extra: dict = field(default_factory=dict)


def run_gemm(spec: Gemm) -> SimResult:
    """One seeded random matrix product (values checked against numpy in cycle mode). An analytic run of a dense
    matrix needs only its shape; anything else is refused before allocation when it would not fit in memory."""
    hw = load_hw_config(spec.hw, spec.dataflow)
    return simulate_gemm(hw, spec.m, spec.n, spec.k, spec.density, spec.timing, spec.mode, spec.seed,
                         spec.packing.grouping() if spec.packing else None)


def simulate_gemm(hw: HardwareConfig, m: int, n: int, k: int, density: float = 1.0, timing: str = "sasim",
                  mode: str = "analytic", seed: int = 0, grouping: dict | None = None, name: str = "gemm") -> SimResult:
    """:func:`run_gemm` on a hardware config already loaded (``grouping``: :meth:`Packing.grouping` or None)."""
    rng = np.random.default_rng(seed)
    if mode == "analytic" and density == 1 and not grouping:
        w = packed = DenseShape((n, k))
        x = None
    else:
        cycle = mode == "cycle"
        check_memory(weights_memory_bytes([(n, k)]) + (4 * m * k if cycle else 0),
                     f"the {n} x {k} random matrix" + (f" and {m} input vectors" if cycle else ""),
                     "--mode analytic with --density 1 and no packing needs only the shape"
                     if cycle or density < 1 or grouping else "")
        w = rng.standard_normal((n, k)).astype(np.float32)
        if density < 1:
            w *= rng.random((n, k)) < density
        x = rng.standard_normal((m, k)).astype(np.float32) if cycle else None
        packed = pack_matrix(w, mux_fanin=hw.array.mux_fanin, **grouping) if grouping else PackedMatrix.from_dense(w)
    resident = weights_fit(hw, [packed])
    res = simulate_matmul(packed, x, hw, m, timing, mode, resident)
    part = WorkPart(name=name, rows=n, cols=k, groups=packed.num_groups, nonzeros=packed.nonzeros,
                    nonzeros_before=packed.nonzeros if isinstance(w, DenseShape) else int(np.count_nonzero(w)),
                    counts=res.counts, steps=1, batch=m, cell_bytes=res.tilemap.cell_bytes,
                    lanes=max(packed.max_group_size, 1))
    pm = part_metrics(part, hw, resident)
    total = total_metrics([part], [pm], hw, 1)
    if timing == "scalesim":
        total["scalesim_total_cycles"] = total["cycles"] - 1
    if res.y is not None:
        ref = x @ packed.unpack().T
        total["max_abs_error_vs_numpy"] = float(np.max(np.abs(res.y - ref))) if ref.size else 0.0
    settings = dict(seed=seed, dataflow=hw.array.dataflow, timing=timing, mode=mode, batch=m, density=density,
                    packing=grouping or {"dense": True})
    return SimResult(hw=hw, parts=[pm], total=total, resident=resident, settings=settings)


@dataclass(frozen=True)
class RunWorkload:
    """What ``sasim run --workload`` simulates: a preset or YAML workload with seeded synthetic weights.

    ``workload`` is a preset name, a YAML file, or a :class:`~sasim.workload.spec.WorkloadSpec` built in Python
    (:func:`~sasim.workload.spec.parse_workload`), as the report scripts do."""

    hw: str
    workload: str | WorkloadSpec
    batch: int | None = None  # None: the workload's own
    steps: int | None = None
    timing: str = "sasim"
    mode: str = "analytic"
    seed: int = 0
    packing: Packing | None = None  # None: the workload's own packing, if it has one
    dataflow: str | None = None  # None: the config's own

    def __post_init__(self):
        _check_dataflow(self.dataflow)
        check_optional_int("batch", self.batch, 1)
        check_optional_int("steps", self.steps, 1)
        check_mode(self.mode, self.timing)
        check_seed(self.seed)


def run_workload(spec: RunWorkload, progress_factory=None) -> SimResult:
    """Simulate a workload; ``extra`` holds ``name``, ``batch``, ``steps`` and ``kinds`` (cycles per token by layer
    type). ``progress_factory(total)`` may return a progress bar over the matrices."""
    hw = load_hw_config(spec.hw, spec.dataflow)
    workload = load_workload(spec.workload)
    batch = workload.batch if spec.batch is None else spec.batch
    steps = workload.steps if spec.steps is None else spec.steps
    packing = spec.packing.grouping() if spec.packing else None
    if packing is None and workload.packing is not None:
        packing = workload.packing.model_dump()
    count = sum(len(layer.matrices) for layer in expand(workload, batch, steps))
    bar = progress_factory(count, spec.mode == "analytic" and not packing) if progress_factory else None
    try:
        parts, resident = simulate_workload(workload, hw, batch, steps, spec.mode, spec.timing, packing, spec.seed, bar)
    finally:
        if bar is not None:
            bar.close()
    per = [part_metrics(p, hw, resident) for p in parts]
    total = total_metrics(parts, per, hw, steps)
    kinds = cycles_by_kind(parts, per, steps)
    total["cycles_per_token_by_kind"] = kinds
    errors = [p.extra["max_abs_error"] for p in parts if "max_abs_error" in p.extra]
    if errors:
        total["max_abs_error_vs_numpy"] = max(errors)
    settings = dict(seed=spec.seed, dataflow=hw.array.dataflow, timing=spec.timing, mode=spec.mode, batch=batch, steps=steps,
                    workload=workload.model_dump(), packing=packing or {"dense": True})
    return SimResult(hw=hw, parts=per, total=total, resident=resident, settings=settings,
                     extra=dict(name=workload.name, batch=batch, steps=steps, kinds=kinds))
