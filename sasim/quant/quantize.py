"""Symmetric fixed-point quantization: per-output-row weight scales, calibrated activation scales,
round-half-to-even, saturation.

A ``b``-bit word holds integers in ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (symmetric: the most negative code
is unused, so negation never overflows). ``real = integer * scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sasim.errors import SasimError


def qmax(bits: int) -> int:
    if not 2 <= bits <= 32:
        raise SasimError(f"fixed-point widths must be 2..32 bits, got {bits}")
    return (1 << (bits - 1)) - 1


def round_half_even(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties to even (numpy's ``rint``), as int64."""
    return np.rint(x).astype(np.int64)


@dataclass
class QuantizedMatrix:
    """Integer weights and one scale per output row: ``W ~= q * scales[:, None]``."""

    q: np.ndarray
    scales: np.ndarray
    bits: int

    def dequantize(self) -> np.ndarray:
        return (self.q * self.scales[:, None]).astype(np.float32)


def quantize_weights(w: np.ndarray, bits: int) -> QuantizedMatrix:
    """Per-output-row symmetric quantization: each row's largest magnitude maps to the largest code."""
    w = np.asarray(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise SasimError("weights hold NaN or Inf values; they cannot be quantized")
    top = qmax(bits)
    peak = np.abs(w).max(axis=1)
    scales = np.where(peak > 0, peak / top, 1.0)
    q = np.clip(round_half_even(w / scales[:, None]), -top, top)
    return QuantizedMatrix(q=q, scales=scales.astype(np.float64), bits=bits)


def calibrate_scale(samples: np.ndarray, bits: int, method: str = "minmax", percentile: float = 99.99) -> float:
    """An activation scale from calibration samples: the largest magnitude (``minmax``) or a
    ``percentile`` of the magnitudes maps to the largest code.

    Raises
    ------
    SasimError
        On NaN or Inf in the calibration data, an unknown method, or all-zero data.
    """
    x = np.asarray(samples, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise SasimError(f"calibration data holds {bad} NaN or Inf values (of {x.size}); check the model and the "
                         "calibration tokens before quantizing")
    mags = np.abs(x).ravel()
    if method == "minmax":
        peak = mags.max(initial=0.0)
    elif method == "percentile":
        if not 0 < percentile <= 100:
            raise SasimError(f"percentile must be in (0, 100], got {percentile}")
        peak = np.percentile(mags, percentile) if mags.size else 0.0
    else:
        raise SasimError(f"calibration method must be minmax or percentile, got {method!r}")
    if peak <= 0:
        raise SasimError("calibration data is all zero: no scale can be derived")
    return float(peak / qmax(bits))


def quantize_activations(x: np.ndarray, scale: float, bits: int) -> tuple[np.ndarray, int]:
    """``x / scale`` rounded half-to-even and saturated to ``bits``; returns (integers, saturated count)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise SasimError("activations hold NaN or Inf values")
    top = qmax(bits)
    q = round_half_even(x / scale)
    saturated = int(np.count_nonzero((q > top) | (q < -top)))
    return np.clip(q, -top, top), saturated


def rescale_outputs(acc: np.ndarray, weight_scales: np.ndarray, act_scale: float) -> np.ndarray:
    """Real outputs ``(M, N)`` from the array's integer accumulators: ``acc * w_scale[n] * x_scale``."""
    return (np.asarray(acc, dtype=np.float64) * weight_scales[None, :] * act_scale).astype(np.float32)
