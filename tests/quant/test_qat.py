"""Quantization-aware training, quantized checkpoints, vector-unit precision and the cost of a width."""

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import make_hw

from sasim.api.evaluate import Evaluate, evaluate
from sasim.errors import SasimError
from sasim.lm.loading import load_language_model
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.quant.fixed_point_lstm import (
    QuantConfig,
    calibrate_lstm,
    layer_scales,
    quantized_lstm_forward,
    simulate_quantized_lstm,
    vector_round,
)
from sasim.quant.qat import disable_fake_quant, enable_fake_quant

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def small_model(proj=0, seed=0):
    torch.manual_seed(seed)
    return LSTMLanguageModel(ModelConfig(vocab_size=13, emb_size=6, hidden_size=10, num_layers=2, proj_size=proj)).eval()


@pytest.mark.parametrize("proj", [0, 4])
@pytest.mark.parametrize("vector_bits", [0, 12])
def test_fake_quant_forward_equals_the_integer_path(proj, vector_bits):
    m = small_model(proj)
    cfg = QuantConfig(weight_bits=6, act_bits=6, vector_bits=vector_bits)
    q = calibrate_lstm(m, torch.randint(0, 13, (20, 4)), cfg)
    x = m.encoder(torch.randint(0, 13, (7, 3)))
    with torch.no_grad():
        exact = quantized_lstm_forward(m, q, x, cfg)
        enable_fake_quant(m, cfg, layer_scales(q))
        fake = x
        for rnn in m.rnns:
            fake, _ = rnn(fake, None)
        disable_fake_quant(m)
        plain = x
        for rnn in m.rnns:
            plain, _ = rnn(plain, None)
    assert (fake - exact).abs().max().item() < 1e-5  # float32 against float64 sums of the same integers
    assert (plain - exact).abs().max().item() > 1e-3  # and the rounding is really there


def test_straight_through_gradients_reach_the_weights_and_masks_hold():
    m = small_model()
    rnn = m.rnns[0]
    rnn.register_buffer("mask_ih", (torch.rand_like(rnn.weight_ih_l0) > 0.5).float())
    rnn.register_buffer("mask_hh", torch.ones_like(rnn.weight_hh_l0))
    with torch.no_grad():
        rnn.weight_ih_l0.mul_(rnn.mask_ih)
    cfg = QuantConfig(weight_bits=4, act_bits=4)
    enable_fake_quant(m, cfg, layer_scales(calibrate_lstm(m, torch.randint(0, 13, (20, 4)), cfg)))
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(3):
        tokens = torch.randint(0, 13, (6, 3))
        logits, _ = m(tokens)
        loss = F.cross_entropy(logits.view(-1, 13), torch.randint(0, 13, (18,)))
        opt.zero_grad()
        loss.backward()
        assert rnn.weight_hh_l0.grad.abs().sum() > 0  # rounding passes the gradient straight through
        assert (rnn.weight_ih_l0.grad[rnn.mask_ih == 0] == 0).all()
        opt.step()
    assert (rnn.weight_ih_l0[rnn.mask_ih == 0] == 0).all()  # pruned weights never regrow


def test_vector_round_grid_saturation_and_errors():
    cfg = QuantConfig(vector_bits=8, vector_frac_bits=4)  # step 1/16, range +-127/16
    t = torch.tensor([0.03125, 0.09375, 100.0, -100.0, 0.5])
    assert vector_round(t, cfg).tolist() == [0.0, 0.125, 127 / 16, -127 / 16, 0.5]  # ties to even
    assert torch.equal(vector_round(t, QuantConfig()), t)
    with pytest.raises(SasimError, match="vector_bits"):
        QuantConfig(vector_bits=2)
    with pytest.raises(SasimError, match="vector_frac_bits"):
        QuantConfig(vector_bits=8, vector_frac_bits=8)


def test_quantized_checkpoint_eval_equals_the_simulator_on_the_same_tokens(dense, tmp_path):
    from sasim.lm.corpus import encode_with_vocab, load_corpus
    from sasim.lm.train import batchify
    from sasim.quant.checkpoint import stored_quantization

    data, ckpt = dense
    out = tmp_path / "q.pt"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "quantize", "--weights", str(ckpt), "--data", str(data),
                          "--bits", "6,6", "--vector-bits", "14", "--qat-epochs", "1", "--calib-tokens", "400",
                          "--hw", "8x8", "--out", str(out)], capture_output=True, text=True, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "quantization-aware" in res.stdout and "weight memory" in res.stdout
    printed = float(res.stdout.split("bpc ")[-1].split()[0])
    evaluated = evaluate(Evaluate(weights=out, data=data, split="valid"))
    shown = subprocess.run([sys.executable, "-m", "sasim.cli", "eval", "--weights", str(out), "--data", str(data),
                            "--split", "valid"], capture_output=True, text=True, env=ENV)
    assert f"bpc {evaluated['bpc']:.4f}" in shown.stdout and "6-bit weights" in shown.stdout
    assert evaluated["bpc"] == pytest.approx(printed, abs=1e-4)
    assert evaluated["quantization"]["vector_bits"] == 14
    # the same tokens through the cycle-level simulator's integer arithmetic (one BPTT chunk: no carried state)
    model, raw = load_language_model(out)
    cfg, qlayers = stored_quantization(model, raw)
    tokens = batchify(encode_with_vocab(load_corpus(data), raw["vocab"])["valid"], 10)
    assert tokens.size(0) - 1 <= 100
    x, y = tokens[:-1], tokens[1:]
    with torch.no_grad():
        outs, overflows = simulate_quantized_lstm(model, qlayers, model.encoder(x), cfg, make_hw(8, 8))
        loss = F.cross_entropy(model.decoder(outs).view(-1, len(raw["vocab"])), y.reshape(-1)).item()
        fast = quantized_lstm_forward(model, qlayers, model.encoder(x), cfg)
    assert overflows == 0
    assert torch.equal(outs, fast)  # the evaluation path's outputs are the array's, bit for bit
    assert loss / math.log(2) == pytest.approx(evaluated["bpc"], abs=1e-6)  # float32 loss reductions differ


def test_prune_with_qat_saves_a_quantized_packed_checkpoint(dense, tmp_path):
    from helpers import prune

    from sasim.workload.layer_packing import stored_packings
    from sasim.workload.lstm_weights import load_lstm_workload

    out = prune(dense, tmp_path, "--alpha", 4, "--gamma", 1.0, "--target-sparsity", 0.6, "--epochs", 2,
                "--qat-bits", "8,8", "--qat-epochs", 1)
    model, raw = load_language_model(out)
    assert raw["quantization"]["config"]["weight_bits"] == 8
    # the packed form follows the fine-tuned weights exactly, and pruned weights stayed zero
    packings = stored_packings(load_lstm_workload(out))
    for rnn, p in zip(model.rnns, packings):
        dense_w = torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], 1)
        assert torch.equal(torch.from_numpy(p.gates.unpack()), dense_w.detach())
        assert (dense_w[torch.cat([rnn.mask_ih, rnn.mask_hh], 1) == 0] == 0).all()


def test_quantize_refuses_a_quantized_input_and_bad_bits(dense, tmp_path):
    data, ckpt = dense
    out = tmp_path / "q.pt"
    run = [sys.executable, "-m", "sasim.cli", "quantize", "--data", str(data), "--calib-tokens", "400"]
    assert subprocess.run(run + ["--weights", str(ckpt), "--out", str(out)], capture_output=True, env=ENV).returncode == 0
    res = subprocess.run(run + ["--weights", str(out)], capture_output=True, text=True, env=ENV)
    assert res.returncode == 2 and "already quantized" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(run + ["--weights", str(ckpt), "--bits", "8"], capture_output=True, text=True, env=ENV)
    assert res.returncode == 2 and "--bits takes weight and activation widths" in res.stderr


def test_cost_of_a_width_by_hand(tmp_path):
    from conftest import sparse_lstm_checkpoint

    from sasim.api.combine import Combine, combine
    from sasim.api.simulate import Packing
    from sasim.quant.cost import fixed_point_config, quantized_cost

    hw = make_hw(8, 8)
    ckpt = sparse_lstm_checkpoint(tmp_path / "s.pt", input_size=12, hidden=16, layers=1, density=0.2)
    packed = tmp_path / "p.pt"
    combine(Combine(weights=ckpt, out=packed, packing=Packing(alpha=4, gamma=1.0)))
    from sasim.workload.layer_packing import stored_packings
    from sasim.workload.lstm_weights import load_lstm_workload

    (layer,) = stored_packings(load_lstm_workload(packed))
    n, g = layer.gates.values.shape
    largest = int(max(len([c for c in cols if c >= 0]) for cols in layer.gates.group_cols))
    sel_bits = math.ceil(math.log2(largest)) if largest > 1 else 0
    for bits in (8, 4):
        cost = quantized_cost(packed, hw, bits, bits, 32, steps=10)
        assert cost["weight_value_bytes"] == n * g * bits / 8
        assert cost["select_bytes"] == n * g * sel_bits / 8
    c8, c4 = (quantized_cost(packed, hw, b, b, 32, batch=64, steps=10) for b in (8, 4))
    assert c4["cycles_per_step"] < c8["cycles_per_step"]  # bit-serial: act_bits cycles per input word
    assert c4["energy_per_token_j"] < c8["energy_per_token_j"]
    with pytest.raises(SasimError, match="acc_bits"):
        fixed_point_config(hw, 16, 16, 16)


def test_energy_scales_with_the_widths():
    from sasim.quant.cost import fixed_point_config

    hw = make_hw(8, 8)
    assert hw.energy_scales() == (1.0, 1.0, 1.0)
    fx = fixed_point_config(hw, 8, 4, 24)
    assert fx.energy_scales() == (8 * 4 / 32**2, 4 / 32, (4 + 24) / 64)
