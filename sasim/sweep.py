"""Sweeps over hardware configs and packing parameters (alpha, gamma, conflict rule).

Each point (hardware, alpha, gamma, rule) packs every LSTM layer of the checkpoint, simulates it
(analytic mode by default; cycle mode gives the same counts), and, with a corpus, scores the model
with the weights the array holds. Points run in parallel worker processes; each finished point is
written to ``OUT/points/<key>.json`` at once, so an interrupted sweep resumes without redoing them,
and a failing point is recorded with its error without stopping the others.

Outputs in ``OUT/``: ``sweep.csv`` (one row per point and layer, plus a ``total`` row per point),
``sweep.json`` (resolved inputs, versions, failures), and the plots of :mod:`sasim.report.sweep_plots`.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from sasim.errors import SasimError

CSV_FIELDS = ["hw", "alpha", "gamma", "rule", "policy", "prune_to", "layer", "shape", "groups", "tiles", "cycles",
              "array_cycles", "vector_cycles", "stall_cycles", "utilization", "dense_equivalent_utilization",
              "packing_efficiency", "tile_efficiency", "pruned_fraction", "latency_s", "cycles_per_step",
              "energy_j", "sram_bytes", "dram_bytes", "bpc", "ppl", "seconds"]


@dataclass(frozen=True)
class SweepPoint:
    hw: str
    alpha: int
    gamma: float
    rule: str
    policy: str = "paper"
    section: int = 256
    prune_to: float | None = None  # one-shot magnitude pruning to this density before combining

    @property
    def key(self) -> str:
        dens = f"_d{self.prune_to:g}" if self.prune_to else ""
        return f"{Path(self.hw).stem}_a{self.alpha}_g{self.gamma:g}_{self.rule}_{self.policy}_s{self.section}{dens}"


def grid(hws, alphas, gammas, rules, policy="paper", section=256, prune_to=None) -> list[SweepPoint]:
    """Every combination, in a stable order."""
    return [SweepPoint(h, int(a), float(g), r, policy, section, prune_to)
            for h, a, g, r in itertools.product(hws, alphas, gammas, rules)]


def run_point(point: SweepPoint, weights: str, batch: int, steps: int, mode: str, timing: str,
              data: str | None, split: str, seed: int, eval_tokens: int | None = None,
              retrain: dict | None = None, out_dir: str | None = None) -> dict:
    """Simulate one point; return its per-layer and total metrics (and accuracy with --data).

    With ``retrain`` (``{"epochs", "target", "max_train_tokens"}``), the point first prunes, combines
    and retrains the dense checkpoint with its own alpha, gamma and rule (:func:`sasim.lm.prune.prune_checkpoint`),
    keeps the packed checkpoint in ``out_dir/points/`` and simulates and scores that.
    """
    import time

    import torch

    from sasim.hw.config import load_hw_config
    from sasim.sim.lstm import simulate_lstm
    from sasim.sim.metrics import part_metrics, total_metrics
    from sasim.workload.lstm import load_lstm_workload
    from sasim.workload.packing import pack_workload

    torch.set_num_threads(1)
    t0 = time.time()
    hw = load_hw_config(point.hw)
    # refuse before any retraining or simulation is spent on the point
    if point.alpha > hw.array.mux_fanin:
        raise SasimError(f"alpha {point.alpha} exceeds {hw.name}'s mux_fanin {hw.array.mux_fanin}")
    if data and hw.arithmetic.number_format == "fixed_point":
        raise SasimError(f"{hw.name} is fixed point: sweeps score accuracy in float32 only so far; "
                         "use sasim run --data on one point, or a float32 config")
    retrained = None
    if retrain:
        from sasim.lm.prune import prune_checkpoint
        from sasim.workload.packing import stored_packings

        if not data:
            raise SasimError("--retrain needs --data (the corpus to retrain on)")
        # not KEY.pt: sasim prune writes its summary beside the checkpoint, and KEY.json marks a finished point
        retrained = str(Path(out_dir) / "points" / f"{point.key}.retrained.pt")
        prune_checkpoint(weights, data, retrained, [point.alpha], [point.gamma], point.rule, point.policy,
                         point.section, None, retrain["target"], retrain["epochs"], None,
                         retrain.get("max_train_tokens"), "cpu", seed, splits=(), show_progress=False,
                         validate=False)  # the point is scored below, on the sweep's split
        workload = load_lstm_workload(retrained)
        packings = stored_packings(workload)
    else:
        workload = load_lstm_workload(weights)
        if point.prune_to:
            from sasim.combine.magnitude import prune_workload

            prune_workload(workload, point.prune_to)
        packings = pack_workload(workload, hw, point.alpha, point.gamma, point.rule, point.policy, point.section)
    parts, _, resident = simulate_lstm(workload, packings, hw, batch, steps, timing, mode, seed)
    per = [part_metrics(p, hw, resident) for p in parts]
    total = total_metrics(parts, per, hw, steps)
    if data:
        from sasim.lm.loading import evaluate_model, load_language_model, with_array_weights

        model, raw = load_language_model(retrained or weights)
        acc = evaluate_model(with_array_weights(model, packings), raw, data, split, max_tokens=eval_tokens)
        total.update({k: acc[k] for k in ("bpc", "ppl", "loss_nats") if k in acc})
        total["eval_split"] = acc["split"]
    return {"point": asdict(point), "layers": per, "total": total, "seconds": time.time() - t0,
            "retrained_checkpoint": retrained}


def _safe_run(args) -> tuple[SweepPoint, dict | None, str | None]:
    point = args[0]
    try:
        return point, run_point(*args), None
    except SasimError as exc:
        return point, None, str(exc)
    except Exception:  # a bug in one point must not lose the others; keep the traceback for the report
        return point, None, traceback.format_exc(limit=4)


def run_sweep(points: list[SweepPoint], weights: str, out, batch: int = 1, steps: int = 1, mode: str = "analytic",
              timing: str = "sasim", data: str | None = None, split: str = "test", seed: int = 0,
              workers: int | None = None, engine: str = "local", show_progress: bool = True,
              eval_tokens: int | None = None, retrain: dict | None = None) -> dict:
    """Run (or resume) a sweep; write the point files, the CSV, the JSON and the plots.

    Parameters
    ----------
    engine : {"local", "dask"}
        ``local``: a process pool over this machine's cores. ``dask``: a ``dask.distributed`` client
        (``DASK_SCHEDULER_ADDRESS`` if set, else a local cluster).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    results, failures = {}, {}
    todo = []
    twins = _gamma0_twins(points)
    for p in points:
        f = out / "points" / f"{p.key}.json"
        if f.is_file():
            results[p.key] = json.loads(f.read_text())
        elif p.key not in twins:
            todo.append(p)
    jobs = [(p, weights, batch, steps, mode, timing, data, split, seed, eval_tokens, retrain, str(out)) for p in todo]
    workers = workers or os.cpu_count() or 1

    def record(point, result, error):
        if error is None:
            (out / "points" / f"{point.key}.json").write_text(json.dumps(result, indent=1))
            results[point.key] = result
        else:
            failures[point.key] = {"point": asdict(point), "error": error}

    with tqdm(total=len(points), initial=len(points) - len(todo), desc="sweep points", disable=not show_progress) as bar:
        if engine == "dask":
            for point, result, error in _dask_map(jobs, workers):
                record(point, result, error)
                bar.update(1)
        elif engine == "local":
            if workers == 1 or len(jobs) <= 1:
                for job in jobs:
                    record(*_safe_run(job))
                    bar.update(1)
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for fut in as_completed([pool.submit(_safe_run, job) for job in jobs]):
                        record(*fut.result())
                        bar.update(1)
        else:
            raise SasimError(f"--engine must be local or dask, got {engine!r}")
    for p in points:  # gamma 0: the other rules' points are the first rule's, relabelled
        if p.key in twins and p.key not in results and twins[p.key] in results:
            results[p.key] = _relabel(results[twins[p.key]], p)
            (out / "points" / f"{p.key}.json").write_text(json.dumps(results[p.key], indent=1))
        elif p.key in twins and twins[p.key] in failures:
            failures[p.key] = {**failures[twins[p.key]], "point": asdict(p)}
    ordered = [results[p.key] for p in points if p.key in results]
    write_csv(ordered, out / "sweep.csv")
    from sasim.report.provenance import run_header

    summary = run_header(weights=str(weights), batch=batch, steps=steps, mode=mode, timing=timing, data=data,
                         split=split if data else None, eval_tokens=eval_tokens, retrain=retrain, seed=seed,
                         engine=engine,
                         points=[asdict(p) for p in points], done=len(ordered), failures=failures)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    if ordered:
        from sasim.report.sweep_plots import plot_sweep

        plot_sweep(ordered, out)
    return summary


def _gamma0_twins(points: list[SweepPoint]) -> dict:
    """``{key: twin key}`` for points that need not run: at gamma 0 no conflict is allowed, so there is nothing
    for a conflict rule to resolve and every rule packs (and retrains) identically; the first rule's point runs."""
    first, twins = {}, {}
    for p in points:
        if p.gamma == 0:
            k = (p.hw, p.alpha, p.policy, p.section, p.prune_to)
            if k in first:
                twins[p.key] = first[k].key
            else:
                first[k] = p
    return twins


def _relabel(result: dict, point: SweepPoint) -> dict:
    return {**result, "point": asdict(point), "same_as": result["point"]["rule"]}


def _dask_map(jobs, workers):
    try:
        from dask.distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError:
        raise SasimError("--engine dask needs dask.distributed: pip install 'dask[distributed]'") from None
    address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
    client = Client(address or cluster)
    try:
        futures = client.map(_safe_run, jobs, pure=False)
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def write_csv(results: list[dict], path) -> Path:
    """The tidy table: one row per point and layer, and one ``total`` row per point."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in results:
            base = {k: r["point"].get(k) for k in ("hw", "alpha", "gamma", "rule", "policy", "prune_to")}
            base["hw"] = Path(base["hw"]).stem
            for layer in r["layers"]:
                w.writerow({**base, **layer, "layer": layer["name"], "shape": "x".join(map(str, layer["shape"]))})
            w.writerow({**base, **r["total"], "layer": "total", "shape": "", "groups": sum(l["groups"] for l in r["layers"]),
                        "seconds": r["seconds"]})
    return path
