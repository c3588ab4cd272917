"""Speed at real scale: analytic LSTM-8192-1024 (full and sampled softmax) and one cycle-level timestep
of the AWD-LSTM enwik8 model (47M weights) at batch 128 on 32x32.

Usage: ``python benchmarks/bench_workloads.py``.
"""

from __future__ import annotations

import time

from sasim.hw.config import load_hw_config
from sasim.sim.workload_sim import simulate_workload
from sasim.workload.spec import PRESETS, load_workload, parse_workload


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    hw128, hw32 = load_hw_config("128x128"), load_hw_config("32x32")
    sampled = load_workload("lstm-8192-1024")
    full = parse_workload({**PRESETS["lstm-8192-1024"], "layers": PRESETS["lstm-8192-1024"]["layers"][:-1]
                           + [dict(type="softmax", vocab=793471, input=1024)]})
    for name, spec in (("sampled softmax (8192 samples)", sampled), ("full softmax (793,471 words)", full)):
        for hw in (hw128, hw32):
            s, (parts, _) = timed(lambda: simulate_workload(spec, hw, mode="analytic"))
            cycles = sum(p.counts.cycles + p.vector_cycles for p in parts) / spec.steps
            print(f"LSTM-8192-1024, {name}, {hw.name}: analytic {s * 1e3:.1f} ms, {cycles:,.0f} cycles per step")
    enwik8 = load_workload("awd-enwik8")
    s, (parts, _) = timed(lambda: simulate_workload(enwik8, hw32, batch=128, steps=1, mode="cycle"))
    cycles = sum(p.counts.cycles for p in parts)
    print(f"AWD-LSTM enwik8, one timestep at batch 128 on 32x32, cycle-level with values: {s:.1f} s "
          f"(weights generated, simulated, {cycles:,} array cycles, {hw32.array.rows * hw32.array.cols * cycles / s:.2e} "
          "PE-cycles/s including weight generation)")


if __name__ == "__main__":
    main()
