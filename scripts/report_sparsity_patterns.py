"""reports/sparsity-patterns-ptb-char: column combining against N:M, block and unstructured pruning on the shipped
2 x 512 PTB-char model and the 32x32 array, every point retrained with the same token budget from the same dense
start, against a dense control trained on with the same loop, schedule and budget.

Two steps (the first took 24 minutes of wall time on 2 cores for the committed report, and
resumes where it stopped):

    OMP_NUM_THREADS=1 python scripts/report_sparsity_patterns.py run --data ../shared/data/ptb-char --work WORK
    python scripts/report_sparsity_patterns.py report --data ../shared/data/ptb-char --work WORK \
        --out reports/sparsity-patterns-ptb-char

``run`` retrains each point with :func:`sasim.api.prune.prune_checkpoint` (what ``sasim prune --pattern P``
runs, without per-epoch validation) two at a time, one thread each; ``report`` simulates every retrained
checkpoint on the array (analytic mode, equal to the cycle-level simulator on every count) at batch 1 and 64
and writes the table, the CSV/JSON and the Pareto plots.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DENSE = REPO / "models" / "ptb-char-small.pt"
HW = REPO / "hwconfigs" / "32x32.yaml"
EPOCHS, TOKENS_PER_EPOCH = 2, 300_000  # 600k retraining tokens per point: what 2 CPU cores allow in about an hour

# name -> (pattern, alpha, gamma, target sparsity, events); targets chosen with `sasim prune --dry-run` for about
# 2x, 4x and 8x fewer 32x32 tiles than dense; combine as the joint-optimization report's best runs (2 events)
POINTS = {
    "dense control": ("dense", 8, 0.5, 0.5, 1),
    "combine a8 g0.5 t0.5": ("combine", 8, 0.5, 0.5, 2),
    "combine a8 g1 t0.7": ("combine", 8, 1.0, 0.7, 2),
    "combine a16 g1 t0.88": ("combine", 16, 1.0, 0.88, 2),
    "nm 2:4": ("nm:2:4", 8, 0.5, 0.5, 1),
    "nm 1:4": ("nm:1:4", 8, 0.5, 0.75, 1),
    "nm 1:8": ("nm:1:8", 8, 0.5, 0.875, 1),
    "block 32x32 s0.5": ("block:32x32", 8, 0.5, 0.5, 2),
    "block 32x32 s0.75": ("block:32x32", 8, 0.5, 0.75, 2),
    "block 32x32 s0.875": ("block:32x32", 8, 0.5, 0.875, 2),
    "unstructured s0.75": ("unstructured", 8, 0.5, 0.75, 2),
}
# A longer budget, 10x, for the control and the best points near 4x fewer tiles (and the joint-optimization
# report's 768-tile setting: gamma 0.75 for layer 0, 1 for layer 1): does the ranking hold, how far does the gap close?
LONG_POINTS = {
    "dense control": POINTS["dense control"],
    "nm 1:4": POINTS["nm 1:4"],
    "combine a8 g1 t0.7": POINTS["combine a8 g1 t0.7"],
    "combine a8 g0.75,1 t0.72": ("combine", 8, (0.75, 1.0), 0.72, 2),
}
BUDGETS = {"short": (EPOCHS, TOKENS_PER_EPOCH, POINTS), "long": (4, 1_500_000, LONG_POINTS)}


def file_name(name: str) -> str:
    return name.replace(" ", "_").replace(":", "-").replace(",", "-").replace(".", "")


def run_point(name: str, data: str, work: Path, budget: str = "short") -> None:
    """Retrain one point (resuming a killed run) and save its scored checkpoint under ``work``."""
    from sasim.api.prune import prune_checkpoint

    epochs, tokens_per_epoch, points = BUDGETS[budget]
    pattern, alpha, gamma, target, events = points[name]
    out = work / f"{file_name(name)}.pt"
    gammas = list(gamma) if isinstance(gamma, tuple) else [gamma]
    prune_checkpoint(DENSE, data, out, [alpha], gammas, target=target, epochs=epochs, events=events,
                     max_train_tokens=tokens_per_epoch, seed=1, splits=("test",), show_progress=False,
                     validate=False, resume=True, pattern=pattern)


def run_all(data: str, work: Path, workers: int, budget: str = "short") -> None:
    points = BUDGETS[budget][2]
    work.mkdir(parents=True, exist_ok=True)
    todo = [n for n in points if not (work / f"{file_name(n)}.pt").exists()]
    print(f"{len(points) - len(todo)} of {len(points)} points done; running {len(todo)}, {workers} at a time")

    def one(name):
        t0 = time.time()
        log = work / f"{file_name(name)}.log"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
        with open(log, "w") as fh:
            rc = subprocess.run([sys.executable, __file__, "point", "--name", name, "--data", data, "--work", str(work),
                                 "--budget", budget], stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        print(f"{name}: {'done' if rc == 0 else f'FAILED (rc {rc}, see {log})'} in {(time.time() - t0) / 60:.1f} min",
              flush=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, todo))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    for step in ("run", "point", "report"):
        p = sub.add_parser(step)
        p.add_argument("--data", required=True)
        p.add_argument("--work", required=True, type=Path)
        if step != "report":
            p.add_argument("--budget", choices=list(BUDGETS), default="short",
                           help="short: every point, 600k tokens; long: 4 points, 6M tokens (in another --work)")
        if step == "run":
            p.add_argument("--workers", type=int, default=2)
        if step == "point":
            p.add_argument("--name", required=True, choices=sorted(set(POINTS) | set(LONG_POINTS)))
        if step == "report":
            p.add_argument("--out", required=True, type=Path)
            p.add_argument("--long-work", type=Path, help="the --work of a `run --budget long`: adds its section")
    args = ap.parse_args()
    if args.step == "run":
        run_all(args.data, args.work, args.workers, args.budget)
    elif args.step == "point":
        run_point(args.name, args.data, args.work, args.budget)
    else:
        from report_sparsity_patterns_page import write_report  # the page (kept apart: tables and plots)

        long = (args.long_work, *BUDGETS["long"]) if args.long_work else None
        write_report(POINTS, args.work, args.data, args.out, file_name, EPOCHS, TOKENS_PER_EPOCH, long)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
