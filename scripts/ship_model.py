"""Make the shipped model from a training run and write its report page.

    python scripts/ship_model.py --best RUN.pt --data ../shared/data/ptb-char \
        --out models/ptb-char-small.pt --report reports/ptb-char-small --command "sasim train ..."

Stores the tensors as float16 (half the size; sasim loads them as float32), then evaluates valid and
test bits per character with exactly the stored weights and records them in the checkpoint
(``eval``), so that ``tests/lm/test_lm.py`` can check that the shipped file reproduces them.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sasim.api.ship import Ship, ship  # noqa: E402
from sasim.report.provenance import versions  # noqa: E402
from sasim.workload.checkpoint import load_raw  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--best", required=True)
    ap.add_argument("--latest", help="the run's .latest.pt, whose summary holds the whole curve")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--command", required=True, help="the sasim train command that made the run")
    ap.add_argument("--machine", default="2-core x86-64 CPU, no GPU")
    args = ap.parse_args()
    best = load_raw(args.best)
    summary = load_raw(args.latest)["train"] if args.latest else best["train"]
    meta = {k: v for k, v in best.items() if k not in ("format", "format_version", "model_config", "vocab",
                                                         "state_dict", "train")}
    out = Path(args.out)
    state = best["state_dict"]
    record = ship(Ship(out=out, state=state, raw=best, data=args.data, meta=dict(train=summary, **meta),
                       record=dict(command=args.command, machine=args.machine, train_seconds=summary["seconds"])))
    eval_seconds = record["eval_seconds"]
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    with open(report / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "lr", "train_bpc", "valid_bpc", "seconds"])
        w.writeheader()
        for row in summary["curve"]:
            w.writerow({k: row[k] for k in w.fieldnames})
    epochs = [r["epoch"] for r in summary["curve"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_bpc"] for r in summary["curve"]], "o-", label="train (with dropout)")
    ax.plot(epochs, [r["valid_bpc"] for r in summary["curve"]], "s-", label="valid")
    ax.axhline(record["test_bpc"], color="gray", ls="--", label=f"test, shipped weights: {record['test_bpc']:.4f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits per character")
    ax.set_title("PTB-char, sasim preset small (2 x 512 LSTM)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(report / "curve.png", dpi=120)
    cfg = best["model_config"]
    params = sum(v.numel() for v in state.values())
    lines = [
        "# Shipped model: PTB-char, preset `small`", "",
        "Made by:", "", "```bash", args.command,
        f"python scripts/ship_model.py --best {args.best} --latest {args.latest} --data {args.data} "
        f"--out {args.out} --report {args.report} --command '...'", "```", "",
        "| | |", "| --- | --- |",
        f"| model | {cfg['num_layers']} x {cfg['hidden_size']} LSTM, embedding {cfg['emb_size']}, vocabulary "
        f"{cfg['vocab_size']}, {params:,} parameters, stored as float16 ({out.stat().st_size / 2**20:.1f} MiB) |",
        f"| training | {len(summary['curve'])} epochs, best valid at epoch {summary.get('best_epoch')}, "
        f"{summary['seconds'] / 60:.1f} min on {args.machine} ({summary.get('torch_threads')} torch threads) |",
        f"| valid bpc | {record['valid_bpc']:.4f} |",
        f"| **test bpc** | **{record['test_bpc']:.4f}** |",
        f"| evaluation | awd-lstm-lm convention: mean loss per token including `<eos>`, bpc = nats / ln 2, "
        f"10 parallel streams, with the stored float16 weights ({eval_seconds:.0f} s for both splits) |",
        f"| versions | {json.dumps(versions())} |", "",
        "![training curve](curve.png)", "", "Per-epoch numbers: [curve.csv](curve.csv). Train bpc is measured with "
        "dropout on, so it sits above valid.", "",
    ]
    (report / "README.md").write_text("\n".join(lines))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
