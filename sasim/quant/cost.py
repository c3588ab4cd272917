"""What a fixed-point width buys: weight memory, traffic, bit-serial cycles and energy per token.

The model's matrices (dense, or the packed form a packed checkpoint stores) run ``steps`` timesteps of
``batch`` streams in the analytic model (equal to the cycle-level simulator on every count, tests/sim/test_cycle_vs_analytic.py)
on a copy of the hardware config with the given widths; energies scale with the widths as
``energy.reference_bits`` documents.
"""

from __future__ import annotations

from sasim.hw.config import HardwareConfig, validate_hw_dict
from sasim.sim.lstm_array import simulate_checkpoint
from sasim.sim.metrics import _cells


def fixed_point_config(hw: HardwareConfig, weight_bits: int, act_bits: int, acc_bits: int,
                       mode: str = "bit_serial") -> HardwareConfig:
    """``hw`` with fixed-point arithmetic of these widths, ``bit_serial`` (act_bits cycles per input word) or
    ``bit_parallel``; validated like a config file (so impossible widths get the config's error)."""

    data = hw.to_dict()
    data["name"] = f"{hw.name}-w{weight_bits}a{act_bits}-{mode}"
    data["arithmetic"].update(mode=mode, number_format="fixed_point", weight_bits=weight_bits, act_bits=act_bits,
                              acc_bits=acc_bits)
    return validate_hw_dict(data, source=f"{hw.name} at {weight_bits}/{act_bits}/{acc_bits} bits ({mode})")


def checkpoint_cost(weights, hw: HardwareConfig, batch: int = 1, steps: int = 100) -> dict:
    """Cost per token of checkpoint ``weights`` on ``hw`` as configured, over ``steps`` timesteps of ``batch``
    streams (weights read from DRAM once per run when they fit in the weight SRAM, so per-token figures depend
    on ``steps``; 100 is one BPTT chunk).

    Returns
    -------
    dict
        ``weight_memory_bytes`` (= ``weight_value_bytes`` + ``select_bytes``: every cell of the packed
        matrices holds a ``weight_bits`` value and, in groups of more than one column, its select index),
        ``tiles``, ``cycles_per_step`` (every stream advances one token per step), ``latency_per_step_s``,
        ``sram_bytes_per_token``, ``dram_bytes_per_token``, ``energy_per_token_j`` (per token of one stream),
        ``weights_resident``, ``batch``, ``steps`` and ``hw`` (its name).
    """

    parts, total, resident = simulate_checkpoint(weights, hw, batch, steps)
    tokens = batch * steps
    values = sum(_cells(p) * hw.arithmetic.weight_bits / 8 for p in parts)
    memory = sum(_cells(p) * p.cell_bytes for p in parts)
    return {
        "hw": hw.name, "weight_memory_bytes": memory, "weight_value_bytes": values, "select_bytes": memory - values,
        "batch": batch, "steps": steps, "tiles": total["tiles"], "cycles_per_step": total["cycles_per_step"],
        "latency_per_step_s": total["latency_per_step_s"], "sram_bytes_per_token": total["sram_bytes"] / tokens,
        "dram_bytes_per_token": total["dram_bytes"] / tokens, "energy_per_token_j": total["energy_j"] / tokens,
        "weights_resident": resident,
    }


def quantized_cost(weights, hw: HardwareConfig, weight_bits: int, act_bits: int, acc_bits: int = 32,
                   mode: str = "bit_serial", batch: int = 1, steps: int = 100) -> dict:
    """:func:`checkpoint_cost` on ``hw`` made fixed point at these widths (:func:`fixed_point_config`),
    with the widths and ``mode`` added to the result."""
    fx = fixed_point_config(hw, weight_bits, act_bits, acc_bits, mode)
    return {"weight_bits": weight_bits, "act_bits": act_bits, "acc_bits": acc_bits, "mode": mode,
            **checkpoint_cost(weights, fx, batch, steps)}
