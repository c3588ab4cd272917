"""A quantized LSTM: the torch evaluation path equals the cycle-level simulator's integer arithmetic."""

import pytest
import torch
from conftest import make_hw

from sasim.errors import SasimError
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.quant.lstm import QuantConfig, calibrate_lstm, quantized_lstm_forward, simulate_quantized_lstm


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
