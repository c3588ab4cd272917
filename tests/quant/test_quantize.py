"""Quantization primitives, and the quantized product through the simulator equals fake-quant numpy."""

import numpy as np
import pytest
from conftest import make_hw

from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.quant.quantize import (
    calibrate_scale,
    qmax,
    quantize_activations,
    quantize_weights,
    rescale_outputs,
    round_half_even,
)
from sasim.sim.cycle import simulate_fixed_point
from sasim.sim.mapping import map_matrix


def test_round_half_even_and_ranges():
    assert round_half_even(np.array([0.5, 1.5, 2.5, -0.5, -1.5])).tolist() == [0, 2, 2, 0, -2]
    assert qmax(8) == 127 and qmax(4) == 7
    with pytest.raises(SasimError):
        qmax(1)


def test_per_row_weight_scales():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -0.75]], np.float32)
    qw = quantize_weights(w, 8)
    assert qw.q[0].tolist() == [64, -127, 32] and qw.q[1].tolist() == [0, 0, 0]
    assert np.abs(qw.q).max() <= 127
    np.testing.assert_allclose(qw.dequantize(), w, atol=np.abs(w).max() / 127)


def test_calibration_methods_and_nan():
    x = np.concatenate([np.linspace(-1, 1, 10_000), [50.0]])
    assert calibrate_scale(x, 8) == pytest.approx(50 / 127)
    assert calibrate_scale(x, 8, "percentile", 99.0) < 1.1 / 127
    with pytest.raises(SasimError, match="NaN or Inf"):
        calibrate_scale(np.array([1.0, np.nan]), 8)
    with pytest.raises(SasimError, match="all zero"):
        calibrate_scale(np.zeros(5), 8)
    scale = calibrate_scale(x, 8, "percentile", 99.0)
    q, sat = quantize_activations(x, scale, 8)
    assert sat == np.count_nonzero(np.rint(np.abs(x) / scale) > 127) and sat >= 1 and q.max() == 127


@pytest.mark.parametrize("bits", [16, 8, 6, 4])
def test_quantized_product_on_the_array_equals_fake_quant(bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((21, 17)).astype(np.float32)
    x = rng.standard_normal((4, 17)).astype(np.float32)
    qw = quantize_weights(w, bits)
    xs = calibrate_scale(x, bits)
    qx, _ = quantize_activations(x, xs, bits)
    packed = PackedMatrix(values=qw.q, select=np.zeros(qw.q.shape, np.int8), group_cols=np.arange(17)[:, None],
                          shape=(21, 17))
    acc, _, overflows = simulate_fixed_point(packed, qx, map_matrix(packed, make_hw(8, 8)), 4, acc_bits=48)
    assert overflows == 0
    y = rescale_outputs(acc, qw.scales, xs)
    fake = (qx * xs) @ (qw.q * qw.scales[:, None]).T  # fake-quant numpy in float64
    np.testing.assert_allclose(y, fake, rtol=1e-6, atol=1e-6)
    if bits == 16:
        np.testing.assert_allclose(y, x @ w.T, atol=2e-3)
