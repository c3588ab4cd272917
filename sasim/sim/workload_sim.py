"""Simulating a workload spec (:mod:`sasim.workload.spec`): every matrix product on the array, plus
the vector unit's element-wise work, for ``steps`` timesteps of ``batch`` streams.

Work per timestep does not depend on the values, so each matrix is simulated once and its counts
are multiplied by the steps it runs (QRNN gate products run once per sequence). In cycle mode the
synthetic weights and seeded inputs go through the cycle-level simulator, and its outputs are
checked against numpy (``max_abs_error``).
"""

from __future__ import annotations

import math

import numpy as np

from sasim.checks import check_int, check_memory
from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import DenseShape, PackedMatrix
from sasim.hw.config import HardwareConfig
from sasim.sim.engine import check_mode, simulate_matmul
from sasim.sim.mapping import weights_fit, weights_memory_bytes
from sasim.sim.metrics import WorkPart
from sasim.workload.spec import WorkloadSpec, expand, synthetic_weights


def simulate_workload(spec: WorkloadSpec, hw: HardwareConfig, batch: int | None = None, steps: int | None = None,
                      mode: str = "analytic", timing: str = "sasim", packing: dict | None = None, seed: int = 0,
                      progress=None):
    """Simulate every layer of ``spec``.

    Returns
    -------
    parts : list of WorkPart
        One per matrix, counts for all ``steps``; ``extra`` holds ``layer``, ``kind`` and, in cycle
        mode, ``max_abs_error`` against numpy.
    resident : bool
        Whether the (packed) weights fit in the weight SRAM.
    """
    check_mode(mode, timing)
    batch = spec.batch if batch is None else check_int("batch", batch, 1)
    steps = spec.steps if steps is None else check_int("steps", steps, 1)
    layers = expand(spec, batch, steps)
    materialize = mode == "cycle" or packing is not None or spec.weights.density < 1
    if materialize:
        ops = [op for layer in layers for op in layer.matrices]
        check_memory(weights_memory_bytes((op.rows, op.cols) for op in ops),
                     f"materializing the workload's {len(ops)} weight matrices",
                     "the analytic mode needs only their shapes (--mode analytic, density 1, no packing)")
    matrices = []
    index = 0
    for layer in layers:
        for op in layer.matrices:
            if materialize:
                w = synthetic_weights(op, spec.weights, index)
                m = pack_matrix(w, mux_fanin=hw.array.mux_fanin, **packing) if packing and op.combine \
                    else PackedMatrix.from_dense(w)
            else:
                m = DenseShape((op.rows, op.cols))
            matrices.append((layer, op, m))
            index += 1
            if progress is not None:
                progress.update(1)
    resident = weights_fit(hw, [m for _, _, m in matrices])
    rng = np.random.default_rng(seed)
    parts = []
    first_of_layer = set()
    for layer, op, m in matrices:
        x = rng.standard_normal((op.vectors, op.cols), dtype=np.float32) if mode == "cycle" else None
        res = simulate_matmul(m, x, hw, op.vectors, timing, mode, resident)
        times = 1 if layer.per_sequence else steps
        extra = {"layer": layer.name, "kind": layer.kind, "per_sequence": layer.per_sequence}
        if res.y is not None:
            ref = m.matmul(x) if isinstance(m, PackedMatrix) and op.rows * op.cols * op.vectors < 5e8 else None
            if ref is not None:
                extra["max_abs_error"] = float(np.max(np.abs(res.y - ref)))
        vector = 0
        if layer.name not in first_of_layer:
            first_of_layer.add(layer.name)
            per = math.ceil(layer.vector_elements / hw.vector_unit.lanes) * hw.vector_unit.cycles_per_element
            vector = per * times
        nz_before = m.stats.get("nonzeros_before", m.nonzeros)
        parts.append(WorkPart(
            name=op.name, rows=op.rows, cols=op.cols, groups=m.num_groups, nonzeros=m.nonzeros,
            nonzeros_before=nz_before, counts=res.counts.scaled(times), steps=times, batch=op.vectors,
            vector_cycles=vector, cell_bytes=hw.cell_bytes(m.max_group_size), lanes=max(m.max_group_size, 1),
            cells=m.cells, extra=extra))
    return parts, resident


def cycles_by_kind(parts: list[WorkPart], per_part: list[dict], steps: int) -> dict:
    """Cycles per token (one timestep of every stream) summed by layer type."""
    out = {}
    for part, metrics in zip(parts, per_part):
        out.setdefault(part.extra["kind"], 0.0)
        out[part.extra["kind"]] += metrics["cycles"] / steps
    return out
