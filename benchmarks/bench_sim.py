"""Simulator speed: cycle-level PE-cycles per second, analytic time, and SCALE-Sim for comparison.

Usage::

    python benchmarks/bench_sim.py                  # sasim only
    python benchmarks/bench_sim.py --with-scalesim  # also time SCALE-Sim v3 on the same GEMM, per dataflow (minutes)

Prints ratios measured in this one run. "Simulated PE-cycles" counts R x C PEs for every cycle of
the simulated schedule (idle PEs included: the kernel advances all of them, skipping the idle ones
cheaply). Because a schedule that streams every other beat (bandwidth-limited output and input
stationary) has half its PE-cycles idle, it also prints MACs per second (the product's useful MACs
over the same time), the rate of the actual work. Single-threaded kernel, so the per-core figure is
the figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from sasim.combine.packed import PackedMatrix  # noqa: E402
from sasim.hw.config import load_hw_config, with_dataflow  # noqa: E402
from sasim.sim.engine import simulate_matmul  # noqa: E402
from sasim.sim.mapping import map_matrix  # noqa: E402
from scalesim_harness import scalesim_total_cycles  # noqa: E402


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--k", type=int, default=2000)
    ap.add_argument("--hw", default="32x32")
    ap.add_argument("--dataflows", default="ws,os,is", help="comma-separated: ws, os, is")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--with-scalesim", action="store_true")
    args = ap.parse_args()
    base = load_hw_config(args.hw)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((args.n, args.k)).astype(np.float32)
    x = rng.standard_normal((args.m, args.k)).astype(np.float32)
    packed = PackedMatrix.from_dense(w)
    print(f"GEMM M={args.m} N={args.n} K={args.k} on {base.name}; single-threaded kernels, so per core")
    rates, macs = {}, {}
    for flow in args.dataflows.split(","):
        hw = with_dataflow(base, flow)
        t = time.perf_counter()
        simulate_matmul(PackedMatrix.from_dense(w[:40, :40]), x[:3, :40], hw, 3)  # JIT compile / cache load
        warm = time.perf_counter() - t
        tm = map_matrix(packed, hw, weights_resident=False, batch=args.m)
        cyc_s, res = best_of(lambda: simulate_matmul(packed, x, hw, args.m, "sasim", "cycle", False, tm), args.repeats)
        timing_s, _ = best_of(lambda: simulate_matmul(packed, None, hw, args.m, "sasim", "cycle", False, tm), 1)
        ana_s, ana = best_of(lambda: simulate_matmul(packed, None, hw, args.m, "sasim", "analytic", False), 20)
        assert ana.counts == res.counts
        pe_cycles = hw.array.rows * hw.array.cols * res.counts.cycles
        rates[flow] = pe_cycles / cyc_s
        print(f"{hw.array.dataflow} ({res.counts.tiles:,} tiles); JIT compile or cache load {warm:.2f} s")
        macs[flow] = res.counts.useful_macs / cyc_s
        print(f"  cycle-level, values, sasim timing:    {cyc_s:.3f} s for {res.counts.cycles:,} cycles "
              f"= {pe_cycles / cyc_s:.3e} simulated PE-cycles/s, {macs[flow]:.3e} MACs/s "
              f"({res.counts.useful_macs / pe_cycles:.0%} of PE-cycles busy)")
        print(f"  cycle-level, timing only:             {timing_s:.3f} s = {pe_cycles / timing_s:.3e} PE-cycles/s")
        print(f"  analytic:                             {ana_s * 1e3:.3f} ms (counts equal to cycle-level: True)")
        if args.with_scalesim:
            # SCALE-Sim's CALC mode has no bandwidth limits: compare with the same array at unlimited bandwidth
            calc = hw.model_copy(update={"memory": hw.memory.model_copy(update={
                "sram_weight_bw": 1e12, "sram_input_bw": 1e12, "dram_bw": 1e12})})
            tm_calc = map_matrix(packed, calc, weights_resident=True, batch=args.m)
            calc_s, calc_res = best_of(
                lambda: simulate_matmul(packed, x, calc, args.m, "scalesim", "cycle", True, tm_calc), 1)
            cycles, ss_s = scalesim_total_cycles([(args.m, args.n, args.k)], hw.array.rows, hw.array.cols, flow)
            print(f"  SCALE-Sim v3 (CALC bandwidth, save_disk_space=True): {ss_s:.1f} s, Total Cycles {cycles[0]:,}")
            print(f"  sasim scalesim timing, unlimited bandwidth, with values: {calc_s:.3f} s, cycles - 1 = "
                  f"{calc_res.counts.cycles - 1:,} (equal: {calc_res.counts.cycles - 1 == cycles[0]})")
            print(f"  speed: sasim cycle-level with values is {ss_s / calc_s:.0f}x faster than SCALE-Sim on this "
                  f"GEMM and dataflow")
    if "ws" in rates:
        print("per PE-cycle against weight stationary: " + ", ".join(
            f"{flow} {rate / rates['ws']:.2f}x" for flow, rate in rates.items()))
        print("per MAC against weight stationary:      " + ", ".join(
            f"{flow} {rate / macs['ws']:.2f}x" for flow, rate in macs.items()))


if __name__ == "__main__":
    main()
