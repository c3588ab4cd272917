"""reports/dataflows: the shipped dense and packed PTB-char models on 32x32 and 128x128 arrays, at batch 1 and 64,
in the three dataflows (weight, output and input stationary), from sasim's analytic model (equal to the
cycle-level simulator on every count: tests/sim/test_cycle_vs_analytic.py).

    python scripts/report_dataflows.py [--out reports/dataflows]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sasim.api.simulate import RunCheckpoint, run_checkpoint  # noqa: E402
from sasim.outputs import save_figure, write_text  # noqa: E402
from sasim.report.json_report import write_json  # noqa: E402
from sasim.report.provenance import run_header  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = {"dense": "models/ptb-char-small.pt", "packed": "models/ptb-char-packed.pt"}
ARRAYS = ("32x32", "128x128")
BATCHES = (1, 64)
FLOWS = ("weight_stationary", "output_stationary", "input_stationary")
SHORT = {"weight_stationary": "WS", "output_stationary": "OS", "input_stationary": "IS"}
FIELDS = ["model", "array", "batch", "dataflow", "tiles", "cycles_per_step", "cycles_per_token", "utilization",
          "stall_cycles", "dram_bytes_per_step", "sram_bytes_per_step", "energy_per_token_uj", "input_lanes_per_column",
          "pe_input_registers", "select_bits_per_pe", "select_bytes_per_step"]


def measure() -> list[dict]:
    rows = []
    for model, weights in MODELS.items():
        for array in ARRAYS:
            for batch in BATCHES:
                for flow in FLOWS:
                    spec = RunCheckpoint(hw=array, weights=str(REPO / weights), batch=batch, mode="analytic",
                                         dataflow=flow)
                    t = run_checkpoint(spec).total
                    rows.append({"model": model, "array": array, "batch": batch, "dataflow": flow,
                                 "tiles": t["tiles"], "cycles_per_step": t["cycles_per_step"],
                                 "cycles_per_token": t["cycles_per_step"] / batch, "utilization": t["utilization"],
                                 "stall_cycles": t["stall_cycles"], "dram_bytes_per_step": t["dram_bytes"],
                                 "sram_bytes_per_step": t["sram_bytes"],
                                 "energy_per_token_uj": t["energy_j"] / batch * 1e6,
                                 "input_lanes_per_column": t["input_lanes_per_column"],
                                 "pe_input_registers": t["pe_input_registers"],
                                 "select_bits_per_pe": t["select_bits_per_pe"],
                                 "select_bytes_per_step": t["select_bytes"]})
                    print(f"{model} {array} batch {batch} {SHORT[flow]}: {t['cycles_per_step']:,.0f} cycles/step",
                          file=sys.stderr)
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| model | array | batch | dataflow | tiles | cycles/token | utilization | stalls | DRAM MB/step | "
             "energy uJ/token | lanes/column | input regs/PE | select bits/PE | select kB/step |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['array']} | {r['batch']} | {SHORT[r['dataflow']]} | {r['tiles']:,} | "
                     f"{r['cycles_per_token']:,.0f} | {r['utilization']:.3f} | {r['stall_cycles']:,} | "
                     f"{r['dram_bytes_per_step'] / 1e6:.2f} | {r['energy_per_token_uj']:.2f} | "
                     f"{r['input_lanes_per_column']} | {r['pe_input_registers']} | {r['select_bits_per_pe']} | "
                     f"{r['select_bytes_per_step'] / 1e3:.1f} |")
    return lines


def winners(rows: list[dict]) -> list[str]:
    lines = []
    for model in MODELS:
        for array in ARRAYS:
            for batch in BATCHES:
                group = [r for r in rows if (r["model"], r["array"], r["batch"]) == (model, array, batch)]
                fast = min(group, key=lambda r: r["cycles_per_token"])
                cheap = min(group, key=lambda r: r["energy_per_token_uj"])
                slow = max(group, key=lambda r: r["cycles_per_token"])
                lines.append(f"* {model}, {array}, batch {batch}: fastest {SHORT[fast['dataflow']]} "
                             f"({fast['cycles_per_token']:,.0f} cycles/token, {slow['cycles_per_token'] / fast['cycles_per_token']:.2f}x "
                             f"faster than {SHORT[slow['dataflow']]}); least energy {SHORT[cheap['dataflow']]} "
                             f"({cheap['energy_per_token_uj']:.2f} uJ/token)")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"{m}\n{a}\nb{b}" for m in MODELS for a in ARRAYS for b in BATCHES]
    for ax, key, title in ((axes[0], "cycles_per_token", "cycles per token"),
                           (axes[1], "energy_per_token_uj", "energy per token (uJ)")):
        for i, flow in enumerate(FLOWS):
            values = [r[key] for r in rows if r["dataflow"] == flow]
            ax.bar([x + i * 0.27 for x in range(len(values))], values, width=0.27, label=SHORT[flow])
        ax.set_xticks([x + 0.27 for x in range(len(labels))], labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "reports" / "dataflows"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = measure()
    with open(out / "dataflows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    write_json(out / "dataflows.json", {**run_header(script="scripts/report_dataflows.py"), "rows": rows})
    plot(rows, out / "dataflows.png")
    text = [
        "# The PTB-char models in three dataflows",
        "",
        "Command: `python scripts/report_dataflows.py` (analytic model, which equals the cycle-level simulator on "
        "every count; sasim timing, i.e. double buffered; each array's shipped config with `--dataflow` replaced: "
        "32x32 with an 8 MiB weight SRAM, 128x128 with its own). Models: `models/ptb-char-small.pt` (dense, 2 x 512 "
        "LSTM) and `models/ptb-char-packed.pt` (joint-optimized, alpha 8). A step advances every one of the `batch` "
        "streams by one token, so cycles per token = cycles per step / batch. Definitions of every column: "
        "docs/dataflows.md and sasim/sim/metrics.py. Data: dataflows.csv, dataflows.json; plot: dataflows.png.",
        "",
        *table(rows),
        "",
        "## Which dataflow wins where",
        "",
        *winners(rows),
        "",
        "![cycles and energy per token](dataflows.png)",
        "",
    ]
    notes = REPO / "reports" / "dataflows" / "NOTES.md"
    if notes.exists():
        text += [notes.read_text()]
    write_text(out / "README.md", "\n".join(text))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
