"""Area and static (leakage) power of an array built for a packing, from the config's ``area`` and
``static_power`` sections (docs/model.md, "Area and static power").

A PE holds a MAC, its registers and, when its groups hold more than one column, a multiplexer:

=================== ===================== ==================== ====================
register bits        weight stationary     output stationary    input stationary
=================== ===================== ==================== ====================
weight + select      2 (shadow)            1 (moving)           1 (moving)
input lanes          lanes (moving)        lanes (moving)       2 x lanes (shadow)
partial sum          1                     2 (shadow)           1
=================== ===================== ==================== ====================

(in words of ``weight_bits + select_bits``, ``act_bits`` and ``acc_bits``: the double-buffered design sasim's
default timing models). An input lane is a systolic register chain, so the lanes a column carries cost register
bits in every PE they pass; wires over the PE run on upper metal and cost no silicon area here.
"""

from __future__ import annotations

from sasim.hw.config import HardwareConfig


def mac_area_um2(hw: HardwareConfig) -> float:
    """One MAC: a float32 multiplier and adder, or integer ones scaled to the fixed-point widths."""
    a, ar = hw.arithmetic, hw.area
    if a.number_format == "float32":
        return ar.fp32_multiplier_um2 + ar.fp32_adder_um2
    return ar.int32_multiplier_um2 * a.weight_bits * a.act_bits / 32**2 + ar.int32_adder_um2 * a.acc_bits / 32


def pe_register_bits(hw: HardwareConfig, lanes: int) -> int:
    """Register bits of one PE whose multiplexer chooses among ``lanes`` input lanes (table above)."""
    a, flow = hw.arithmetic, hw.array.dataflow
    cell = a.weight_bits + hw.select_bits(lanes)
    if flow == "weight_stationary":
        return 2 * cell + lanes * a.act_bits + a.acc_bits
    if flow == "output_stationary":
        return cell + lanes * a.act_bits + 2 * a.acc_bits
    return cell + 2 * lanes * a.act_bits + a.acc_bits


def pe_area_um2(hw: HardwareConfig, lanes: int) -> dict:
    """One PE's area by part (``mac``, ``registers``, ``mux``) and in all (``pe``), in square micrometres."""
    lanes = max(int(lanes), 1)
    parts = {"mac": mac_area_um2(hw), "registers": pe_register_bits(hw, lanes) * hw.area.register_um2_per_bit,
             "mux": (lanes - 1) * hw.arithmetic.act_bits * hw.area.mux_um2_per_input_bit}
    return {**parts, "pe": sum(parts.values())}


def sram_kib(hw: HardwareConfig) -> float:
    m = hw.memory
    return (m.weight_sram_bytes + m.input_sram_bytes + m.output_sram_bytes) / 1024


def array_cost(hw: HardwareConfig, lanes: int) -> dict:
    """Area and leakage of ``hw``'s array with multiplexers of ``lanes`` inputs (1: none) and its SRAM.

    Returns ``pe_area_um2``, ``array_area_mm2`` (R x C PEs), ``sram_area_mm2`` (weight, input and output SRAM),
    ``area_mm2`` (their sum) and ``static_power_w`` (PE logic by area, SRAM by KiB).
    """
    pe = pe_area_um2(hw, lanes)["pe"]
    pes = hw.array.rows * hw.array.cols
    array_um2 = pe * pes
    sram_um2 = sram_kib(hw) * 8192 * hw.area.sram_um2_per_bit
    static_uw = array_um2 * hw.static_power.logic_uw_per_um2 + sram_kib(hw) * hw.static_power.sram_uw_per_kib
    return {"pe_area_um2": pe, "array_area_mm2": array_um2 * 1e-6, "sram_area_mm2": sram_um2 * 1e-6,
            "area_mm2": (array_um2 + sram_um2) * 1e-6, "static_power_w": static_uw * 1e-6}
