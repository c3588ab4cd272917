"""Helpers several test packages share: a tiny corpus, a sweep point's file key, a pruning run."""

import json
import os
import subprocess
import sys

import numpy as np


def write_corpus(path, alphabet="abc_", lines=(300, 40, 40), seed=0):
    """Write train/valid/test splits of random space-separated characters under ``path``; return ``path``."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "valid", "test"), lines):
        text = "".join(" " + " ".join(rng.choice(list(alphabet), size=15)) + " \n" for _ in range(n))
        (path / f"{split}.txt").write_text(text)
    return path


def key_of(out, point):
    """The file key the sweep in ``out`` gave ``point`` (label plus input fingerprint), from sweep.json."""
    listed = json.loads((out / "sweep.json").read_text())["points"]
    return next(p["key"] for p in listed if p["key"].startswith(point.label + "_"))


def prune(dense, tmp_path, *flags):
    """Run ``sasim prune`` on the ``dense`` fixture's (data, checkpoint) in a subprocess; return the packed path."""
    data, ckpt = dense
    out = tmp_path / "packed.pt"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "prune", "--weights", str(ckpt), "--data", str(data),
                          "--out", str(out), *map(str, flags)], capture_output=True, text=True,
                         env={**os.environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return out
