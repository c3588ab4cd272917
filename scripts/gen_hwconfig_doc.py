"""Regenerate docs/hwconfig.md from the schema: ``python scripts/gen_hwconfig_doc.py``."""

from pathlib import Path

from sasim.hw.config import field_reference

HEAD = """# Hardware configuration reference (schema version 1)

A hardware config is a YAML file; `sasim validate FILE` checks it. Unknown keys, duplicate keys, wrong types
and impossible values are errors, all reported at once with their field paths. Shipped configs:
`hwconfigs/8x8.yaml`, `hwconfigs/32x32.yaml`, `hwconfigs/128x128.yaml` (also installed with the package;
`--hw 32x32` names one). This page is generated from `sasim/hw/config.py` by `scripts/gen_hwconfig_doc.py`.

| field | type | meaning |
| --- | --- | --- |
"""

TAIL = """
Cross-field rules: `float32` needs all three widths 32; `bit_serial` needs `fixed_point`; a fixed-point
accumulator must hold one product (`acc_bits >= weight_bits + act_bits - 1`).

Ranges that keep every count exact: numbers must be finite (`.inf` and `.nan` are refused: an infinite clock
would report latency 0, an infinite energy an `Infinity` that JSON cannot hold); bandwidths are at least
0.001 bytes per cycle (one byte per thousand cycles) and the clock at most 1 THz. Every event count of a run
(cycles, MACs, bytes) is formed as an exact integer and checked to lie below 2**62; a run that would exceed it
(an enormous batch on a slow memory) is refused with a message, never reported wrapped or negative. A
cycle-level run that would step more than 2,000,000,000 beats, or need more memory than the machine has
available, is refused before it starts, pointing to `--mode analytic`, which gives the same counts.

The shipped energies are 45 nm float32 figures after Horowitz (ISSCC 2014, "Computing's energy problem"):
placeholders of the right order, to be replaced by figures for the technology under study. The shipped
bandwidths let a 32-bit weight tile load in C cycles from SRAM and feed every lane of every column each
cycle; DRAM (64 B/cycle) is slower, so workloads whose weights exceed the weight SRAM stall on loads.

## Sources of the area and static-power defaults

`area` and `static_power` are optional sections: a config without them gets these defaults, and every
constant can be overridden. They are 40 nm figures; sasim does not scale between nodes (`technology_nm` only
records the node). How they roll up into a PE, the array and the SRAM: docs/model.md, "Area and static power".

| constant | default | source |
| --- | ---: | --- |
| `area.fp32_multiplier_um2` | 8970 | Aladdin's 40 nm functional-unit table (Shao et al., ISCA 2014), single-precision multiplier, as shipped in Accelergy's Aladdin plug-in |
| `area.fp32_adder_um2` | 4360 | the same table, single-precision adder |
| `area.int32_multiplier_um2` | 6350 | the same table, 32-bit integer multiplier |
| `area.int32_adder_um2` | 278 | the same table, 32-bit integer adder |
| `area.register_um2_per_bit` | 5.98 | the same table, register (one bit) |
| `area.mux_um2_per_input_bit` | 1.575 | the same table, 32-bit bitwise unit (50.4 um2) / 32: one 2:1 selection per bit |
| `area.sram_um2_per_bit` | 0.96 | CACTI rule of thumb of about 600 lambda^2 per SRAM bit with its periphery (D. J. Greaves, Cambridge, "45nm SRAM memory area and power consumption"), at lambda = 40 nm |
| `static_power.logic_uw_per_um2` | 0.0123 | Aladdin's 40 nm table: leakage over area of the integer multiplier (77.9 uW / 6350 um2 = 0.0123), register (0.074 / 5.98 = 0.0124) and bitwise unit (0.611 / 50.4 = 0.0121) |
| `static_power.sram_uw_per_kib` | 1.806 | SCALE-Sim's power estimator: a 512 x 128-bit (8 KiB) single-port SRAM leaks 14.445 uA at the typical corner (1 V, 25 C), so 14.4 uW / 8 KiB; at its fast-hot corner (0.99 V, 125 C) 682.7 uA, about 84.5 uW/KiB, for a config that wants the worst case |
"""


def render() -> str:
    rows = "".join(f"| `{path}` | {typ.replace('|', '/')} | {desc} |\n" for path, typ, desc in field_reference())
    return HEAD + rows + TAIL


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "hwconfig.md"
    out.write_text(render())
    print(f"wrote {out}")
