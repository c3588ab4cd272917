"""A sweep survives being killed, a full disk, corrupt point files and dead workers, and resumes to the results
of an uninterrupted run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import sparse_lstm_checkpoint

from sasim.errors import SasimError
from sasim.sweep import grid, run_sweep

ENV = {**os.environ, "TQDM_DISABLE": "1"}
POINTS = dict(hws=["8x8", "32x32"], alphas=[2, 4], gammas=[0.0, 0.5, 1.0], rules=["prune", "spill"])


def table(out) -> list[dict]:
    with open(out / "sweep.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(sparse_lstm_checkpoint(tmp_path_factory.mktemp("res") / "l.pt", input_size=20, hidden=24,
                                      density=0.3))


@pytest.fixture(scope="module")
def reference(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    run_sweep(grid(**POINTS), ckpt, out, batch=2, workers=1, show_progress=False)
    return table(out)


def sweep_cmd(ckpt, out, workers=1):
    cmd = [sys.executable, "-m", "sasim.cli", "sweep", "--weights", ckpt, "--out", str(out), "--batch", "2",
           "--alphas", "2,4", "--gammas", "0,0.5,1", "--rules", "prune,spill", "--workers", str(workers)]
    for hw in POINTS["hws"]:
        cmd += ["--hw", hw]
    return cmd


def test_sigkill_mid_sweep_then_corrupt_file_then_resume(ckpt, reference, tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen(sweep_cmd(ckpt, out, workers=2), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "points").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the main process and its workers, wherever they are
    proc.wait()
    done = sorted((out / "points").glob("*.json"))
    assert done, "the sweep was killed before any point finished"
    assert not (out / "sweep.csv").exists() or len(table(out)) < len(reference)
    done[0].write_text(done[0].read_text()[: len(done[0].read_text()) // 2])  # a point file cut mid-write
    if len(done) > 1:
        done[1].write_text(json.dumps({"total": "not what a point holds"}))  # valid JSON, other content
    res = subprocess.run(sweep_cmd(ckpt, out), env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert table(out) == reference


def test_full_disk_while_writing_a_point_then_resume(ckpt, reference, tmp_path, monkeypatch):
    import errno

    import sasim.outputs

    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(sasim.outputs.os, "fsync", failing_fsync)
    with pytest.raises(SasimError, match="No space left"):
        run_sweep(grid(**POINTS), ckpt, tmp_path, batch=2, workers=1, show_progress=False)
    monkeypatch.setattr(sasim.outputs.os, "fsync", real_fsync)
    assert not list((tmp_path / "points").glob(".*.tmp"))  # no temporary file left behind
    assert len(list((tmp_path / "points").glob("*.json"))) == 3
    run_sweep(grid(**POINTS), ckpt, tmp_path, batch=2, workers=1, show_progress=False)
    assert table(tmp_path) == reference


def _die_on_alpha_4(job):
    """A stand-in for the OOM killer: the worker running an alpha-4 point on 32x32 dies."""
    from sasim import sweep

    if job.point.alpha == 4 and job.point.hw == "32x32" and job.point.gamma == 0.5 and job.point.rule == "prune":
        os.kill(os.getpid(), signal.SIGKILL)
    return sweep._real_safe_run(job)


def test_a_dead_worker_fails_its_point_alone(ckpt, reference, tmp_path, monkeypatch):
    from sasim import sweep

    monkeypatch.setattr(sweep, "_real_safe_run", sweep._safe_run, raising=False)
    monkeypatch.setattr(sweep, "_safe_run", _die_on_alpha_4)
    summary = run_sweep(grid(**POINTS), ckpt, tmp_path, batch=2, workers=2, show_progress=False)
    assert len(summary["failures"]) == 1
    (failure,) = summary["failures"].values()
    assert "worker process died" in failure["error"] and failure["point"]["alpha"] == 4
    assert summary["done"] == 23 and (tmp_path / "sweep.csv").is_file()
    monkeypatch.undo()
    run_sweep(grid(**POINTS), ckpt, tmp_path, batch=2, workers=1, show_progress=False)  # resume redoes that one
    assert table(tmp_path) == reference


def test_sigterm_stops_the_workers_too(ckpt, tmp_path):
    out = tmp_path / "s"
    cmd = sweep_cmd(ckpt, out, workers=2) + ["--mode", "cycle", "--steps", "40"]
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    children = []
    while time.time() < deadline and not children:
        children = _children(proc.pid)
        time.sleep(0.1)
    assert children, "no worker started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children), "workers outlived the sweep"


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:  # pragma: no cover - procps missing
        pytest.skip("ps is not available")
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
