"""The fixed-point experiment (issue 7): accuracy, memory, cycles and energy per width, on the dense model and
on a packed model, post-training and with quantization-aware fine-tuning.

    python scripts/report_quantization.py run --model dense=models/ptb-char-small.pt \\
        --model packed=models/ptb-char-packed-grid.pt --data ../shared/data/ptb-char --out reports/quantization
    python scripts/report_quantization.py page --out reports/quantization

``run`` writes one JSON per (model, widths, PTQ or QAT) under OUT/runs (an existing one is kept: the run
resumes); ``page`` writes OUT/quantization.csv, OUT/README.md's table and the figures from them.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sasim.hw.config import load_hw_config  # noqa: E402
from sasim.quant.cost import checkpoint_cost, quantized_cost  # noqa: E402
from sasim.quant.fixed_point_lstm import QuantConfig  # noqa: E402
from sasim.quant.workflow import quantize_checkpoint  # noqa: E402
from sasim.report.json_report import write_json  # noqa: E402
from sasim.report.provenance import run_header  # noqa: E402


def acc_bits_for(bits: int) -> int:
    """Accumulator width: 32 bits as in the paper's design, 48 where 32 could overflow (16-bit words)."""
    return 48 if bits > 12 else 32


def run(args) -> None:
    out = Path(args.out) / "runs"
    out.mkdir(parents=True, exist_ok=True)
    hw = load_hw_config(args.hw)
    for spec in args.model:
        name, path = spec.split("=", 1)
        for bits in args.bits:
            for qat_epochs in ([0, args.qat_epochs] if bits in args.qat_bits else [0]):
                tag = f"{name}_w{bits}a{bits}_{'qat' if qat_epochs else 'ptq'}"
                target = out / f"{tag}.json"
                if target.is_file():
                    continue
                print(f"{tag} ...", flush=True)
                cfg = QuantConfig(weight_bits=bits, act_bits=bits, acc_bits=acc_bits_for(bits))
                t0 = time.time()
                scored = quantize_checkpoint(path, args.data, cfg, args.split, qat_epochs=qat_epochs,
                                             max_train_tokens=args.qat_tokens, seed=args.seed, show_progress=False)
                cost = {f"batch{b}": quantized_cost(path, hw, bits, bits, cfg.acc_bits, "bit_serial", batch=b)
                        for b in (1, 64)}
                write_json(target, run_header(model=name, weights=path, quant=cfg.to_dict(), split=scored["split"],
                                              float32=scored["float32"], quantized=scored["quantized"],
                                              qat=scored["qat"], qat_tokens=args.qat_tokens if qat_epochs else 0,
                                              cost=cost, seconds=time.time() - t0))
                q, f = scored["quantized"]["bpc"], scored["float32"]["bpc"]
                print(f"{tag}: float32 {f:.4f}, quantized {q:.4f} ({(q / f - 1) * 100:+.2f}%), "
                      f"{time.time() - t0:.0f} s", flush=True)
        control = out / f"{name}_float_finetune.json"
        if args.qat_bits and not control.is_file():
            t0 = time.time()
            result = float_finetune(path, args.data, args.split, args.qat_tokens, args.seed)
            write_json(control, run_header(model=name, weights=path, split=args.split, tokens=args.qat_tokens,
                                           finetuned=result, seconds=time.time() - t0))
            print(f"{name} float32 fine-tuned on {args.qat_tokens:,} tokens (control): {result['bpc']:.4f}", flush=True)
        float_cost = {f"batch{b}": checkpoint_cost(path, hw, b) for b in (1, 64)}  # the config as shipped
        write_json(out / f"{name}_float32.json", run_header(model=name, weights=path, cost=float_cost))


def float_finetune(path, data, split, tokens, seed) -> dict:
    """The control for QAT: the same fine-tuning (optimizer, learning rate, tokens, seed) without rounding,
    scored in float32; what QAT gains beyond it is what rounding-aware training buys."""
    import torch

    from sasim.lm.corpus import encode_with_vocab, load_corpus
    from sasim.lm.fit import fit
    from sasim.lm.loading import evaluate_model, load_language_model
    from sasim.lm.presets import train_config_of
    from sasim.lm.train import batchify

    torch.manual_seed(seed)
    model, raw = load_language_model(path)
    cfg = train_config_of(raw, seed, tokens)
    corpus = load_corpus(data, level=raw.get("level"))
    train = batchify(encode_with_vocab(corpus, raw["vocab"])["train"], cfg.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr * 0.1, weight_decay=cfg.weight_decay)
    fit(model, train, cfg, optimizer, 1, lambda _: cfg.lr * 0.1, name="float fine-tune", show_progress=False)
    model.eval()
    return evaluate_model(model, raw, data, split, corpus=corpus)


COLUMNS = ["model", "bits", "training", "float32_bpc", "bpc", "change_pct", "weight_memory_mib", "select_mib",
           "tiles", "cycles_per_step_b1", "cycles_per_step_b64", "energy_uj_per_token_b1", "energy_uj_per_token_b64",
           "seconds"]


def rows_of(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "runs").glob("*_w*.json")):
        d = json.loads(f.read_text())
        c1, c64 = d["cost"]["batch1"], d["cost"]["batch64"]
        f32, q = d["float32"]["bpc"], d["quantized"]["bpc"]
        rows.append({"model": d["model"], "bits": d["quant"]["weight_bits"],
                     "training": f"QAT {d['qat_tokens']:,} tokens" if d["qat"] else "post-training",
                     "float32_bpc": f32, "bpc": q, "change_pct": (q / f32 - 1) * 100,
                     "weight_memory_mib": c1["weight_memory_bytes"] / 2**20, "select_mib": c1["select_bytes"] / 2**20,
                     "tiles": c1["tiles"], "cycles_per_step_b1": c1["cycles_per_step"],
                     "cycles_per_step_b64": c64["cycles_per_step"],
                     "energy_uj_per_token_b1": c1["energy_per_token_j"] * 1e6,
                     "energy_uj_per_token_b64": c64["energy_per_token_j"] * 1e6, "seconds": d["seconds"]})
    rows.sort(key=lambda r: (r["model"], -r["bits"], r["training"] != "post-training"))
    return rows


def page(args) -> None:
    out = Path(args.out)
    rows = rows_of(out)
    with open(out / "quantization.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    floats = {json.loads(f.read_text())["model"]: json.loads(f.read_text())["cost"]
              for f in (out / "runs").glob("*_float32.json")}
    lines = ["| model | W/A bits | training | float32 bpc | bpc | change | weight memory (MiB) | of it select | tiles "
             "| cycles/step b1 | cycles/step b64 | uJ/token b1 | uJ/token b64 | s |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    controls = {json.loads(f.read_text())["model"]: json.loads(f.read_text())
                for f in (out / "runs").glob("*_float_finetune.json")}
    for m, cost in sorted(floats.items()):
        c1, c64 = cost["batch1"], cost["batch64"]
        lines.append(f"| {m} | float32 | - | - | - | - | {c1['weight_memory_bytes'] / 2**20:.3f} | - | {c1['tiles']} "
                     f"| {c1['cycles_per_step']:,.0f} | {c64['cycles_per_step']:,.0f} | {c1['energy_per_token_j'] * 1e6:.2f} "
                     f"| {c64['energy_per_token_j'] * 1e6:.3f} | - |")
        if m in controls:
            c = controls[m]
            lines.append(f"| {m} | float32 | fine-tuned {c['tokens']:,} tokens, no rounding (QAT's control) | - "
                         f"| {c['finetuned']['bpc']:.4f} | - | - | - | - | - | - | - | - | {c['seconds']:.0f} |")
    for r in rows:
        lines.append(f"| {r['model']} | {r['bits']}/{r['bits']} | {r['training']} | {r['float32_bpc']:.4f} | {r['bpc']:.4f} "
                     f"| {r['change_pct']:+.2f}% | {r['weight_memory_mib']:.3f} | {r['select_mib']:.3f} | {r['tiles']} "
                     f"| {r['cycles_per_step_b1']:,.0f} | {r['cycles_per_step_b64']:,.0f} "
                     f"| {r['energy_uj_per_token_b1']:.2f} | {r['energy_uj_per_token_b64']:.3f} | {r['seconds']:.0f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    _write_readme(out, args, rows, lines)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (model, training), style in _series(rows):
        sel = [r for r in rows if r["model"] == model and r["training"].startswith(training)]
        bits = [r["bits"] for r in sel]
        axes[0].plot(bits, [r["change_pct"] for r in sel], style, label=f"{model}, {training}")
        if training == "post-training":
            axes[1].plot(bits, [r["weight_memory_mib"] for r in sel], style, label=model)
            axes[2].plot(bits, [r["energy_uj_per_token_b64"] for r in sel], style, label=model)
    axes[0].axhline(1.0, color="grey", lw=0.8, ls=":")
    axes[0].set(xlabel="weight = activation bits", ylabel="test bpc change vs float32 (%)",
                title="accuracy")
    axes[1].set(xlabel="bits", ylabel="MiB", title="weight memory (values + select indices)")
    axes[2].set(xlabel="bits", ylabel="uJ per token", title="energy per token, batch 64, bit-serial, 32x32")
    for ax in axes:
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "quantization.png", dpi=120)
    print(f"wrote {out / 'quantization.csv'}, {out / 'table.md'}, {out / 'quantization.png'}")


def _write_readme(out: Path, args, rows: list[dict], table: list[str]) -> None:
    from sasim.report.provenance import versions

    packed8 = [r for r in rows if r["model"] == "packed" and r["bits"] == 8]
    head = ["# Fixed-point LSTM on the array: accuracy, memory, cycles and energy per width", "",
            "Regenerate:", "", "```bash", *args.command, "```", "",
            f"Versions: {json.dumps(versions())}. Raw numbers: [quantization.csv](quantization.csv); every run's "
            "settings and results: [runs/](runs/).", ""]
    if packed8:
        ok = any(r["change_pct"] <= 1 and r["training"] == "post-training" for r in packed8)
        head += [f"**Must-show (8-bit weights and activations on the packed model within 1% of its float32 bpc): "
                 f"{'met' if ok else 'not met'}** (no more than +1%): " + "; ".join(f"{r['training']} {r['bpc']:.4f} against float32 "
                 f"{r['float32_bpc']:.4f} ({r['change_pct']:+.2f}%)" for r in packed8) + ".", ""]
    head += table + [""]
    if args.notes:
        head += [Path(args.notes).read_text(), ""]
    head += ["![accuracy, memory and energy against width](quantization.png)", ""]
    (out / "README.md").write_text("\n".join(head))


def _series(rows):
    seen = []
    for r in rows:
        key = (r["model"], "QAT" if r["training"].startswith("QAT") else "post-training")
        if key not in seen:
            seen.append(key)
    styles = ["o-", "s--", "^-", "v--"]
    return [(k, styles[i % len(styles)]) for i, k in enumerate(seen)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT (repeatable)")
    r.add_argument("--data", required=True)
    r.add_argument("--split", default="test")
    r.add_argument("--bits", type=lambda s: [int(b) for b in s.split(",")], default=[16, 8, 6, 4])
    r.add_argument("--qat-bits", dest="qat_bits", type=lambda s: [int(b) for b in s.split(",")], default=[8, 6, 4])
    r.add_argument("--qat-epochs", dest="qat_epochs", type=int, default=1)
    r.add_argument("--qat-tokens", dest="qat_tokens", type=int, default=300_000, help="tokens per QAT epoch")
    r.add_argument("--hw", default="32x32")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--out", required=True)
    p = sub.add_parser("page")
    p.add_argument("--out", required=True)
    p.add_argument("--command", action="append", default=[], help="a command that made the runs (repeatable)")
    p.add_argument("--notes", help="a markdown file of findings to put under the table")
    args = ap.parse_args(argv)
    run(args) if args.stage == "run" else page(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
