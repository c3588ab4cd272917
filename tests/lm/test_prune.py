"""Joint optimization: masks never regrow, spill with gamma 0 loses nothing, packed eval equals dense eval."""

import math
import subprocess
import sys

import pytest
import torch
from helpers import prune

from sasim.api.evaluate import Evaluate, evaluate
from sasim.lm.loading import load_language_model
from sasim.workload.layer_packing import stored_packings
from sasim.workload.lstm_weights import load_lstm_workload


def test_prune_packs_and_packed_eval_equals_dense_eval(dense, tmp_path):
    data, _ = dense
    out = prune(dense, tmp_path, "--alpha", 4, "--gamma", 0.5, "--target-sparsity", 0.8, "--epochs", 2)
    raw = torch.load(out, weights_only=True)
    sparsity = [1 - d for d in raw["prune"]["density"].values()]
    assert all(s >= 0.8 * (1 - 1 / 4) - 0.02 for s in sparsity)  # magnitude target reached, combining adds more
    events = raw["prune"]["events"]
    assert len(events) == 4 and events[-1]["magnitude_sparsity"][0] == pytest.approx(0.6)
    from sasim.lm.corpus import load_corpus

    train_tokens = len(load_corpus(data).splits["train"])  # batch 8: each stream trains on all its positions but the last
    assert raw["prune"]["tokens"] == 2 * (train_tokens // 8 - 1) * 8  # the retraining budget, two epochs
    wl = load_lstm_workload(out)
    packs = stored_packings(wl)  # the packed form unpacks exactly to the model's weights (checked inside)
    assert packs is not None and all(p.gates.max_group_size <= 4 for p in packs)
    # eval of the packed checkpoint equals the eval of a plain dense model holding the unpacked weights
    model, meta = load_language_model(out)
    state = {k: v for k, v in meta["state_dict"].items() if "mask" not in k and ".packed_" not in k}
    for i, p in enumerate(packs):
        w = torch.from_numpy(p.gates.unpack())
        state[f"rnns.{i}.weight_ih_l0"] = w[:, : model.rnns[i].input_size]
        state[f"rnns.{i}.weight_hh_l0"] = w[:, model.rnns[i].input_size:]
    plain = tmp_path / "plain.pt"
    from sasim.workload.checkpoint import save_checkpoint

    save_checkpoint(plain, state, meta["model_config"], meta["vocab"], level=meta["level"])
    a = evaluate(Evaluate(weights=out, data=data, split="test"))["bpc"]
    b = evaluate(Evaluate(weights=plain, data=data, split="test"))["bpc"]
    assert a == b and math.isclose(a, raw["prune"]["eval"]["test"], rel_tol=1e-9)


def test_spill_with_gamma_zero_loses_no_weight(dense, tmp_path):
    out = prune(dense, tmp_path, "--alpha", 4, "--gamma", 0, "--rule", "spill", "--target-sparsity", 0.5,
                "--epochs", 1)
    raw = torch.load(out, weights_only=True)
    for ev in raw["prune"]["events"]:
        assert all(v == 0 for v in ev["pruned_fraction"].values())
    sparsity = [1 - d for d in raw["prune"]["density"].values()]
    assert all(abs(s - 0.5 * 0.75) < 0.02 for s in sparsity)  # only magnitude pruning removed weights


def test_prune_refuses_packed_input_and_bad_layers(dense, tmp_path):
    data, _ = dense
    out = prune(dense, tmp_path, "--alpha", 2, "--gamma", 1, "--epochs", 1)
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "prune", "--weights", str(out), "--data", str(data),
                          "--alpha", "2", "--gamma", "1", "--out", str(tmp_path / "x.pt")], capture_output=True, text=True)
    assert res.returncode == 2 and "already packed" in res.stderr
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "prune", "--weights", str(dense[1]), "--data", str(data),
                          "--alpha", "2,2,2", "--gamma", "1", "--out", str(tmp_path / "y.pt")], capture_output=True, text=True)
    assert res.returncode == 2 and "one per layer" in res.stderr


def test_sweep_with_retrain(dense, tmp_path):
    import csv
    import json

    from helpers import key_of

    from sasim.sweep import grid, run_sweep

    data, ckpt = dense
    points = grid(["8x8"], [4], [0.0, 1.0], ["prune"])
    summary = run_sweep(points, str(ckpt), tmp_path, data=str(data), split="valid", workers=2, show_progress=False,
                        retrain=dict(epochs=1, target=0.6, max_train_tokens=None))
    assert summary["done"] == 2, summary["failures"]
    totals = [r for r in csv.DictReader(open(tmp_path / "sweep.csv")) if r["layer"] == "total"]
    assert all(float(r["bpc"]) > 0 for r in totals)
    # the retrained checkpoint and its summary never take KEY.json, the file that marks a finished point on resume
    assert (tmp_path / "points" / f"{key_of(tmp_path, points[1])}.retrained.pt").is_file()
    assert "prune" in json.loads((tmp_path / "points" / f"{key_of(tmp_path, points[1])}.retrained.json").read_text())
    assert "prune" not in json.loads((tmp_path / "points" / f"{key_of(tmp_path, points[1])}.json").read_text())
    assert int(totals[1]["tiles"]) <= int(totals[0]["tiles"])  # a larger budget never needs more tiles under prune
    bad = run_sweep(grid(["8x8"], [4], [0.5], ["prune"]), str(ckpt), tmp_path / "b", workers=1, show_progress=False,
                    retrain=dict(epochs=1, target=0.6))
    assert "needs data" in list(bad["failures"].values())[0]["error"]


def test_a_compact_packed_checkpoint_loads_to_the_same_weights_and_eval(dense, tmp_path):
    from sasim.workload.checkpoint import load_raw, save_checkpoint
    from sasim.workload.layer_packing import compact_packed_state

    data, _ = dense
    out = prune(dense, tmp_path, "--alpha", 4, "--gamma", 1.0, "--target-sparsity", 0.6, "--epochs", 1)
    raw = load_raw(out)
    compact = compact_packed_state(raw["state_dict"])
    assert "rnns.0.weight_ih_l0" not in compact and "rnns.0.mask_hh" not in compact
    small = tmp_path / "compact.pt"
    save_checkpoint(small, compact, raw["model_config"], raw["vocab"], packing=raw["packing"])
    assert small.stat().st_size < out.stat().st_size / 2
    full, _ = load_language_model(out)
    again, _ = load_language_model(small)
    for a, b in zip(full.rnns, again.rnns):
        assert torch.equal(a.weight_ih_l0, b.weight_ih_l0) and torch.equal(a.weight_hh_l0, b.weight_hh_l0)
    assert stored_packings(load_lstm_workload(small)) is not None
    assert evaluate(Evaluate(weights=small, data=data, split="valid"))["bpc"] == evaluate(Evaluate(weights=out, data=data, split="valid"))["bpc"]


def test_rehearsal_equals_a_run_that_does_not_learn(dense):
    """The dry run's events are the real run's events: with a learning rate of zero the masks and groups match."""
    import copy

    from sasim.lm.corpus import encode_with_vocab, load_corpus
    from sasim.lm.presets import train_config_of
    from sasim.lm.prune import prune_combine_retrain, rehearse_pruning
    from sasim.lm.train import batchify

    data, ckpt = dense
    model, raw = load_language_model(ckpt)
    cfg = train_config_of(raw, 1, None)
    cfg.lr = 0.0
    train = batchify(encode_with_vocab(load_corpus(data), raw["vocab"])["train"], cfg.batch_size)
    still = copy.deepcopy(model)
    ran, _ = prune_combine_retrain(still, train, None, cfg, [4, 2], [1.0, 0.5], target=0.8, epochs=2, events=3,
                                   show_progress=False)
    rehearsed, records = rehearse_pruning(model, [4, 2], [1.0, 0.5], target=0.8, events=3)
    assert [r["event"] for r in records] == [1, 2, 3]
    for a, b in zip(ran, rehearsed):
        assert a.gates.num_groups == b.gates.num_groups
        assert (a.gates.group_cols == b.gates.group_cols).all()
        assert (a.gates.unpack() == b.gates.unpack()).all()
    assert any(p.gates.num_groups < p.gates.shape[1] for p in rehearsed)  # columns really were combined


def test_prune_dry_run_prints_tiles_and_needs_no_data(dense):
    _, ckpt = dense
    run = lambda *flags: subprocess.run([sys.executable, "-m", "sasim.cli", "prune", "--weights", str(ckpt), *flags],
                                        capture_output=True, text=True)
    res = run("--alpha", "4", "--gamma", "1", "--target-sparsity", "0.8", "--events", "2", "--hw", "8x8", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "layer 1 gates" in res.stdout and "tiles against" in res.stdout
    res = run("--alpha", "4", "--gamma", "1")
    assert res.returncode == 2 and "--data" in res.stderr and "--dry-run" in res.stderr


def test_finetune_keeps_masks_and_groups_and_scores_the_saved_weights(dense, tmp_path):
    data, ckpt = dense
    packed = prune(dense, tmp_path, "--alpha", 4, "--gamma", 1, "--target-sparsity", 0.8, "--epochs", 1)
    out = tmp_path / "tuned.pt"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "finetune", "--weights", str(packed), "--data", str(data),
                          "--epochs", "1", "--lr", "3e-3", "--out", str(out)], capture_output=True, text=True,
                         env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    before, after = (stored_packings(load_lstm_workload(p)) for p in (packed, out))  # each checks unpack == weights
    moved = False
    for a, b in zip(before, after):
        assert (a.gates.group_cols == b.gates.group_cols).all() and (a.gates.select == b.gates.select).all()
        assert not ((b.gates.unpack() != 0) & (a.gates.unpack() == 0)).any()  # nothing regrows
        moved |= not (a.gates.values == b.gates.values).all()
    assert moved  # it trained
    raw = torch.load(out, weights_only=True)
    tuned = raw["finetune"][-1]
    assert tuned["eval"]["test"] == evaluate(Evaluate(weights=out, data=data, split="test"))["bpc"]
    assert raw["prune"]["eval"]["test"] != tuned["eval"]["test"]  # the prune record stays, the new score is beside it
    # a dense checkpoint is trained on with the same recipe (the control) and saved dense
    control = tmp_path / "control.pt"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "finetune", "--weights", str(ckpt), "--data", str(data),
                          "--lr", "3e-3", "--out", str(control)], capture_output=True, text=True,
                         env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 0 and "(dense)" in res.stdout, res.stderr[-3000:]
    raw = torch.load(control, weights_only=True)
    assert "packing" not in raw and raw["finetune"][-1]["density"] == {"layer0": 1.0, "layer1": 1.0}
    assert raw["finetune"][-1]["eval"]["test"] == evaluate(Evaluate(weights=control, data=data, split="test"))["bpc"]
    assert raw["finetune"][-1]["eval"]["test"] != evaluate(Evaluate(weights=ckpt, data=data, split="test"))["bpc"]  # it trained


@pytest.mark.parametrize("pattern,flags", [("nm:2:4", ()), ("block:8x8", ("--target-sparsity", 0.5)),
                                           ("unstructured", ("--target-sparsity", 0.75))])
def test_prune_with_another_pattern_keeps_its_structure_through_retraining(dense, tmp_path, pattern, flags):
    import numpy as np

    from sasim.combine.packed import RowBlocks

    out = prune(dense, tmp_path, "--pattern", pattern, "--epochs", 1, *flags)
    raw = torch.load(out, weights_only=True)
    assert raw["packing"]["packing"]["pattern"] == pattern and raw["prune"]["pattern"] == pattern
    assert len(raw["prune"]["events"]) == (1 if pattern.startswith("nm") else 2)
    packs = stored_packings(load_lstm_workload(out))  # unpacks exactly to the retrained weights (checked inside)
    for p in packs:
        w = p.gates.unpack()
        if pattern.startswith("nm"):
            assert p.gates.max_group_size == 4
            assert all((np.count_nonzero(w[:, c:c + 4], axis=1) <= 2).all() for c in range(0, w.shape[1], 4))
        elif pattern.startswith("block"):
            assert isinstance(p.gates, RowBlocks) and p.gates.max_group_size == 1
            alive = [np.count_nonzero(w[r:r + 8, c:c + 8]) for r in range(0, w.shape[0], 8)
                     for c in range(0, w.shape[1], 8)]
            assert all(a in (0, 64) for a in alive) and abs(alive.count(0) / len(alive) - 0.5) < 0.1
        else:
            assert p.gates.max_group_size == 1 and abs(1 - np.count_nonzero(w) / w.size - 0.75) < 0.01
    data, _ = dense
    assert evaluate(Evaluate(weights=out, data=data, split="test"))["bpc"] == pytest.approx(raw["prune"]["eval"]["test"], rel=1e-9)
