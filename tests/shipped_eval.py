"""The shipped models' test-split evaluations, run in a background process while the rest of the suite runs.

Each takes minutes of one core; the tests that check the shipped models' recorded bpc wait for their
result. conftest.py starts the process once the tests are collected, only when such a test was selected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

_SCRIPT = """
import json, sys
from pathlib import Path
from sasim.api.evaluate import Evaluate, evaluate
data, out = sys.argv[1], Path(sys.argv[2])
for weights in sys.argv[3:]:
    bpc = evaluate(Evaluate(weights=weights, data=data, split="test"))["bpc"]
    part = out / (Path(weights).name + ".part")
    part.write_text(json.dumps({"bpc": bpc}))
    part.replace(out / (Path(weights).name + ".json"))
"""

_state: dict = {}


def start(models: list[Path], data: Path, out: Path) -> None:
    """Evaluate ``models`` on ``data``'s test split, one after another, in a background process (one thread)."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(data), str(out), *map(str, models)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _state.update(proc=proc, out=out)


def test_bpc(model: Path, data: Path, timeout_s: float = 3600) -> float:
    """The test bpc of a shipped ``model``: from the background process when it runs, else computed here."""
    if "proc" not in _state:
        from sasim.api.evaluate import Evaluate, evaluate

        return evaluate(Evaluate(weights=model, data=data, split="test"))["bpc"]
    result, proc = _state["out"] / (model.name + ".json"), _state["proc"]
    deadline = time.monotonic() + timeout_s
    while not result.exists():
        if proc.poll() is not None and not result.exists():
            raise AssertionError(f"the background evaluation failed:\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no evaluation of {model.name} after {timeout_s} s")
        time.sleep(1)
    return json.loads(result.read_text())["bpc"]


test_bpc.__test__ = False  # a helper, not a test


def stop() -> None:
    """Stop the background evaluation (if still running) and remove its results."""
    import shutil

    proc = _state.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    if "out" in _state:
        shutil.rmtree(_state.pop("out"), ignore_errors=True)
