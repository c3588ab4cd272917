"""The PTB-char joint-optimization report (issue 5) from a retraining sweep directory.

    python scripts/report_joint_optimization.py --sweep SWEEP_DIR --dense models/ptb-char-small.pt \\
        --out reports/joint-optimization-ptb-char --command "sasim sweep ... --retrain ..."

Writes OUT/grid.csv (one row per point, plus the dense model), OUT/pareto.png (32x32 tiles against test bpc,
the Pareto front marked), OUT/bpc_vs_gamma.png and OUT/table.md (the table of README.md).

``--run LABEL=CHECKPOINT`` (repeatable) adds single ``sasim prune`` runs outside the grid (longer retraining,
other settings): each is simulated on the same array, listed in OUT/runs.csv and its own table, drawn on
pareto.png, and counted in the Pareto front and the must-show.

``--dense-control LABEL=CHECKPOINT`` (repeatable) adds the dense model trained on with ``sasim finetune`` (the
recipe a packed run was fine-tuned with): listed with the runs, and the must-show line also states the best point
against each control.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sasim.report.pareto import pareto_front  # noqa: E402
from sasim.workload.checkpoint import load_raw  # noqa: E402

FIELDS = ["label", "alpha", "gamma", "rule", "target_sparsity", "events", "retrain_tokens", "test_bpc", "bpc_change_pct", "density", "pruned_fraction", "magnitude_target",
          "packing_efficiency", "tiles", "tile_reduction", "latency_us", "utilization", "dense_equivalent_utilization",
          "retrain_s", "point_s", "same_as", "checkpoint"]


def dense_row(dense: str, hw: str, scores: dict | None = None) -> dict:
    """The row of a dense checkpoint, scored by its ``eval`` record (or ``scores``: ``{"test", "valid"}`` bpc)."""
    from sasim.hw.config import load_hw_config
    from sasim.sim.lstm_array import simulate_checkpoint

    _, total, _ = simulate_checkpoint(dense, load_hw_config(hw), batch=1, steps=1)  # as the sweep points ran
    if scores is None:
        evaluated = load_raw(dense)["eval"]
        scores = {"test": evaluated["test_bpc"], "valid": evaluated["valid_bpc"]}
    bpc = scores["test"]
    return {"label": "dense", "_curve": [], "alpha": "dense", "gamma": "", "rule": "", "target_sparsity": "", "events": "",
            "retrain_tokens": 0, "test_bpc": bpc, "bpc_change_pct": 0.0, "density": 1.0,
            "pruned_fraction": 0.0, "magnitude_target": 0.0, "packing_efficiency": total["packing_efficiency"],
            "tiles": total["tiles"], "tile_reduction": 1.0, "latency_us": total["latency_s"] * 1e6,
            "utilization": total["utilization"], "dense_equivalent_utilization": total["dense_equivalent_utilization"],
            "retrain_s": 0, "point_s": 0, "same_as": "", "checkpoint": dense, "valid_bpc": scores["valid"]}


def control_row(spec: str, dense: dict, hw: str) -> dict:
    """The dense control (``LABEL=CHECKPOINT``, a dense checkpoint after ``sasim finetune``), as a dense row scored
    by its fine-tuning record, with its training tokens and curve; change relative to the shipped dense model."""
    label, _, ckpt = spec.partition("=")
    raw = load_raw(ckpt) if ckpt and Path(ckpt).is_file() else {}
    if raw.get("packing") or not raw.get("finetune"):
        raise SystemExit(f"--dense-control takes LABEL=CHECKPOINT of a dense checkpoint after `sasim finetune`, got {spec!r}")
    tuned = raw["finetune"]
    row = dense_row(ckpt, hw, tuned[-1]["eval"])
    curve = _token_curve([(f["curve"], f["tokens"]) for f in tuned])
    row.update(label=label, bpc_change_pct=(row["test_bpc"] / dense["test_bpc"] - 1) * 100,
               retrain_tokens=curve[-1]["tokens"] if curve else 0, retrain_s=sum(r["seconds"] for r in tuned),
               checkpoint=Path(ckpt).name, _curve=curve)
    return row


def _token_curve(phases: list[tuple[list[dict], int]]) -> list[dict]:
    """The per-epoch records of consecutive training phases (``(curve, tokens)`` each), each with the tokens
    trained up to the end of its epoch."""
    curve, seen = [], 0
    for epochs, tokens in phases:
        for c in epochs:
            seen += tokens / len(epochs)
            curve.append({**c, "tokens": seen})
    return curve


def point_rows(sweep: Path, dense: dict) -> list[dict]:
    rows = []
    for f in sorted((sweep / "points").glob("*.json")):
        if f.name.endswith(".retrained.json"):
            continue
        d = json.loads(f.read_text())
        if "total" not in d:
            continue
        t, p = d["total"], d["point"]
        ckpt = d.get("retrained_checkpoint")
        raw = load_raw(ckpt) if ckpt and Path(ckpt).is_file() else {}
        row = _row(p, t, raw, dense, _dense_weights(ckpt))
        row.update(label=f"grid a{p['alpha']} g{p['gamma']:g} {p['rule']}", point_s=d["seconds"],
                   same_as=d.get("same_as", ""), checkpoint=Path(ckpt).name if ckpt else "")
        rows.append(row)
    rows.sort(key=lambda r: (r["alpha"], r["gamma"], r["rule"]))
    return rows


def _row(point: dict, total: dict, raw: dict, dense: dict, dense_weights: int) -> dict:
    """One table row from a point's packing parameters, its simulated totals and its checkpoint's metadata."""
    density = total["nonzeros"] / dense_weights
    prune = raw.get("prune", {})
    return {"alpha": point["alpha"], "gamma": point["gamma"], "rule": point["rule"],
            "target_sparsity": point.get("target_sparsity", raw.get("packing", {}).get("packing", {}).get("target_sparsity", "")), "events": len(prune.get("schedule", [])) or "",
            "retrain_tokens": _retrain_tokens(raw),
            "test_bpc": total["bpc"], "bpc_change_pct": (total["bpc"] / dense["test_bpc"] - 1) * 100,
            "density": density, "pruned_fraction": 1 - density,
            "magnitude_target": (prune.get("magnitude_target") or [None])[0],
            "packing_efficiency": total["packing_efficiency"], "tiles": total["tiles"],
            "tile_reduction": dense["tiles"] / total["tiles"], "latency_us": total["latency_s"] * 1e6,
            "utilization": total["utilization"], "dense_equivalent_utilization": total["dense_equivalent_utilization"],
            "retrain_s": prune.get("seconds", 0) + sum(f["seconds"] for f in raw.get("finetune", [])),
            "point_s": prune.get("seconds", 0), "same_as": "", "checkpoint": ""}


def run_rows(specs: list[str], dense: dict, hw: str) -> list[dict]:
    """Rows for single ``sasim prune`` checkpoints given as ``LABEL=CHECKPOINT``: simulated on ``hw`` as the grid
    points were (batch 1, one timestep, analytic); test bpc as ``sasim prune`` scored the saved weights."""
    from sasim.hw.config import load_hw_config
    from sasim.sim.lstm_array import simulate_checkpoint

    rows = []
    for spec in specs:
        label, _, ckpt = spec.partition("=")
        if not ckpt or not Path(ckpt).is_file():
            raise SystemExit(f"--run takes LABEL=CHECKPOINT with an existing file, got {spec!r}")
        raw = load_raw(ckpt)
        prune, params = raw.get("prune"), (raw.get("packing") or {}).get("packing")
        latest = (raw.get("finetune") or [prune or {}])[-1]  # the score of the weights the file holds
        if not prune or not params or "test" not in latest.get("eval", {}):
            raise SystemExit(f"{ckpt} is not a scored `sasim prune` checkpoint (no prune summary with a test bpc)")
        _, total, _ = simulate_checkpoint(ckpt, load_hw_config(hw), batch=1, steps=1)
        total = {**total, "bpc": latest["eval"]["test"]}
        row = _row(params, total, raw, dense, _dense_weights(ckpt))
        phases = [(prune.get("curve", []), _prune_tokens(raw))]
        phases += [(f["curve"], f["tokens"]) for f in raw.get("finetune", [])]
        row.update(label=label, checkpoint=Path(ckpt).name, _curve=_token_curve(phases))
        rows.append(row)
    return rows


def _prune_tokens(raw: dict) -> int:
    """Training tokens of the ``sasim prune`` run that made a checkpoint: recorded, or for older runs its optimizer
    steps times one BPTT chunk of the batch (an upper bound by less than a chunk per epoch)."""
    prune = raw.get("prune", {})
    if "tokens" in prune:
        return prune["tokens"]
    cfg = raw.get("train", {}).get("train_config", {})
    return prune.get("steps", 0) * cfg.get("bptt", 0) * cfg.get("batch_size", 0)


def _retrain_tokens(raw: dict) -> int:
    """Training tokens since the dense model: the prune run's plus any ``sasim finetune`` after it."""
    return _prune_tokens(raw) + sum(f["tokens"] for f in raw.get("finetune", []))


def _dense_weights(ckpt) -> int:
    from sasim.workload.lstm_weights import load_lstm_workload

    return sum(layer.combined.size for layer in load_lstm_workload(ckpt).layers)


def pareto(rows: list[dict]) -> list[dict]:
    """Points no other point beats on both tiles and test bpc."""
    return [rows[i] for i in pareto_front([r["tiles"] for r in rows], [r["test_bpc"] for r in rows])]


def _must_show(rows: list[dict], controls: list[dict]) -> list[str]:
    goal = [r for r in rows if r["tile_reduction"] >= 4]
    best = min(goal, key=lambda r: r["test_bpc"]) if goal else None
    met = [r for r in goal if r["bpc_change_pct"] <= 1]
    line = "**Must-show (at least 4x fewer 32x32 tiles at no more than +1% test bpc): " + ("met" if met else "not met") + ".**"
    if best:
        line += (f" Best point with at least 4x fewer tiles: {best['label']} (alpha {best['alpha']}, gamma {best['gamma']}, "
                 f"rule {best['rule']}): {best['tiles']} tiles ({best['tile_reduction']:.2f}x fewer) at "
                 f"{best['test_bpc']:.4f} test bpc ({best['bpc_change_pct']:+.2f}% against the shipped dense model).")
        for control in controls:
            line += (f" Against the dense control {control['label']} (the dense model trained on with `sasim "
                     f"finetune`, {control['test_bpc']:.4f} test bpc): {(best['test_bpc'] / control['test_bpc'] - 1) * 100:+.2f}%.")
    return [line, ""]


def write_page(out: Path, args, rows: list[dict], runs: list[dict], controls: list[dict], table: list[str],
               run_table: list[str]) -> None:
    """README.md: ``runs`` are the single prune runs and ``controls`` the dense controls (both in ``run_table``)."""
    import shlex

    from sasim.report.provenance import versions

    listed = runs + controls
    run_args = "".join(f" --run {shlex.quote(spec)}" for spec in args.run)
    run_args += "".join(f" --dense-control {shlex.quote(spec)}" for spec in args.dense_control)
    lines = ["# Joint optimization on PTB-char: prune, combine, retrain (2 x 512 LSTM, 32x32 array)", "",
             "Regenerate (the sweep writes SWEEP_DIR; this page then comes from it):", "", "```bash", args.command,
             f"python scripts/report_joint_optimization.py --sweep SWEEP_DIR --dense {args.dense} --hw {args.hw} "
             f"--out {args.out}{run_args} --command '...' --notes NOTES.md", "```", "",
             f"Versions: {json.dumps(versions())}. Raw numbers: [grid.csv](grid.csv) (one row per grid point, and the "
             "dense model)" + (", [runs.csv](runs.csv) (the longer runs)" if listed else "")
             + "; the Pareto front: [pareto.json](pareto.json).", "",
             *_must_show(rows + runs, controls),
             "`*`: on the Pareto front of tiles against test bpc (over the grid and the longer runs). Latency and "
             "utilization: batch 1, one timestep, analytic mode (equal to the cycle-level simulator), sasim timing. "
             "Density: nonzero LSTM weights / dense LSTM weights. Retrain: the point's `sasim prune` time; point: "
             "retraining plus packing, simulation and scoring on the whole test split, each point on one core of a "
             "2-core CPU with two points running side by side (and, for several, other work beside them: times are "
             "upper bounds).", ""]
    if listed:
        lines += ["## Longer retraining runs", "",
                  "Single `sasim prune` runs beyond the grid's budget (commands in the notes below), simulated the "
                  "same way; tokens: retraining tokens.", "", *run_table, "", "## The grid (1.8M retraining tokens "
                  "per point)", ""]
    lines += [*table, ""]
    if args.notes:
        lines += [Path(args.notes).read_text(), ""]
    lines += ["![tiles against test bpc](pareto.png)", ""]
    if listed:
        lines += ["![validation bpc during the longer runs](retraining.png)", ""]
    lines += ["![bpc and tiles against gamma](bpc_vs_gamma.png)", ""]
    (out / "README.md").write_text("\n".join(lines))


def _table_line(r: dict, front: list[dict], first: str) -> str:
    star = " *" if r in front else ""
    return (f"| {first} | {r['test_bpc']:.4f}{star} | {r['bpc_change_pct']:+.2f}% | {r['density']:.3f} "
            f"| {r['packing_efficiency']:.3f} | {r['tiles']} | {r['tile_reduction']:.2f}x | {r['latency_us']:.2f} "
            f"| {r['utilization']:.4f} | {r['dense_equivalent_utilization']:.4f} | {r['retrain_s'] / 60:.1f} ")


def _plot_pareto(rows, runs, dense, front, markers, colors, path: Path) -> None:
    """Tiles against test bpc: every point (left) and the region of the longer runs, labelled (right)."""
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.15]})
    for panel in (ax, zoom):
        for r in rows:
            panel.scatter(r["tiles"], r["test_bpc"], marker=markers[r["rule"]], color=colors.get(r["alpha"], "k"), s=40)
        for r in runs:
            panel.scatter(r["tiles"], r["test_bpc"], marker="D", facecolor="none", edgecolor="k", s=45)
        panel.scatter(dense["tiles"], dense["test_bpc"], marker="*", color="k", s=120, label="dense (shipped)")
        panel.plot([r["tiles"] for r in front], [r["test_bpc"] for r in front], "k--", lw=0.8, label="Pareto front")
        panel.axhline(dense["test_bpc"] * 1.01, color="red", lw=0.8, ls=":", label="+1% test bpc")
        panel.axvline(dense["tiles"] / 4, color="purple", lw=0.8, ls=":", label="4x fewer tiles")
        panel.set(xscale="log", xlabel="32x32 tiles per timestep (log)", ylabel="test bpc after retraining")
        panel.grid(alpha=0.3)
    for r in rows:
        ax.annotate(f"{r['gamma']:g}", (r["tiles"], r["test_bpc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for a, c in colors.items():
        ax.scatter([], [], color=c, label=f"alpha {a}")
    for rule, m in markers.items():
        ax.scatter([], [], marker=m, color="grey", label=f"rule {rule} (grid, 1.8M tok)")
    if runs:
        ax.scatter([], [], marker="D", facecolor="none", edgecolor="k", label="longer runs (labelled on the right)")
    ax.set_title("PTB-char 2x512 LSTM: tiles against accuracy (labels: gamma)")
    ax.legend(fontsize=7)
    shown = [r for r in runs if r["test_bpc"] <= dense["test_bpc"] * 1.03]
    if shown:
        low = min(r["test_bpc"] for r in shown + [dense])
        zoom.set(xlim=(min(r["tiles"] for r in shown) * 0.45, dense["tiles"] * 1.6),
                 ylim=(low - 0.01, dense["test_bpc"] * 1.03))
        for r in shown:  # left of the points below 4x fewer tiles, right of the others, so that neighbours part
            left = r["tiles"] < dense["tiles"] / 4 * 0.95
            zoom.annotate(f"{r['label']} ({r['retrain_tokens'] / 1e6:.0f}M tok)", (r["tiles"], r["test_bpc"]),
                          fontsize=7, xytext=(-6 if left else 6, -2), textcoords="offset points",
                          ha="right" if left else "left")
    zoom.annotate("dense (shipped)", (dense["tiles"], dense["test_bpc"]), fontsize=7, xytext=(8, -2),
                  textcoords="offset points")
    zoom.set_title("the longer runs and the dense controls (within +3% of the shipped dense model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _plot_retraining(runs: list[dict], dense: dict, path: Path) -> None:
    """Validation bpc after each retraining epoch of the longer runs, against retraining tokens (stars: the
    running weight average of ``sasim finetune --average-from``, the weights such a run saves)."""
    import math

    fig, ax = plt.subplots(figsize=(11, 4.8))
    for r in runs:
        curve = r["_curve"]
        if not curve or curve[0].get("valid_loss") is None:
            continue
        line, = ax.plot([c["tokens"] / 1e6 for c in curve], [c["valid_loss"] / math.log(2) for c in curve], "o-",
                        ms=3, label=f"{r['label']} ({r['tiles']} tiles)")
        averaged = [c for c in curve if c.get("valid_loss_averaged") is not None]
        if averaged:  # `sasim finetune --average-from`: the mean of the weights, which is what gets saved
            ax.plot([c["tokens"] / 1e6 for c in averaged], [c["valid_loss_averaged"] / math.log(2) for c in averaged],
                    "*", ms=9, color=line.get_color(), label=f"{r['label']}: weight average")
    ax.axhline(dense["valid_bpc"], color="k", lw=0.8, label="dense (shipped), valid")
    ax.axhline(dense["valid_bpc"] * 1.01, color="red", lw=0.8, ls=":", label="+1%")
    ax.set(xlabel="training tokens since the shipped dense model (millions)", ylabel="valid bpc after the epoch",
           title="Retraining: validation bpc per epoch (masks frozen after the last event)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", required=True)
    ap.add_argument("--dense", required=True)
    ap.add_argument("--hw", default="hwconfigs/32x32.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True, help="the sweep command that made SWEEP_DIR")
    ap.add_argument("--notes", help="a markdown file of findings to put under the table")
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=CHECKPOINT",
                    help="a single `sasim prune` checkpoint to add (repeatable)")
    ap.add_argument("--dense-control", dest="dense_control", action="append", default=[], metavar="LABEL=CHECKPOINT",
                    help="the dense model after `sasim finetune` with a recipe the runs were fine-tuned with (repeatable)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dense = dense_row(args.dense, args.hw)
    rows = point_rows(Path(args.sweep), dense)
    controls = [control_row(spec, dense, args.hw) for spec in args.dense_control]
    prune_runs = run_rows(args.run, dense, args.hw)
    runs = prune_runs + controls  # listed, drawn and counted in the front together
    _write_csv(out / "grid.csv", [dense] + rows)
    if runs:
        _write_csv(out / "runs.csv", [dense] + runs)
    front = pareto([dense] + rows + runs)
    head = ("| test bpc | change | density | packing eff | 32x32 tiles | fewer tiles | latency/token (us) | utilization "
            "| dense-eq util | retrain (min) |")
    table = ["| alpha | gamma | rule " + head + " point (min) |", "| ---: | ---: | --- " + "| ---: " * 11 + "|"]
    for r in [dense] + rows:
        rule = r["rule"] + (f" (= {r['same_as']})" if r["same_as"] else "")
        table.append(_table_line(r, front, f"{r['alpha']} | {r['gamma']} | {rule}") + f"| {r['point_s'] / 60:.1f} |")
    run_table = ["| run | alpha | gamma | rule | target | events | tokens " + head,
                 "| --- | ---: | ---: | --- | ---: | ---: | ---: " + "| ---: " * 10 + "|"]
    for r in runs:
        run_table.append(_table_line(r, front, f"{r['label']} | {r['alpha']} | {r['gamma']} | {r['rule']} "
                                                f"| {r['target_sparsity']} | {r['events']} "
                                                f"| {r['retrain_tokens'] / 1e6:.1f}M") + "|")
    (out / "table.md").write_text("\n".join(table) + "\n")
    (out / "pareto.json").write_text(json.dumps([{k: r[k] for k in ("label", "alpha", "gamma", "rule", "tiles", "test_bpc")}
                                                 for r in front], indent=1))
    markers = {"prune": "o", "spill": "s"}
    colors = {4: "tab:blue", 8: "tab:orange", 16: "tab:green"}
    _plot_pareto(rows, runs, dense, front, markers, colors, out / "pareto.png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for a in sorted({r["alpha"] for r in rows}):
        for rule, style in (("prune", "o-"), ("spill", "s--")):
            sel = sorted((r for r in rows if r["alpha"] == a and r["rule"] == rule), key=lambda r: r["gamma"])
            if sel:
                g = [r["gamma"] for r in sel]
                axes[0].plot(g, [r["test_bpc"] for r in sel], style, color=colors.get(a), label=f"alpha {a}, {rule}")
                axes[1].plot(g, [r["tiles"] for r in sel], style, color=colors.get(a), label=f"alpha {a}, {rule}")
    axes[0].axhline(dense["test_bpc"], color="k", lw=0.8, label="dense")
    axes[1].axhline(dense["tiles"], color="k", lw=0.8, label="dense")
    axes[0].set(xlabel="gamma", ylabel="test bpc after retraining (grid)")
    axes[1].set(xlabel="gamma", ylabel="32x32 tiles per timestep", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bpc_vs_gamma.png", dpi=120)
    if runs:
        _plot_retraining(runs, dense, out / "retraining.png")
    write_page(out, args, rows, prune_runs, controls, table, run_table)
    print("\n".join(run_table + [""] + table))
    print("Pareto front:", json.dumps([(r["label"], r["tiles"], round(r["test_bpc"], 4)) for r in front]))


if __name__ == "__main__":
    main()
