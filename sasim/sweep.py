"""Sweeps over hardware configs and packing parameters (alpha, gamma, conflict rule).

Each point (hardware, alpha, gamma, rule) packs every LSTM layer of the checkpoint, simulates it
(analytic mode by default; cycle mode gives the same counts), and, with a corpus, scores the model
with the weights the array holds. Points run in parallel worker processes; each finished point is
written to ``OUT/points/<label>_<fingerprint>.json`` at once (atomically), so an interrupted sweep resumes
without redoing them, and a failing point (or a dead worker) is recorded with its error without stopping the
others. The fingerprint covers every input that determines a point's result, file contents included.

Outputs in ``OUT/``: ``sweep.csv`` (one row per point and layer, plus a ``total`` row per point),
``sweep.json`` (resolved inputs, versions, failures), and the plots of :mod:`sasim.report.sweep_plots`.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import signal
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from sasim import __version__
from sasim.checks import check_choice, check_float, check_int, check_optional_int, check_seed
from sasim.combine.column_combine import RULES, check_fanin
from sasim.combine.grouping import validate_grouping_args
from sasim.combine.patterns import Pattern
from sasim.errors import SasimError
from sasim.lm.corpus import META_FILE, SPLITS
from sasim.outputs import atomic_write, check_output_dir, write_json
from sasim.report.provenance import run_header
from sasim.sim.engine import check_mode

# torch, pydantic (hardware configs), the simulators, training and dask are imported inside the functions that use
# them: `sasim sweep` checks its settings and refuses bad ones before paying for them, and each worker imports what
# its own point needs.

CSV_FIELDS = ["hw", "alpha", "gamma", "rule", "policy", "prune_to", "layer", "shape", "groups", "tiles", "cycles",
              "array_cycles", "vector_cycles", "stall_cycles", "utilization", "dense_equivalent_utilization",
              "packing_efficiency", "tile_efficiency", "pruned_fraction", "latency_s", "cycles_per_step",
              "energy_j", "sram_bytes", "dram_bytes", "bpc", "ppl", "seconds", "pattern"]


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: a hardware config and the packing parameters (``pattern`` other than ``combine``:
    that sparsity pattern, whose points ignore alpha, gamma and rule)."""

    hw: str
    alpha: int
    gamma: float
    rule: str
    policy: str = "paper"
    section: int = 256
    prune_to: float | None = None  # one-shot magnitude pruning to this density before combining
    pattern: str = "combine"

    @property
    def label(self) -> str:
        """The readable part of the point's file name (not unique on its own: see :attr:`SweepJob.key`)."""
        dens = f"_d{self.prune_to:g}" if self.prune_to else ""
        if self.pattern != "combine":
            return f"{Path(self.hw).stem}_{self.pattern.replace(':', '-')}{dens}"
        return f"{Path(self.hw).stem}_a{self.alpha}_g{self.gamma:g}_{self.rule}_{self.policy}_s{self.section}{dens}"

    def identity(self) -> dict:
        """The point's fields for its fingerprint (``pattern`` only when not column combining, so the fingerprints
        of sweeps made before patterns existed stay the same)."""
        out = asdict(self)
        if self.pattern == "combine":
            out.pop("pattern")
        return out


@dataclass(frozen=True)
class SweepSettings:
    """Everything besides the point that determines a point's result (the run's resolved settings)."""

    weights: str
    batch: int = 1
    steps: int = 1
    mode: str = "analytic"
    timing: str = "sasim"
    data: str | None = None
    split: str = "test"
    seed: int = 0
    eval_tokens: int | None = None
    retrain: tuple | None = None  # sorted (key, value) pairs of {"epochs", "target", "max_train_tokens"}

    def __post_init__(self):
        check_int("batch", self.batch, 1)
        check_int("steps", self.steps, 1)
        check_mode(self.mode, self.timing)
        check_choice("split", self.split, ("valid", "test"))
        check_seed(self.seed)
        check_optional_int("eval_tokens", self.eval_tokens, 2)
        if self.retrain is not None:
            r = dict(self.retrain)
            check_int("retrain epochs", r.get("epochs"), 1, 10_000)
            check_float("retrain target sparsity", r.get("target"), 0.0, 1.0, high_open=True)
            check_optional_int("retrain max_train_tokens", r.get("max_train_tokens"), 1)


@dataclass(frozen=True)
class SweepJob:
    """A point with the settings it runs under and the fingerprint of every input that determines its result."""

    point: SweepPoint
    settings: SweepSettings
    fingerprint: str
    out_dir: str

    @property
    def key(self) -> str:
        """The point's file name: readable label plus a fingerprint prefix, so that two runs whose inputs
        differ in anything (weights, batch, steps, data, seed, a hardware file's content) never share a file."""
        return f"{self.point.label}_{self.fingerprint[:12]}"


def grid(hws, alphas, gammas, rules, policy="paper", section=256, prune_to=None, patterns=("combine",)) -> list[SweepPoint]:
    """Every combination, in a stable order (parameters checked here, before any worker starts): column combining
    over alphas x gammas x rules, and one point per hardware config for each other pattern."""
    validate_grouping_args(1, 0.0, section, None, policy)
    for a in alphas:
        validate_grouping_args(a, 0.0, section, None, policy)
    for g in gammas:
        validate_grouping_args(1, g, section, None, policy)
    for r in rules:
        check_choice("rule", r, RULES)
    if prune_to is not None:
        check_float("prune_to (density kept)", prune_to, 0.0, 1.0, low_open=True)
    names = [Pattern.parse(p).name for p in patterns]
    if prune_to is not None and any(n.startswith("nm") for n in names):
        raise SasimError("an N:M pattern sets its own density; sweep it without prune_to", param="prune_to")
    points = []
    for name in dict.fromkeys(names):
        if name == "combine":
            points += [SweepPoint(h, int(a), float(g), r, policy, section, prune_to)
                       for h, a, g, r in itertools.product(hws, alphas, gammas, rules)]
        else:
            points += [SweepPoint(h, 1, 0.0, "prune", policy, section, prune_to, name) for h in hws]
    return points


def file_digest(path) -> str:
    """sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_digests(settings: SweepSettings, hws) -> dict:
    """Content digests of the sweep's input files: the weights, each hardware config, the corpus's splits."""
    from sasim.hw.config import resolve_hw_path  # pydantic: paid only when a sweep starts, not by --help

    out = {"weights": file_digest(settings.weights),
           "hw": {h: file_digest(resolve_hw_path(h)) for h in dict.fromkeys(hws)}}
    if settings.data:

        files = [f"{s}.txt" for s in SPLITS] + [META_FILE]
        out["data"] = {f: file_digest(Path(settings.data) / f) for f in files if (Path(settings.data) / f).is_file()}
    return out


def point_fingerprint(point: SweepPoint, settings: SweepSettings, digests: dict) -> str:
    """sha256 of everything that determines a point's result: the point, the settings (paths and contents of
    every input file), and sasim's version."""

    identity = {"point": point.identity(), "settings": asdict(settings), "weights_sha256": digests["weights"],
                "hw_sha256": digests["hw"][point.hw], "data_sha256": digests.get("data"), "sasim": __version__}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def run_point(job: SweepJob) -> dict:
    """Simulate one point; return its per-layer and total metrics (and accuracy with ``data``).

    With ``retrain`` (``{"epochs", "target", "max_train_tokens"}``), the point first prunes, combines
    and retrains the dense checkpoint with its own alpha, gamma and rule (:func:`sasim.lm.prune.prune_checkpoint`),
    keeps the packed checkpoint in ``out_dir/points/`` and simulates and scores that.
    """

    # imported in the worker that runs the point: the sweep's parent process and `sasim sweep --help` need
    # neither torch nor numba
    import torch

    from sasim.hw.config import load_hw_config
    from sasim.sim.lstm_array import simulate_lstm
    from sasim.sim.metrics import part_metrics, total_metrics
    from sasim.workload.layer_packing import pack_workload
    from sasim.workload.lstm_weights import load_lstm_workload

    point, st = job.point, job.settings
    torch.set_num_threads(1)
    t0 = time.time()
    hw = load_hw_config(point.hw)
    # refuse before any retraining or simulation is spent on the point
    pattern = Pattern.parse(point.pattern)
    check_fanin(point.alpha, hw.array.mux_fanin, f"{hw.name}'s")
    pattern.check_fanin(hw.array.mux_fanin, f"{hw.name}'s")
    if st.data and hw.arithmetic.number_format == "fixed_point":
        raise SasimError(f"{hw.name} is fixed point: sweeps score accuracy in float32 only so far; "
                         "use sasim run --data on one point, or a float32 config")
    retrained = None
    if st.retrain:
        # the training stack is imported only by points that retrain
        from sasim.api.prune import prune_checkpoint
        from sasim.workload.layer_packing import stored_packings

        retrain = dict(st.retrain)
        if not st.data:
            raise SasimError("retraining needs data (the corpus to retrain on)", param="retrain")
        # not KEY.pt: sasim prune writes its summary beside the checkpoint, and KEY.json marks a finished point
        retrained = str(Path(job.out_dir) / "points" / f"{job.key}.retrained.pt")
        prune_checkpoint(st.weights, st.data, retrained, [point.alpha], [point.gamma], point.rule, point.policy,
                         point.section, None, retrain["target"], retrain["epochs"], None,
                         retrain.get("max_train_tokens"), "cpu", st.seed, splits=(), show_progress=False,
                         validate=False, resume=True, pattern=point.pattern)  # scored below; a killed point resumes
        workload = load_lstm_workload(retrained)
        packings = stored_packings(workload)
    else:
        workload = load_lstm_workload(st.weights)
        if point.prune_to and pattern.kind not in ("block", "dense"):  # block ranks blocks; dense prunes nothing
            from sasim.combine.magnitude import prune_workload

            prune_workload(workload, point.prune_to)
        packings = pack_workload(workload, hw, point.alpha, point.gamma, point.rule, point.policy, point.section,
                                 pattern=pattern, sparsity=1 - point.prune_to if pattern.kind == "block" and
                                 point.prune_to else 0.0)
    parts, _, resident = simulate_lstm(workload, packings, hw, st.batch, st.steps, st.timing, st.mode, st.seed)
    per = [part_metrics(p, hw, resident) for p in parts]
    total = total_metrics(parts, per, hw, st.steps)
    if st.data:
        # the language model is imported only by points that score accuracy
        from sasim.lm.loading import evaluate_model, load_language_model, with_array_weights

        model, raw = load_language_model(retrained or st.weights)
        acc = evaluate_model(with_array_weights(model, packings), raw, st.data, st.split, max_tokens=st.eval_tokens)
        total.update({k: acc[k] for k in ("bpc", "ppl", "loss_nats") if k in acc})
        total["eval_split"] = acc["split"]
    return {"point": asdict(point), "fingerprint": job.fingerprint, "layers": per, "total": total,
            "seconds": time.time() - t0, "retrained_checkpoint": retrained}


def _safe_run(job: SweepJob) -> tuple[SweepJob, dict | None, str | None]:
    try:
        return job, run_point(job), None
    except SasimError as exc:
        return job, None, str(exc)
    except Exception:  # a bug in one point must not lose the others; keep the traceback for the report
        return job, None, traceback.format_exc(limit=4)


def read_point(path: Path, fingerprint: str) -> dict | None:
    """A finished point's record, or None when it must be (re)computed: absent, truncated or corrupt (a kill
    or a full disk mid-write), of another shape, or made from other inputs (another fingerprint)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("fingerprint") != fingerprint:
        return None
    if not (isinstance(result.get("point"), dict) and isinstance(result.get("layers"), list)
            and isinstance(result.get("total"), dict) and isinstance(result.get("seconds"), (int, float))
            and all(isinstance(l, dict) and "name" in l and "shape" in l and "groups" in l for l in result["layers"])):
        return None
    return result


def run_sweep(points: list[SweepPoint], weights: str, out, batch: int = 1, steps: int = 1, mode: str = "analytic",
              timing: str = "sasim", data: str | None = None, split: str = "test", seed: int = 0,
              workers: int | None = None, engine: str = "local", show_progress: bool = True,
              eval_tokens: int | None = None, retrain: dict | None = None) -> dict:
    """Run (or resume) a sweep; write the point files, the CSV, the JSON and the plots.

    A point's file is reused only when its fingerprint (every input that determines the result, the contents
    of the weights, hardware and corpus files included) matches; a truncated, corrupt or foreign file is
    recomputed. Files are written atomically, so a killed sweep resumes to the same results. A worker that
    dies (killed, out of memory) fails its point alone.

    Parameters
    ----------
    engine : {"local", "dask"}
        ``local``: a process pool over this machine's cores. ``dask``: a ``dask.distributed`` client
        (``DASK_SCHEDULER_ADDRESS`` if set, else a local cluster).
    """


    check_choice("engine", engine, ("local", "dask"))
    workers = check_optional_int("workers", workers, 1, 4096) or os.cpu_count() or 1
    settings = SweepSettings(str(weights), batch, steps, mode, timing, data and str(data), split, seed, eval_tokens,
                             tuple(sorted(retrain.items())) if retrain else None)
    out = check_output_dir(out)
    (out / "points").mkdir(exist_ok=True)
    digests = input_digests(settings, [p.hw for p in points])
    jobs = [SweepJob(p, settings, point_fingerprint(p, settings, digests), str(out)) for p in points]
    results, failures = {}, {}
    twins = _gamma0_twins(jobs)
    todo = []
    for job in jobs:
        found = read_point(out / "points" / f"{job.key}.json", job.fingerprint)
        if found is not None:
            results[job.key] = found
        elif job.key not in twins:
            todo.append(job)

    def record(job, result, error):
        if error is None:
            write_json(out / "points" / f"{job.key}.json", result, indent=1)
            results[job.key] = result
        else:
            failures[job.key] = {"point": asdict(job.point), "error": error}

    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep points", disable=not show_progress) as bar:
        def done(*outcome):
            record(*outcome)
            bar.update(1)

        if engine == "dask":
            for outcome in _dask_map(todo, workers):
                done(*outcome)
        elif workers == 1 or len(todo) <= 1:
            for job in todo:
                done(*_safe_run(job))
        else:
            _run_pool(todo, workers, done)
    for job in jobs:  # gamma 0: the other rules' points are the first rule's, relabelled
        twin = twins.get(job.key)
        if twin is not None and job.key not in results and twin in results:
            results[job.key] = _relabel(results[twin], job)
            write_json(out / "points" / f"{job.key}.json", results[job.key], indent=1)
        elif twin is not None and twin in failures:
            failures[job.key] = {**failures[twin], "point": asdict(job.point)}
    ordered = [results[j.key] for j in jobs if j.key in results]
    write_csv(ordered, out / "sweep.csv")

    summary = run_header(weights=str(weights), batch=batch, steps=steps, mode=mode, timing=timing, data=data,
                         split=split if data else None, eval_tokens=eval_tokens, retrain=retrain, seed=seed,
                         engine=engine, inputs_sha256=digests,
                         points=[{**asdict(j.point), "key": j.key} for j in jobs], done=len(ordered),
                         failures=failures)
    write_json(out / "sweep.json", summary)
    if ordered:
        from sasim.report.sweep_plots import plot_sweep  # matplotlib: only once there is something to plot

        plot_sweep(ordered, out)
    return summary


class _Terminated(Exception):
    """SIGTERM reached the sweep's main process."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _watch_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the sweep's main process is gone (killed with SIGKILL, say), instead of
    waiting forever for work that will never come."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_pool(jobs: list, workers: int, done) -> None:
    """Run jobs in a process pool. A worker that dies breaks the pool; the jobs it left unfinished then run one
    at a time, each in a process of its own, so that only the job whose process dies fails. SIGTERM of the main
    process stops the workers too."""

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        unfinished = _pool_pass(jobs, workers, done)
        for job in unfinished:  # isolation: one process per job
            if _pool_pass([job], 1, done):
                done(job, None, "the worker process died (killed by a signal, or out of memory); the point alone "
                                "failed: rerun the sweep to retry it, with fewer --workers if memory is short")
    except _Terminated:
        raise SystemExit(143) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _pool_pass(jobs: list, workers: int, done) -> list:
    """One process pool over ``jobs``; returns the jobs a broken pool left unfinished."""

    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_watch_parent,
                               initargs=(os.getpid(),))
    unfinished = []
    try:
        futures = {pool.submit(_safe_run, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                outcome = fut.result()
            except BrokenProcessPool:
                unfinished.append(futures[fut])
                continue
            done(*outcome)
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):  # stop workers now, not after their point
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return unfinished


def _gamma0_twins(jobs: list[SweepJob]) -> dict:
    """``{key: twin key}`` for points that need not run: at gamma 0 no conflict is allowed, so there is nothing
    for a conflict rule to resolve and every rule packs (and retrains) identically; the first rule's point runs."""
    first, twins = {}, {}
    for job in jobs:
        p = job.point
        if p.gamma == 0 and p.pattern == "combine":
            k = (p.hw, p.alpha, p.policy, p.section, p.prune_to)
            if k in first:
                twins[job.key] = first[k].key
            else:
                first[k] = job
    return twins


def _relabel(result: dict, job: SweepJob) -> dict:
    return {**result, "point": asdict(job.point), "fingerprint": job.fingerprint, "same_as": result["point"]["rule"]}


def _dask_map(jobs, workers):
    try:
        # dask is optional (the [dask] extra): imported only for --engine dask
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise SasimError("engine dask needs dask.distributed: pip install 'dask[distributed]'", param="engine") from None
    address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
    client = Client(address or cluster)
    try:
        futures = client.map(_safe_run, jobs, pure=False)  # a dead dask worker's task is retried by dask
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def write_csv(results: list[dict], path) -> Path:
    """The tidy table: one row per point and layer, and one ``total`` row per point (written atomically)."""

    path = Path(path)
    with atomic_write(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in results:
            base = {k: r["point"].get(k) for k in ("hw", "alpha", "gamma", "rule", "policy", "prune_to")}
            base["pattern"] = r["point"].get("pattern", "combine")
            base["hw"] = Path(base["hw"]).stem
            for layer in r["layers"]:
                w.writerow({**base, **layer, "layer": layer["name"], "shape": "x".join(map(str, layer["shape"]))})
            w.writerow({**base, **r["total"], "layer": "total", "shape": "", "groups": sum(l["groups"] for l in r["layers"]),
                        "seconds": r["seconds"]})
    return path
