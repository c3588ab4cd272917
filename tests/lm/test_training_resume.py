"""Training and pruning runs that are killed, or meet a full disk, resume to the results of an uninterrupted run."""

import errno
import os

import pytest
import torch

import sasim.outputs
from sasim.api.prune import prune_checkpoint
from sasim.errors import SasimError
from sasim.lm.corpus import load_corpus
from sasim.lm.presets import TrainConfig
from sasim.lm.train import train


def tiny_config(epochs):
    return TrainConfig(emb_size=6, hidden_size=12, num_layers=2, bptt=10, batch_size=4, dropout_e=0.05,
                       dropout_h=0.1, dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=epochs, seed=2)


def fsync_failing_at(monkeypatch, n):
    real, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(sasim.outputs.os, "fsync", fsync)


def same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_training_after_a_full_disk_resumes_to_the_same_model(dense, tmp_path, monkeypatch):
    data, _ = dense
    corpus = load_corpus(data)
    train(corpus, tiny_config(3), tmp_path / "whole.pt", show_progress=False)
    # epoch 1 writes best + latest (2 files); epoch 2 fails while writing
    fsync_failing_at(monkeypatch, 3)
    with pytest.raises(SasimError, match="No space left"):
        train(corpus, tiny_config(3), tmp_path / "cut.pt", show_progress=False)
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*.tmp"))
    train(corpus, tiny_config(3), tmp_path / "cut.pt", resume=True, show_progress=False)
    whole = torch.load(tmp_path / "whole.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut.pt", weights_only=True)
    same_tensors(whole["state_dict"], cut["state_dict"])
    assert [c["valid_loss"] for c in whole["train"]["curve"]] == [c["valid_loss"] for c in cut["train"]["curve"]]


class Killed(BaseException):
    """Stands for SIGKILL: raised right after a progress file was written, nothing after it runs."""


def test_prune_killed_after_an_epoch_resumes_to_the_same_packed_model(dense, tmp_path, monkeypatch):
    import sasim.lm.prune as prune

    data, ckpt = dense
    args = dict(alphas=[4], gammas=[0.5], target=0.6, epochs=3, max_train_tokens=800, seed=3, show_progress=False)
    whole = prune_checkpoint(ckpt, data, tmp_path / "whole.pt", **args)
    real_save = prune._save_progress

    def save_then_die(path, settings, epochs_done, *rest):
        real_save(path, settings, epochs_done, *rest)
        if epochs_done == 2:
            raise Killed()

    monkeypatch.setattr(prune, "_save_progress", save_then_die)
    with pytest.raises(Killed):
        prune_checkpoint(ckpt, data, tmp_path / "cut.pt", **args)
    monkeypatch.undo()
    assert not (tmp_path / "cut.pt").exists() and (tmp_path / "cut.latest.pt").is_file()
    resumed = prune_checkpoint(ckpt, data, tmp_path / "cut.pt", resume=True, **args)
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut.pt", weights_only=True)["state_dict"]
    same_tensors(a, b)  # weights, masks and the packed form (values, select indices, groups)
    assert resumed["eval"] == whole["eval"]
    assert resumed["events"] == whole["events"]
    assert [c["valid_loss"] for c in resumed["curve"]] == [c["valid_loss"] for c in whole["curve"]]


def test_prune_resume_with_other_settings_is_refused(dense, tmp_path):
    data, ckpt = dense
    args = dict(alphas=[4], gammas=[0.5], target=0.6, epochs=1, max_train_tokens=400, seed=3, show_progress=False)
    prune_checkpoint(ckpt, data, tmp_path / "p.pt", **args)
    with pytest.raises(SasimError, match="other settings"):
        prune_checkpoint(ckpt, data, tmp_path / "p.pt", resume=True, **{**args, "gammas": [1.0]})
