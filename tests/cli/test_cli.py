"""The command line: reports carry docs/contract.md's metrics and provenance; bad input gets one error line."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import sparse_lstm_checkpoint


def sasim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sasim.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


DESIGN_KEYS = {"cycles", "stall_cycles", "utilization", "dense_equivalent_utilization", "packing_efficiency",
               "tile_efficiency", "tiles", "pruned_fraction", "latency_s"}


def test_gemm_json_report(tmp_path):
    out = tmp_path / "g.json"
    res = sasim("gemm", "--hw", "8x8", "--m", 4, "--n", 30, "--k", 20, "--density", 0.3, "--alpha", 4, "--gamma", 0.5,
                "--timing", "scalesim", "--json", out)
    assert res.returncode == 0, res.stderr
    rep = json.loads(out.read_text())
    assert DESIGN_KEYS <= set(rep["total"])
    assert rep["total"]["scalesim_total_cycles"] == rep["total"]["cycles"] - 1
    assert rep["total"]["max_abs_error_vs_numpy"] < 1e-4
    assert {"sasim", "numpy", "numba", "torch"} <= set(rep["versions"])
    assert rep["hw"]["array"]["rows"] == 8 and rep["seed"] == 0 and rep["packing"]["alpha"] == 4
    assert "utilization" in res.stdout and "definitions" in res.stdout


@pytest.fixture
def lstm_ckpt(tmp_path):
    return sparse_lstm_checkpoint(tmp_path / "lstm.pt")


def test_run_dense_and_packed_analytic_equals_cycle(lstm_ckpt, tmp_path):
    reports = {}
    for mode in ("cycle", "analytic"):
        out = tmp_path / f"{mode}.json"
        res = sasim("run", "--hw", "8x8", "--weights", lstm_ckpt, "--batch", 3, "--steps", 2, "--mode", mode,
                    "--alpha", 4, "--gamma", 0.5, "--json", out)
        assert res.returncode == 0, res.stderr
        reports[mode] = json.loads(out.read_text())
    assert reports["cycle"]["total"] == reports["analytic"]["total"]
    assert DESIGN_KEYS <= set(reports["cycle"]["total"])
    assert len(reports["cycle"]["layers"]) == 2


def test_combine_then_run_packed_checkpoint(lstm_ckpt, tmp_path):
    packed = tmp_path / "packed.pt"
    res = sasim("combine", "--weights", lstm_ckpt, "--alpha", 4, "--gamma", 1.0, "--out", packed, "--json",
                tmp_path / "c.json", "--hw", "8x8")
    assert res.returncode == 0, res.stderr
    stats = json.loads((tmp_path / "c.json").read_text())["tensors"]["rnns.0.gates"]
    assert {"groups", "group_sizes", "nonzeros_before", "nonzeros_after", "pruned_fraction", "packing_efficiency",
            "tiles", "tile_efficiency"} <= set(stats)
    assert stats["tiles"] == -(-64 // 8) * -(-stats["groups"] // 8)
    raw = torch.load(packed, weights_only=True)
    sd = raw["state_dict"]
    assert torch.equal(sd["rnns.0.weight_ih_l0"] * sd["rnns.0.mask_ih"], sd["rnns.0.weight_ih_l0"])
    assert sasim("run", "--hw", "8x8", "--weights", packed).returncode == 0


@pytest.mark.parametrize("pattern,flags,groups", [("nm:2:4", (), 14), ("block:8x4", ("--sparsity", 0.5), None),
                                                  ("unstructured", ("--sparsity", 0.5), 28)])
def test_combine_with_each_pattern_then_run_it(lstm_ckpt, tmp_path, pattern, flags, groups):
    import numpy as np

    packed, report = tmp_path / "packed.pt", tmp_path / "c.json"
    res = sasim("combine", "--weights", lstm_ckpt, "--pattern", pattern, *flags, "--out", packed, "--json", report,
                "--hw", "8x8")
    assert res.returncode == 0, res.stderr
    rep = json.loads(report.read_text())
    stats = rep["tensors"]["rnns.0.gates"]
    assert rep["packing"]["pattern"] == pattern and stats["shape"] == [64, 28]
    if groups is not None:
        assert stats["groups"] == groups
    w = (torch.load(packed, weights_only=True)["state_dict"]["rnns.0.weight_ih_l0"]).numpy()
    if pattern == "nm:2:4":
        assert all((np.count_nonzero(w[:, c:c + 4], axis=1) <= 2).all() for c in range(0, 12, 4))
    run = sasim("run", "--hw", "8x8", "--weights", packed, "--json", tmp_path / "r.json")
    assert run.returncode == 0, run.stderr
    total = json.loads((tmp_path / "r.json").read_text())["total"]
    assert total["tiles"] == sum(t["tiles"] for t in rep["tensors"].values())


@pytest.mark.parametrize("args,needle", [
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "nm:2:4", "--alpha", 4, "--gamma", 1],
     "--alpha and --gamma are column combining's"),
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "nm:2:4", "--sparsity", 0.5], "leave out --sparsity"),
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "nm:5:4"], "n < m"),
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "nm:2:32", "--hw", "8x8"], "mux_fanin"),
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "combine", "--sparsity", 0.5], "needs --alpha"),
    (["combine", "--weights", "W.pt", "--out", "o.pt", "--pattern", "diagonal"], "cannot read the pattern"),
    (["gemm", "--hw", "8x8", "--m", 0, "--n", 3, "--k", 3], "--m must be positive"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 3, "--k", 3, "--alpha", 4], "both --alpha and --gamma"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 3, "--k", 3, "--rule", "spill"], "only applies when packing"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 30, "--k", 30, "--alpha", 16, "--gamma", 1], "mux_fanin"),
    (["gemm", "--hw", "nonexistent.yaml", "--m", 2, "--n", 3, "--k", 3], "not found"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 3, "--k", 3, "--density", 0], "--density"),
    (["run", "--hw", "8x8", "--weights", "missing.pt"], "not found"),
])
def test_bad_input_one_line_exit_2(args, needle):
    res = sasim(*args)
    assert res.returncode == 2
    assert needle in res.stderr and "Traceback" not in res.stderr


def test_plot_pictures(lstm_ckpt, tmp_path):
    res = sasim("plot", "--hw", "8x8", "--weights", lstm_ckpt, "--alpha", 4, "--gamma", 1.0, "--layer", 1,
                "--tile", 2, "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "layer1.gates_tile2.png").stat().st_size > 1000
    assert (tmp_path / "layer1.gates_packed.png").stat().st_size > 1000
    bad = sasim("plot", "--hw", "8x8", "--weights", lstm_ckpt, "--alpha", 4, "--gamma", 1.0, "--tile", 999,
                "--out", tmp_path)
    assert bad.returncode == 2 and "--tile must be in" in bad.stderr


def test_fixed_point_config_accuracy_uses_integer_arithmetic(tmp_path):
    from conftest import REPO
    from helpers import write_corpus

    from sasim.lm.corpus import load_corpus
    from sasim.lm.presets import TrainConfig
    from sasim.lm.train import train

    data = write_corpus(tmp_path / "d")
    cfg = TrainConfig(emb_size=6, hidden_size=12, num_layers=2, bptt=10, batch_size=4, dropout_e=0, dropout_h=0.1,
                      dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=1, seed=2)
    train(load_corpus(data), cfg, tmp_path / "m.pt", show_progress=False)
    text = (REPO / "hwconfigs" / "8x8.yaml").read_text().replace("number_format: float32", "number_format: fixed_point")
    results = {}
    for bits in (4, 16):
        hw = tmp_path / f"fx{bits}.yaml"
        hw.write_text(text.replace("weight_bits: 32", f"weight_bits: {bits}").replace("act_bits: 32", f"act_bits: {bits}")
                      .replace("acc_bits: 32", "acc_bits: 48"))
        out = tmp_path / f"r{bits}.json"
        res = sasim("run", "--hw", hw, "--weights", tmp_path / "m.pt", "--data", data, "--split", "valid", "--json", out)
        assert res.returncode == 0, res.stderr
        assert "integer arithmetic" in res.stdout
        results[bits] = json.loads(out.read_text())["total"]["bpc"]
    float_run = sasim("run", "--hw", "8x8", "--weights", tmp_path / "m.pt", "--data", data, "--split", "valid",
                      "--json", tmp_path / "f.json")
    assert float_run.returncode == 0
    fp = json.loads((tmp_path / "f.json").read_text())["total"]["bpc"]
    assert abs(results[16] - fp) < 1e-3  # 16-bit words match float32
    assert results[4] != results[16]  # 4-bit words change the numbers: the integer path was used


@pytest.mark.parametrize("args", [["--batch", 0], ["--steps", 0], ["--workload", "awd-char-ptb", "--steps", 0]])
def test_zero_batch_or_steps_is_an_error_not_a_default(lstm_ckpt, args):
    extra = [] if "--workload" in args else ["--weights", lstm_ckpt]
    res = sasim("run", "--hw", "8x8", "--mode", "analytic", *extra, *args)
    assert res.returncode == 2 and "must be positive" in res.stderr


def test_stored_packing_wider_than_the_multiplexer_is_refused(tmp_path):
    ckpt = sparse_lstm_checkpoint(tmp_path / "wide.pt", input_size=40, hidden=40, density=0.05)
    packed = tmp_path / "packed16.pt"
    assert sasim("combine", "--weights", ckpt, "--alpha", 16, "--gamma", 1.75, "--out", packed).returncode == 0
    res = sasim("run", "--hw", "8x8", "--weights", packed, "--mode", "analytic")
    assert res.returncode == 2 and "mux_fanin" in res.stderr and "Traceback" not in res.stderr
