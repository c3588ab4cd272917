"""Write the README.md of a sweep directory: the command that made it, a table of the totals, the plots.

    python scripts/sweep_page.py DIR --command "sasim sweep ..." [--note "..."]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--command", required=True)
    ap.add_argument("--title", default="Conflict-budget sweep")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    d = Path(args.dir)
    meta = json.loads((d / "sweep.json").read_text())
    rows = [r for r in csv.DictReader(open(d / "sweep.csv")) if r["layer"] == "total"]
    acc = "bpc" if rows and rows[0].get("bpc") else ("ppl" if rows and rows[0].get("ppl") else None)
    lines = [f"# {args.title}", "", "Regenerate (writes this directory; then this page with scripts/sweep_page.py):", "",
             "```bash", args.command, "```", ""]
    if args.note:
        lines += [args.note, ""]
    lines += [f"{meta['done']} points; failures: {len(meta['failures'])}; mode {meta['mode']}, timing {meta['timing']}, "
              f"batch {meta['batch']}, seed {meta['seed']}; versions {json.dumps(meta['versions'])}.", "",
              "| hw | rule | alpha | gamma | tiles | pruned | packing eff | utilization | dense-eq util | latency/token (us) "
              f"| energy (uJ) |{' ' + acc + ' |' if acc else ''} point s |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if acc else "") + " ---: |"]
    for r in rows:
        cells = [r["hw"], r["rule"], r["alpha"], f"{float(r['gamma']):g}", r["tiles"], f"{float(r['pruned_fraction']):.3f}",
                 f"{float(r['packing_efficiency']):.3f}", f"{float(r['utilization']):.4f}",
                 f"{float(r['dense_equivalent_utilization']):.4f}", f"{float(r['latency_s']) * 1e6 / int(meta['steps']):.2f}",
                 f"{float(r['energy_j']) * 1e6:.1f}"]
        if acc:
            cells.append(f"{float(r[acc]):.4f}")
        cells.append(f"{float(r['seconds']):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per layer: [sweep.csv](sweep.csv) (one row per point and layer). Inputs: [sweep.json](sweep.json).", ""]
    for png, caption in (("metrics_vs_gamma.png", "Utilization, latency, tiles and accuracy against gamma per rule"),
                         ("pareto.png", "Accuracy against latency: the Pareto front"),
                         ("utilization_heatmap.png", "Utilization per layer")):
        if (d / png).exists():
            lines += [f"### {caption}", "", f"![{caption}]({png})", ""]
    (d / "README.md").write_text("\n".join(lines))
    print(f"wrote {d / 'README.md'}")


if __name__ == "__main__":
    main()
