"""An LSTM stack on the array, timestep by timestep (docs/contract.md section 3).

Each step of layer ``l``: the array computes the packed ``[W_ih | W_hh]`` times the ``M`` stacked
``[x_t ; h_{t-1}]`` vectors; the vector unit adds the biases and does the cell update
(``c = f*c + i*g``, ``h = o*tanh(c)``) in float32, ``ceil(H * M / lanes) * cycles_per_element``
cycles; a projection ``W_hr`` is one more matrix product. Layers and steps run one after another:
the recurrence forbids batching across time, only the ``M`` streams batch.
"""

from __future__ import annotations

import math

import numpy as np

from sasim.combine.packed import LayerPacking
from sasim.hw.config import HardwareConfig
from sasim.sim.engine import check_mode, map_any, simulate_matmul
from sasim.sim.mapping import weights_fit
from sasim.sim.metrics import WorkPart, part_metrics, total_metrics
from sasim.workload.layer_packing import workload_packings
from sasim.workload.lstm_weights import LSTMWorkload, load_lstm_workload


def _sigmoid(x):
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def vector_unit_cycles(hw: HardwareConfig, hidden: int, batch: int) -> int:
    """Cycles of one LSTM cell update of ``hidden`` units for ``batch`` streams."""
    return math.ceil(hidden * batch / hw.vector_unit.lanes) * hw.vector_unit.cycles_per_element


def lstm_inputs(workload: LSTMWorkload, batch: int, steps: int, seed: int) -> np.ndarray:
    """``(steps, batch, I)`` first-layer inputs: embeddings of seeded random tokens, or N(0, 1) values."""
    rng = np.random.default_rng(seed)
    if workload.embedding is not None:
        tokens = rng.integers(0, workload.embedding.shape[0], size=(steps, batch))
        return workload.embedding[tokens]
    return rng.standard_normal((steps, batch, workload.layers[0].input_size)).astype(np.float32)


def simulate_lstm(workload: LSTMWorkload, packings: list[LayerPacking], hw: HardwareConfig, batch: int = 1,
                  steps: int = 1, timing: str = "sasim", mode: str = "cycle", seed: int = 0,
                  inputs: np.ndarray | None = None, progress=None):
    """Run ``steps`` timesteps of every layer for ``batch`` streams.

    Returns
    -------
    parts : list of WorkPart
        One per matrix (``layerL.gates``, ``layerL.proj``), counts summed over the steps.
    outputs : np.ndarray or None
        Cycle mode: the last layer's outputs, ``(steps, batch, output_size)``, as the array computes them.
    weights_resident : bool
        Whether all packed weights fit in the weight SRAM.
    """
    check_mode(mode, timing)
    resident = weights_fit(hw, [m for p in packings for m in (p.gates, p.projection) if m is not None])
    maps = [(map_any(p.gates, hw, resident, batch), p.projection and map_any(p.projection, hw, resident, batch))
            for p in packings]
    counts = [[None, None] for _ in packings]
    vec = [0] * len(packings)
    outputs = None
    if mode == "analytic":
        for li, (p, (tg, tp)) in enumerate(zip(packings, maps)):
            one = simulate_matmul(p.gates, None, hw, batch, timing, "analytic", resident, tg).counts
            counts[li][0] = one.scaled(steps)
            if p.projection is not None:
                one = simulate_matmul(p.projection, None, hw, batch, timing, "analytic", resident, tp).counts
                counts[li][1] = one.scaled(steps)
            vec[li] = vector_unit_cycles(hw, workload.layers[li].hidden_size, batch) * steps
    else:
        x_seq = lstm_inputs(workload, batch, steps, seed) if inputs is None else inputs
        h = [np.zeros((batch, layer.output_size), np.float32) for layer in workload.layers]
        c = [np.zeros((batch, layer.hidden_size), np.float32) for layer in workload.layers]
        outputs = np.zeros((steps, batch, workload.layers[-1].output_size), np.float32)
        for t in range(steps):
            x = x_seq[t]
            for li, (layer, p, (tg, tp)) in enumerate(zip(workload.layers, packings, maps)):
                stacked = np.concatenate([x, h[li]], axis=1)
                res = simulate_matmul(p.gates, stacked, hw, batch, timing, "cycle", resident, tg)
                counts[li][0] = res.counts if counts[li][0] is None else counts[li][0] + res.counts
                gates = res.y + layer.bias[None, :]
                H = layer.hidden_size
                i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
                c[li] = _sigmoid(f) * c[li] + _sigmoid(i) * np.tanh(g)
                hidden = (_sigmoid(o) * np.tanh(c[li])).astype(np.float32)
                vec[li] += vector_unit_cycles(hw, H, batch)
                if p.projection is not None:
                    res = simulate_matmul(p.projection, hidden, hw, batch, timing, "cycle", resident, tp)
                    counts[li][1] = res.counts if counts[li][1] is None else counts[li][1] + res.counts
                    hidden = res.y
                h[li] = hidden
                x = hidden
            outputs[t] = x
            if progress is not None:
                progress.update(1)
    parts = []
    for li, (layer, p) in enumerate(zip(workload.layers, packings)):
        for which, matrix, dense in (("gates", p.gates, layer.combined), ("proj", p.projection, layer.w_hr)):
            if matrix is None:
                continue
            cnt = counts[li][0 if which == "gates" else 1]
            parts.append(WorkPart(
                name=f"layer{li}.{which}", rows=matrix.shape[0], cols=matrix.shape[1], groups=matrix.num_groups,
                nonzeros=matrix.nonzeros, nonzeros_before=matrix.stats.get("nonzeros_before", int(np.count_nonzero(dense))),
                counts=cnt, steps=steps, batch=batch, cells=matrix.cells, vector_cycles=vec[li] if which == "gates" else 0,
                cell_bytes=hw.cell_bytes(matrix.max_group_size), lanes=max(matrix.max_group_size, 1),
            ))
    return parts, outputs, resident


def simulate_checkpoint(weights, hw: HardwareConfig, batch: int = 1, steps: int = 1, timing: str = "sasim"):
    """Analytic run of a checkpoint's LSTM layers as the array holds them (its stored packed form, or dense):
    ``(parts, total metrics, weights_resident)``."""

    workload = load_lstm_workload(weights)
    parts, _, resident = simulate_lstm(workload, workload_packings(workload), hw, batch, steps, timing, "analytic")
    return parts, total_metrics(parts, [part_metrics(p, hw, resident) for p in parts], hw, steps), resident
