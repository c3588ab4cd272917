"""Training under torchrun with 2 gloo processes on the CPU: the same losses and weights as one process with the
same global batch, the same masks and groups on every rank, resume after a kill, and files written by rank 0 only.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import write_corpus

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def torchrun(nproc, *args, cwd, background=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = TORCHRUN + [f"--nproc_per_node={nproc}", *map(str, args)]
    if background:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def worker(nproc, job, root, data, out, *extra):
    reports = root / f"reports-{job}-{nproc}"
    reports.mkdir()
    torchrun(nproc, HERE / "distributed_worker.py", job, reports, data, out, *extra, cwd=root)
    return [json.loads((reports / f"rank{r}.json").read_text()) for r in range(nproc)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    return root, write_corpus(root / "data", alphabet="abcdefg_", lines=(300, 40, 40))


@pytest.fixture(scope="module")
def train_runs(corpus):
    root, data = corpus
    one = worker(1, "train", root, data, root / "one" / "model.pt")
    two = worker(2, "train", root, data, root / "two" / "model.pt")
    return root, one, two


def test_two_processes_train_like_one_with_the_same_global_batch(train_runs):
    root, (one,), two = train_runs
    assert len(one["curve"]) == 2
    for a, b in zip(one["curve"], two[0]["curve"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=1e-5)  # evaluation split over ranks
    assert two[0]["curve"] == two[1]["curve"]  # every rank reports the all-reduced losses
    w1 = torch.load(root / "one" / "model.pt", weights_only=True)["state_dict"]
    w2 = torch.load(root / "two" / "model.pt", weights_only=True)["state_dict"]
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5)
    assert torch.load(root / "two" / "model.pt", weights_only=True)["train"]["processes"] == 2


def test_only_rank_0_writes_files(train_runs):
    root, _, (rank0, rank1) = train_runs
    inside = lambda writes: {Path(w).name for w in writes if str(root / "two") in w}  # noqa: E731
    assert {"model.pt", "model.latest.pt", "model.json"} <= inside(rank0["writes"])
    assert inside(rank1["writes"]) == set()
    assert sorted(p.name for p in (root / "two").iterdir()) == ["model.json", "model.latest.pt", "model.pt"]


def test_masks_and_groups_are_identical_on_both_ranks(corpus, dense):
    root, data = corpus
    dense_data, dense_ckpt = dense
    rank0, rank1 = worker(2, "prune", root, dense_data, root / "unused.pt", dense_ckpt)
    assert rank0["events"] == rank1["events"] == 3
    assert rank0["masks"] and rank0["masks"] == rank1["masks"]
    assert rank0["groups"] == rank1["groups"]
    assert 0 < sum(map(sum, rank0["masks"].values())) < sum(map(len, rank0["masks"].values()))  # really pruned


def test_a_killed_two_process_run_resumes_on_both_ranks_to_the_uninterrupted_result(corpus):
    root, data = corpus
    args = ["-m", "sasim", "train", "--data", data, "--epochs", "3", "--max-train-tokens", "800"]
    torchrun(2, *args, "--out", root / "whole" / "m.pt", cwd=root)
    killed = torchrun(2, *args, "--out", root / "cut" / "m.pt", cwd=root, background=True)
    latest = root / "cut" / "m.latest.pt"
    deadline = time.time() + 300
    while not latest.is_file() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the launcher and both ranks, at once
    killed.wait()
    done_before = len(torch.load(latest, weights_only=True)["train"]["curve"])
    resumed = torchrun(2, *args, "--out", root / "cut" / "m.pt", "--resume", cwd=root)
    assert "best valid loss" in resumed.stdout
    whole = torch.load(root / "whole" / "m.latest.pt", weights_only=True)
    cut = torch.load(latest, weights_only=True)
    assert 1 <= done_before < 3 and len(cut["train"]["curve"]) == 3  # killed mid-run, then finished
    assert len(cut["rng_per_rank"]) == 2
    for name, tensor in whole["state_dict"].items():  # dropout on: per-rank random streams were restored too
        assert torch.equal(cut["state_dict"][name], tensor), name
    assert [p["valid_loss"] for p in cut["train"]["curve"]] == [p["valid_loss"] for p in whole["train"]["curve"]]


def test_commands_that_do_not_train_refuse_torchrun(corpus):
    root, _ = corpus
    cmd = TORCHRUN + ["--nproc_per_node=2", "-m", "sasim", "validate", "32x32"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode != 0
    assert "sasim validate runs in one process" in done.stderr
