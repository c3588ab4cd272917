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
"""


def render() -> str:
    rows = "".join(f"| `{path}` | {typ.replace('|', '/')} | {desc} |\n" for path, typ, desc in field_reference())
    return HEAD + rows + TAIL


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "hwconfig.md"
    out.write_text(render())
    print(f"wrote {out}")
