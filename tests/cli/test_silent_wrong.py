"""The silently wrong results of the reliability issue: each gave a wrong number with exit status 0 before.

Every test here failed on the main branch before the fix (the sweep reused stale points, sizes and overflows
gave negative or wrapped counts, layers came back permuted, scores were computed from broken inputs).
"""

import copy
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, make_hw, sparse_lstm_checkpoint

from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.hw.config import load_hw_config, parse_hw_config
from sasim.sim.engine import simulate_matmul
from sasim.sweep import grid, run_sweep
from sasim.workload.lstm_weights import load_lstm_workload

ENV = {**__import__("os").environ, "TQDM_DISABLE": "1"}


class Ran:
    """What a command printed and returned (run in this process, through the CLI's entry point)."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def sasim(*args):
    """``sasim ARGS`` through ``sasim.cli.main`` in this process (the start-up of a subprocess, about 5 s of
    importing torch and numba, is all a subprocess would add; the segfault case below runs in a real one)."""
    import contextlib
    import io

    from sasim.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return Ran(code, out.getvalue(), err.getvalue())


def one_error_line(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def totals(out) -> list[dict]:
    with open(out / "sweep.csv") as f:
        return [r for r in csv.DictReader(f) if r["layer"] == "total"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(sparse_lstm_checkpoint(tmp_path_factory.mktemp("sw") / "l.pt", input_size=10, hidden=12, density=0.3))


# --- the sweep's resume key ---------------------------------------------------------------------------------

def test_rerun_with_another_batch_recomputes_instead_of_reusing(ckpt, tmp_path):
    points = grid(["8x8"], [2, 4], [0.0, 0.5], ["prune"])
    run_sweep(points, ckpt, tmp_path, batch=1, workers=1, show_progress=False)
    one = [int(r["cycles"]) for r in totals(tmp_path)]
    summary = run_sweep(points, ckpt, tmp_path, batch=8, workers=1, show_progress=False)
    eight = [int(r["cycles"]) for r in totals(tmp_path)]
    fresh = run_sweep(points, ckpt, tmp_path / "fresh", batch=8, workers=1, show_progress=False)
    assert summary["batch"] == fresh["batch"] == 8
    assert eight == [int(r["cycles"]) for r in totals(tmp_path / "fresh")]
    assert all(e > o for e, o in zip(eight, one))


def test_rerun_with_other_weights_recomputes(ckpt, tmp_path):
    other = str(sparse_lstm_checkpoint(tmp_path / "other.pt", input_size=10, hidden=20, density=0.3, seed=3))
    points = grid(["8x8"], [4], [0.5], ["prune"])
    run_sweep(points, ckpt, tmp_path / "s", workers=1, show_progress=False)
    first = totals(tmp_path / "s")[0]["cycles"]
    run_sweep(points, other, tmp_path / "s", workers=1, show_progress=False)
    run_sweep(points, other, tmp_path / "fresh", workers=1, show_progress=False)
    assert totals(tmp_path / "s")[0]["cycles"] == totals(tmp_path / "fresh")[0]["cycles"] != first


def test_two_hardware_files_with_one_name_do_not_collide(ckpt, tmp_path):
    base = load_hw_config("8x8").to_dict()
    slow = copy.deepcopy(base)
    slow["memory"]["sram_weight_bw"] = 0.5  # weight loads take far longer
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "hw.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "b" / "hw.yaml").write_text(yaml.safe_dump(slow))
    points = grid([str(tmp_path / "a" / "hw.yaml"), str(tmp_path / "b" / "hw.yaml")], [4], [0.5], ["prune"])
    run_sweep(points, ckpt, tmp_path / "s", workers=1, show_progress=False)
    fast_cycles, slow_cycles = (int(r["cycles"]) for r in totals(tmp_path / "s"))
    assert slow_cycles > fast_cycles
    # and a rerun after the file's content changed recomputes
    (tmp_path / "b" / "hw.yaml").write_text(yaml.safe_dump(base))
    run_sweep(points, ckpt, tmp_path / "s", workers=1, show_progress=False)
    assert len({int(r["cycles"]) for r in totals(tmp_path / "s")}) == 1


# --- sizes and overflow ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [["--steps", "-3"], ["--batch", "0"], ["--eval-tokens", "-1"], ["--prune-to", "0"]])
def test_sweep_refuses_impossible_sizes(ckpt, tmp_path, flags):
    line = one_error_line(sasim("sweep", "--hw", "8x8", "--weights", ckpt, "--alphas", "2", "--gammas", "0.5",
                                "--out", tmp_path / "s", *flags))
    assert flags[0] in line
    assert not (tmp_path / "s" / "sweep.csv").exists()


def test_sweep_library_refuses_impossible_sizes(ckpt, tmp_path):
    with pytest.raises(SasimError, match="steps must be positive"):
        run_sweep(grid(["8x8"], [2], [0.5], ["prune"]), ckpt, tmp_path, steps=-3, show_progress=False)
    with pytest.raises(SasimError, match="prune_to"):
        grid(["8x8"], [2], [0.5], ["prune"], prune_to=0.0)


@pytest.mark.parametrize("field", ["sram_weight_bw", "sram_input_bw", "dram_bw"])
def test_tiny_bandwidth_is_refused_by_the_schema(field):
    data = load_hw_config("8x8").to_dict()
    data["memory"][field] = 1.0e-20
    with pytest.raises(SasimError, match=f"memory.{field}"):
        parse_hw_config(yaml.safe_dump(data))


def test_huge_batch_is_refused_not_wrapped(tmp_path):
    hw = make_hw()
    w = np.ones((40, 30), np.float32)
    with pytest.raises(SasimError, match="must be <="):
        simulate_matmul(PackedMatrix.from_dense(w), None, hw, 10**15, mode="analytic")
    # the largest batch allowed still counts exactly (Python ints, no wrap)
    big = simulate_matmul(PackedMatrix.from_dense(w), None, hw, 2**31 - 1, mode="analytic").counts
    assert big.useful_macs == 40 * 30 * (2**31 - 1) and big.cycles > 0
    lstm = sparse_lstm_checkpoint(tmp_path / "l.pt")
    line = one_error_line(sasim("run", "--hw", "8x8", "--weights", lstm, "--batch", 10**15, "--mode", "analytic"))
    assert "--batch" in line


def test_slowest_allowed_bandwidths_give_positive_exact_counts():
    hw = make_hw(memory__sram_weight_bw=1e-3, memory__sram_input_bw=1e-3, memory__dram_bw=1e-3)
    w = np.random.default_rng(0).standard_normal((20, 12)).astype(np.float32)
    res = simulate_matmul(PackedMatrix.from_dense(w), None, hw, 3, mode="analytic")
    assert res.counts.cycles > 64 * 4 / 1e-3  # a full tile's 64 cells of 4 bytes at 1e-3 bytes per cycle


def test_gemm_with_tiny_input_bandwidth_is_an_error_not_a_segfault(tmp_path):
    data = load_hw_config("8x8").to_dict()
    data["memory"]["sram_input_bw"] = 1.0e-20
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "gemm", "--hw", str(tmp_path / "hw.yaml"), "--m", "2",
                          "--n", "8", "--k", "8"], capture_output=True, text=True, env=ENV)  # a real process: it segfaulted
    assert "sram_input_bw" in one_error_line(res)


def test_cycle_run_too_long_to_step_is_refused():
    w = np.ones((8, 8), np.float32)
    with pytest.raises(SasimError, match="--mode analytic"):  # 2**31 vectors: as many beats, each a pass over the PEs
        simulate_matmul(PackedMatrix.from_dense(w), None, make_hw(), 2**31 - 1, mode="cycle")


# --- layer order -----------------------------------------------------------------------------------------------

def test_twelve_layer_safetensors_keeps_numeric_layer_order(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 6, num_layers=12)
    save_file({k: v.contiguous() for k, v in lstm.state_dict().items()}, str(tmp_path / "m.safetensors"))
    workload = load_lstm_workload(tmp_path / "m.safetensors")
    assert len(workload.layers) == 12
    for i, layer in enumerate(workload.layers):
        np.testing.assert_array_equal(layer.w_ih, getattr(lstm, f"weight_ih_l{i}").detach().numpy())


def test_awd_layers_with_a_gap_are_an_error(tmp_path):
    state = {}
    for i in (0, 2):
        state[f"rnns.{i}.module.weight_ih_l0"] = torch.zeros(16, 4)
        state[f"rnns.{i}.module.weight_hh_l0_raw"] = torch.zeros(16, 4)
    torch.save(state, tmp_path / "awd.pt")
    with pytest.raises(SasimError, match="layer 1 is missing"):
        load_lstm_workload(tmp_path / "awd.pt")


def test_nn_lstm_layers_with_a_gap_are_an_error(tmp_path):
    lstm = torch.nn.LSTM(4, 4, num_layers=3)
    state = {k: v for k, v in lstm.state_dict().items() if not k.endswith("_l1")}
    torch.save(state, tmp_path / "gap.pt")
    with pytest.raises(SasimError, match="layer 1 is missing"):
        load_lstm_workload(tmp_path / "gap.pt")


# --- scores and reports ----------------------------------------------------------------------------------------

def test_duplicated_vocab_symbol_is_refused(dense, tmp_path):
    data, ckpt = dense
    raw = torch.load(ckpt, weights_only=True)
    raw["vocab"][1] = raw["vocab"][0]
    torch.save(raw, tmp_path / "dup.pt")
    line = one_error_line(sasim("eval", "--weights", tmp_path / "dup.pt", "--data", data))
    assert "appear twice" in line


@pytest.mark.parametrize("scale", [float("nan"), 0.0, -0.5, "0.1", None])
def test_quantized_checkpoint_with_a_bad_activation_scale_is_refused(dense, tmp_path, scale):
    from sasim.quant.checkpoint import quantization_meta
    from sasim.quant.fixed_point_lstm import QuantConfig

    data, ckpt = dense
    raw = torch.load(ckpt, weights_only=True)
    raw["quantization"] = quantization_meta(QuantConfig(8, 8, 32), [])
    raw["quantization"]["scales"] = [{"input": 0.05, "projection": None}, {"input": scale, "projection": None}]
    torch.save(raw, tmp_path / "q.pt")
    line = one_error_line(sasim("eval", "--weights", tmp_path / "q.pt", "--data", data))
    assert "scales[1].input" in line and "> 0" in line


def test_projection_as_wide_as_hidden_is_refused(tmp_path):
    from helpers import write_corpus

    data = write_corpus(tmp_path / "d")
    line = one_error_line(sasim("train", "--data", data, "--proj-size", "10000", "--out", tmp_path / "m.pt"))
    assert "--proj-size" in line and "hidden_size" in line
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("path, value", [("clock_hz", ".inf"), ("energy.mac_pj", ".inf"), ("energy.dram_pj_per_byte", ".nan")])
def test_infinite_config_numbers_are_refused(path, value, tmp_path):
    text = (REPO / "hwconfigs" / "8x8.yaml").read_text()
    data = yaml.safe_load(text)
    node = data
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = "@@"
    (tmp_path / "hw.yaml").write_text(yaml.safe_dump(data).replace("'@@'", value))
    res = sasim("gemm", "--hw", tmp_path / "hw.yaml", "--m", 2, "--n", 8, "--k", 8, "--json", tmp_path / "r.json")
    assert res.returncode == 2 and path in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r.json").exists()


def test_json_reports_never_hold_infinity(tmp_path):
    from sasim.outputs import write_json

    with pytest.raises(SasimError, match="total.energy_j"):
        write_json(tmp_path / "r.json", {"total": {"energy_j": float("inf")}})
    assert not (tmp_path / "r.json").exists()


def test_complex_weights_are_refused(tmp_path):
    torch.save({"weight_ih_l0": torch.zeros(8, 2, dtype=torch.complex64),
                "weight_hh_l0": torch.zeros(8, 2, dtype=torch.complex64)}, tmp_path / "c.pt")
    line = one_error_line(sasim("run", "--hw", "8x8", "--weights", tmp_path / "c.pt"))
    assert "complex" in line
    from sasim.combine.packed import validate_matrix

    with pytest.raises(SasimError, match="imaginary"):
        validate_matrix(np.ones((2, 2), np.complex64))


def test_library_rejects_prune_to_zero():
    from sasim.combine.magnitude import magnitude_prune

    with pytest.raises(SasimError, match="density"):
        magnitude_prune(np.ones((2, 2), np.float32), 0.0)


def test_eval_tokens_must_be_positive_in_the_library(dense):
    from sasim.lm.loading import evaluate_model, load_language_model

    data, ckpt = dense
    model, raw = load_language_model(ckpt)
    with pytest.raises(SasimError, match="max_tokens"):
        evaluate_model(model, raw, data, "valid", max_tokens=-1)


def test_sweep_json_records_input_digests(ckpt, tmp_path):
    run_sweep(grid(["8x8"], [2], [0.5], ["prune"]), ckpt, tmp_path, workers=1, show_progress=False)
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert len(summary["inputs_sha256"]["weights"]) == 64 and "8x8" in summary["inputs_sha256"]["hw"]
