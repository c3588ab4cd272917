"""The LSTM-8192-1024 report (issue 8): ``python scripts/report_lstm_8192.py --out reports/lstm-8192-1024``.

All numbers come from sasim's analytic mode, which tests/workload/test_workloads.py shows equal to the
cycle-level simulator on every layer type.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sasim.api.simulate import Packing, RunWorkload, run_workload  # noqa: E402
from sasim.hw.config import load_hw_config  # noqa: E402
from sasim.report.provenance import versions  # noqa: E402
from sasim.workload.spec import PRESETS, parse_workload  # noqa: E402

BASE = PRESETS["lstm-8192-1024"]


def spec(softmax="sampled", density=1.0, layers=None):
    sm = dict(type="softmax", vocab=793471, input=1024, sampled=8192 if softmax == "sampled" else 0)
    return parse_workload({**BASE, "weights": dict(density=density, seed=0),
                           "layers": layers or BASE["layers"][:-1] + [sm]})


def run(s, hw, packing=None):
    """The job `sasim run --workload` runs (analytic), on a workload spec built here."""
    t = time.perf_counter()
    r = run_workload(RunWorkload(hw=hw.name, workload=s, mode="analytic",
                                 packing=Packing(**packing) if packing else None))
    return dict(kinds=r.extra["kinds"], total=r.total, resident=r.resident, parts=r.parts,
                seconds=time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="reports/lstm-8192-1024")
    ap.add_argument("--gammas", default="0,0.25,0.5,1.0")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    hws = [load_hw_config("128x128"), load_hw_config("32x32")]
    lines = ["# LSTM-8192-1024 (1B Word Benchmark) on the array", "",
             "Regenerate: `python scripts/report_lstm_8192.py --out reports/lstm-8192-1024 --gammas 0,0.02,0.05,0.1,0.25,0.5,1.0` (analytic mode, equal to the",
             "cycle-level simulator on every layer type: `tests/workload/test_workloads.py`). Model: `--workload lstm-8192-1024`:",
             "char-CNN inputs (16-dim characters, words padded to 50, 4096 filters of widths 1-7, 2 highway layers,",
             "projection to 1024), 2 LSTM layers of 8192 cells with 1024 projections, softmax over 793,471 words, full or",
             "importance-sampled with 8192 samples shared by a step's 128 targets. Batch 128 streams; cycles per token",
             "= cycles of one timestep (every stream advances one token). Synthetic seeded weights; shipped configs",
             "(1 GHz, 64 B/cycle DRAM).", ""]
    # 1. where the cycles go, full vs sampled softmax
    lines += ["## Cycles per token by layer type (dense weights)", "",
              "| array | softmax | char-CNN | LSTM | softmax layer | total cycles/token | us/token | utilization | weights in SRAM |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for hw in hws:
        for sm in ("sampled", "full"):
            r = run(spec(sm), hw)
            k = r["kinds"]
            soft = k.get("sampled_softmax", k.get("softmax", 0))
            lines.append(f"| {hw.name} | {sm} | {k['char_cnn']:,.0f} | {k['lstm']:,.0f} | {soft:,.0f} | "
                         f"{r['total']['cycles_per_step']:,.0f} | {r['total']['latency_per_step_s'] * 1e6:,.1f} | "
                         f"{r['total']['utilization']:.3f} | {'yes' if r['resident'] else 'no'} |")
            rows.append(dict(study="softmax", hw=hw.name, softmax=sm, density=1.0, gamma="", **{f"cycles_{a}": b for a, b in k.items()},
                             cycles_per_token=r["total"]["cycles_per_step"], utilization=r["total"]["utilization"],
                             stall_cycles_per_token=r["total"]["stall_cycles"] / 20, seconds=r["seconds"]))
    # 2. dense vs combined
    gammas = [float(g) for g in args.gammas.split(",")]
    lines += ["", "## Dense against column-combined LSTM layers (alpha 8, rule prune, sampled softmax)", "",
              "The LSTM matrices are made sparse (random pattern, density 0.1, seeded) and combined with alpha 8; the",
              "char-CNN and softmax stay uncombined. `pruned` is the conflict rule's share of the nonzeros.", "",
              "| array | weights | gamma | LSTM tiles/token | LSTM cycles/token | total cycles/token | pruned (LSTM) | weights in SRAM | pack + simulate s |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for hw in hws:
        cases = [("dense", 1.0, None, None)] + [("density 0.1", 0.1, g, dict(alpha=8, gamma=g, rule="prune")) for g in gammas]
        for label, density, g, packing in cases:
            r = run(spec("sampled", density), hw, packing)
            lstm = [p for p in r["parts"] if ".lstm." in p["name"]]
            tiles = sum(p["tiles"] for p in lstm)
            nz0 = sum(p["nonzeros_before"] for p in lstm)
            nz = sum(p["nonzeros"] for p in lstm)
            lines.append(f"| {hw.name} | {label} | {'' if g is None else g} | {tiles:,} | {r['kinds']['lstm']:,.0f} | "
                         f"{r['total']['cycles_per_step']:,.0f} | {1 - nz / nz0:.3f} | {'yes' if r['resident'] else 'no'} | "
                         f"{r['seconds']:.1f} |")
            rows.append(dict(study="combine", hw=hw.name, softmax="sampled", density=density, gamma=g,
                             lstm_tiles=tiles, cycles_lstm=r["kinds"]["lstm"], cycles_per_token=r["total"]["cycles_per_step"],
                             pruned_lstm=1 - nz / nz0, seconds=r["seconds"]))
    # 3. QRNN vs LSTM at equal parameters
    lstm_params = 4 * 8192 * 2048 + 1024 * 8192
    qrnn_hidden = lstm_params // (3 * 2 * 1024)
    lines += ["", "## QRNN against LSTM at equal parameter count (one layer, batch 128, sequences of 20)", "",
              f"LSTM: 8192 cells with a 1024 projection, {lstm_params / 1e6:.1f}M weights. QRNN: window 2 on 1024 inputs,",
              f"{qrnn_hidden} cells ({3 * qrnn_hidden * 2048 / 1e6:.1f}M weights). The QRNN's gate product runs over the whole",
              "sequence at once (20 x 128 vectors per tile), the LSTM's one step at a time (128 vectors per tile).", "",
              "| array | layer | cycles/token | utilization | stall cycles/token |", "| --- | --- | ---: | ---: | ---: |"]
    for hw in hws:
        for name, layer in (("LSTM", dict(type="lstm", input=1024, hidden=8192, proj=1024)),
                            ("QRNN", dict(type="qrnn", input=1024, hidden=qrnn_hidden, window=2))):
            r = run(spec(layers=[layer]), hw)
            lines.append(f"| {hw.name} | {name} | {r['total']['cycles_per_step']:,.0f} | {r['total']['utilization']:.3f} | "
                         f"{r['total']['stall_cycles'] / 20:,.0f} |")
            rows.append(dict(study="qrnn", hw=hw.name, layer=name, cycles_per_token=r["total"]["cycles_per_step"],
                             utilization=r["total"]["utilization"]))
    with open(out / "results.csv", "w", newline="") as f:
        keys = sorted({k for r in rows for k in r})
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    comb = [r for r in rows if r["study"] == "combine"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for hw in hws:
        pts = [r for r in comb if r["hw"] == hw.name and r["gamma"] is not None]
        dense = [r for r in comb if r["hw"] == hw.name and r["gamma"] is None][0]
        ax.plot([r["gamma"] for r in pts], [r["cycles_lstm"] / dense["cycles_lstm"] for r in pts], "o-", label=hw.name)
    ax.set_xlabel("gamma (alpha 8, prune), LSTM density 0.1")
    ax.set_ylabel("LSTM cycles per token / dense")
    ax.set_title("LSTM-8192-1024: column combining against the dense layers")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "combine.png", dpi=110)
    lines += ["", "![combining](combine.png)", "", f"Raw numbers: [results.csv](results.csv). Versions: {json.dumps(versions())}.", ""]
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
