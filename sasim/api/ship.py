"""Job: write a checkpoint to ship: float16 tensors, scored with exactly the stored weights, the scores recorded
in the file (``eval``) so that a test can check that the shipped file reproduces them."""

from __future__ import annotations

import time

from sasim.api.evaluate import evaluate_checkpoint
from sasim.sim.metrics import accuracy_name
from sasim.workload.checkpoint import save_checkpoint


def save_scored(out, state: dict, raw: dict, data_dir, record: dict | None = None, **meta) -> dict:
    """Save ``state`` as float16 with ``raw``'s model config and vocabulary (plus ``meta``), score valid and test
    with the saved file, and save again with ``eval`` = those scores and ``record``. Returns the eval record."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    save_checkpoint(out, state, raw["model_config"], raw["vocab"], **meta)
    t = time.time()
    results = {split: evaluate_checkpoint(out, data_dir, split=split) for split in ("valid", "test")}
    name = accuracy_name(results["test"])
    scores = {f"{split}_{name}": r[name] for split, r in results.items()}
    scores.update({f"{split}_loss_nats": r["loss_nats"] for split, r in results.items()})
    scores.update(eval_batch=10, stored_dtype="float16", data=str(data_dir), eval_seconds=time.time() - t,
                  **(record or {}))
    save_checkpoint(out, state, raw["model_config"], raw["vocab"], eval=scores, **meta)
    return scores
