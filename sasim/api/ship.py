"""Job: write a checkpoint to ship: float16 tensors, scored with exactly the stored weights, the scores recorded
in the file (``eval``) so that a test can check that the shipped file reproduces them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sasim.api.evaluate import Evaluate, evaluate
from sasim.errors import SasimError
from sasim.sim.metrics import accuracy_name
from sasim.workload.checkpoint import save_checkpoint


@dataclass(frozen=True)
class Ship:
    """A checkpoint to ship.

    Parameters
    ----------
    out : str or Path
        The ``.pt`` file to write.
    state : dict
        The tensors to store (floating-point ones are stored as float16).
    raw : dict
        The checkpoint ``state`` comes from: its model config and vocabulary go with it.
    data : str or Path
        The corpus directory the scores come from (valid and test).
    record : dict
        More entries for the ``eval`` record (the command that made it, the machine, ...).
    meta : dict
        More metadata to store (for example ``train`` or ``packing``).
    """

    out: str | Path
    state: dict
    raw: dict
    data: str | Path
    record: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if Path(self.out).suffix != ".pt":
            raise SasimError(f"out must be a .pt file, got {self.out}", param="out")
        for key in ("model_config", "vocab"):
            if key not in self.raw:
                raise SasimError(f"raw holds no {key!r}: pass the sasim checkpoint the state comes from",
                                 param="raw")


def ship(spec: Ship) -> dict:
    """Save ``spec.state`` as float16 with the model config and vocabulary of ``spec.raw`` (plus ``spec.meta``),
    score valid and test with the saved file, and save again with ``eval`` = those scores and ``spec.record``.

    Returns
    -------
    dict
        The ``eval`` record: ``valid_<bpc|ppl>``, ``test_<bpc|ppl>``, their losses in nats, and what scored them.
    """
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in spec.state.items()}
    config, vocab = spec.raw["model_config"], spec.raw["vocab"]
    save_checkpoint(spec.out, state, config, vocab, **spec.meta)
    t = time.time()
    results = {split: evaluate(Evaluate(weights=spec.out, data=spec.data, split=split)) for split in ("valid", "test")}
    name = accuracy_name(results["test"])
    scores = {f"{split}_{name}": r[name] for split, r in results.items()}
    scores.update({f"{split}_loss_nats": r["loss_nats"] for split, r in results.items()})
    scores.update(eval_batch=10, stored_dtype="float16", data=str(spec.data), eval_seconds=time.time() - t,
                  **spec.record)
    save_checkpoint(spec.out, state, config, vocab, eval=scores, **spec.meta)
    return scores
