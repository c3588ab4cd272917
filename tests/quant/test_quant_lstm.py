"""A quantized LSTM: the torch evaluation path equals the cycle-level simulator's integer arithmetic."""

import pytest
import torch
from conftest import make_hw

from sasim.errors import SasimError
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.quant.fixed_point_lstm import QuantConfig, calibrate_lstm, quantized_lstm_forward, simulate_quantized_lstm


def model(proj=0):
    torch.manual_seed(0)
    m = LSTMLanguageModel(ModelConfig(vocab_size=13, emb_size=6, hidden_size=10, num_layers=2, proj_size=proj))
    return m.eval()


@pytest.mark.parametrize("proj", [0, 4])
@pytest.mark.parametrize("bits", [8, 6, 4])
def test_torch_quantized_path_equals_simulator_bit_for_bit(proj, bits):
    m = model(proj)
    cfg = QuantConfig(weight_bits=bits, act_bits=bits, acc_bits=32)
    q = calibrate_lstm(m, torch.randint(0, 13, (20, 4)), cfg)
    x = m.encoder(torch.randint(0, 13, (6, 3)))
    fast = quantized_lstm_forward(m, q, x, cfg)
    sim, overflows = simulate_quantized_lstm(m, q, x, cfg, make_hw(4, 4))
    assert overflows == 0
    assert torch.equal(fast, sim)
    with torch.no_grad():
        ref = x
        for rnn in m.rnns:
            ref, _ = rnn(ref, None)
    err = (fast - ref).abs().max().item()
    assert err < {8: 0.05, 6: 0.2, 4: 0.8}[bits]  # quantization error grows as the words narrow


def test_overflow_risk_is_reported():
    m = model()
    with pytest.raises(SasimError, match="widen acc_bits"):
        calibrate_lstm(m, torch.randint(0, 13, (5, 2)), QuantConfig(weight_bits=8, act_bits=8, acc_bits=12))


def test_nan_in_calibration_is_reported():
    m = model()
    with torch.no_grad():
        m.encoder.weight[3] = float("nan")
    with pytest.raises(SasimError, match="NaN"):
        calibrate_lstm(m, torch.full((4, 2), 3), QuantConfig())


def test_quantized_evaluation_carries_state_and_approaches_float(tmp_path):
    import subprocess
    import sys

    from helpers import write_corpus

    from sasim.lm.corpus import load_corpus
    from sasim.lm.evaluate import evaluate_loss
    from sasim.lm.loading import load_language_model
    from sasim.lm.presets import TrainConfig
    from sasim.lm.train import batchify, train
    from sasim.quant.fixed_point_lstm import evaluate_quantized

    data = write_corpus(tmp_path / "d")
    cfg = TrainConfig(emb_size=6, hidden_size=12, num_layers=2, bptt=10, batch_size=4, dropout_e=0, dropout_h=0.1,
                      dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=1, seed=2)
    train(load_corpus(data), cfg, tmp_path / "m.pt", show_progress=False)
    m, _ = load_language_model(tmp_path / "m.pt")
    ids = batchify(load_corpus(data).splits["valid"], 4)
    q16 = QuantConfig(weight_bits=16, act_bits=16, acc_bits=48)
    layers = calibrate_lstm(m, batchify(load_corpus(data).splits["train"][:400], 4), q16)
    # a BPTT chunk shorter than the split: the state must carry across chunks to match the float model
    assert abs(evaluate_quantized(m, layers, q16, ids, bptt=7) - evaluate_loss(m, ids, 7)) < 1e-3
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "quantize", "--weights", str(tmp_path / "m.pt"),
                          "--data", str(data), "--bits", "4,4", "--calib-tokens", "400"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "4-bit weights / 4-bit activations" in res.stdout


def test_calibration_batch_takes_any_token_count():
    import numpy as np

    from sasim.quant.fixed_point_lstm import calibration_batch

    ids = np.arange(19)
    batch = calibration_batch(ids, 19)
    assert tuple(batch.shape) == (8, 2) and batch[:, 1].tolist() == list(range(8, 16))
    with pytest.raises(SasimError, match="at least 8 tokens"):
        calibration_batch(ids, 5)


def test_products_run_in_float32_only_where_that_is_exact():
    import numpy as np

    from sasim.quant.fixed_point_lstm import _exact_product_weights
    from sasim.quant.quantize import quantize_weights

    w = np.random.default_rng(0).normal(size=(8, 300))
    assert _exact_product_weights(quantize_weights(w, 8), 8).dtype == torch.float32  # < 2**24 in the worst case
    assert _exact_product_weights(quantize_weights(w, 16), 16).dtype == torch.float64
