"""The metrics of docs/contract.md section 4, computed from simulated counts.

Every metric has a one-line definition in :data:`DEFINITIONS`; reports print it next to the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sasim.hw.area import array_cost
from sasim.hw.config import HardwareConfig
from sasim.sim.counts import MatmulCounts

DEFINITIONS = {
    "cycles": "total cycles of the simulated work (array + vector unit), stalls included",
    "array_cycles": "cycles the systolic array spends on matrix products",
    "vector_cycles": "cycles of the element-wise vector unit (LSTM cell update)",
    "stall_cycles": "cycles lost to memory bandwidth (cycles minus the same schedule with unlimited bandwidth)",
    "utilization": "useful MACs / (R * C * cycles); useful = nonzero weight x real input",
    "dense_equivalent_utilization": "dense MACs of the original matrix / (R * C * cycles); may exceed 1",
    "packing_efficiency": "nonzero weights / (N * G) cells of the packed matrices",
    "tile_efficiency": "useful MACs / PE-beats of the tiles' streams (tiles * R * C * streamed items); in weight "
                       "stationary nonzero weights / (tiles * R * C)",
    "tiles": "array tiles per timestep (all layers)",
    "pruned_fraction": "weights removed by the conflict rule / nonzero weights before combining",
    "latency_s": "cycles / clock",
    "cycles_per_step": "cycles of one timestep of all layers",
    "sram_bytes": "bytes moved between SRAM and the array (weights + select bits, input lanes, results)",
    "dram_bytes": "bytes read from DRAM (weights: once if they fit in the weight SRAM, else every load)",
    "energy_j": "sum of the config's per-action energies over the counted actions (MAC, mux and register energies "
                "scaled by the fixed-point widths, see energy.reference_bits)",
    "scalesim_total_cycles": "cycles - 1: SCALE-Sim v3 reports the 0-based index of its last cycle",
    "select_bytes": "select-index bytes moved into the array with the weight cells (loaded in weight stationary, "
                    "streamed in output and input stationary)",
    "input_lanes_per_column": "input words each array column carries per beat (weight and output stationary: the "
                              "widest group; input stationary: 0, the inputs are loaded into the PEs)",
    "pe_input_registers": "input words each PE holds: the lanes passing through it (weight and output stationary) "
                          "or its stationary lanes and their shadow copies (input stationary, double-buffered)",
    "select_bits_per_pe": "bits of the select index each PE holds (ceil(log2 widest group); 0 when dense)",
    "area_mm2": "silicon area of the R x C PEs (MAC, registers, and multiplexers as wide as the widest group) plus "
                "the weight, input and output SRAM (docs/model.md, area and static power)",
    "static_energy_j": "leakage energy: the array's and SRAM's static power times the run's latency (cycles / clock)",
    "energy_per_token_j": "(energy_j + static_energy_j) / tokens (streams x timesteps; input vectors of a GEMM)",
    "bpc": "bits per character on the named split, with the weights the array holds",
    "ppl": "perplexity on the named split, with the weights the array holds",
}


@dataclass
class WorkPart:
    """One matrix of the workload with everything its metrics need, summed over timesteps."""

    name: str
    rows: int  # N
    cols: int  # K
    groups: int  # G
    nonzeros: int  # after combining
    nonzeros_before: int
    counts: MatmulCounts
    steps: int
    batch: int
    vector_cycles: int = 0
    cell_bytes: float = 4.0
    cells: int = 0  # N * G, or the sum over row blocks; 0 means rows * groups
    lanes: int = 1  # the widest group (input lanes a PE's multiplexer chooses among)
    extra: dict = field(default_factory=dict)


def _cells(part: WorkPart) -> int:
    return part.cells or part.rows * part.groups


def _energy_pj(hw: HardwareConfig, c: MatmulCounts, sram_bytes: float, dram_bytes: float) -> float:
    e = hw.energy
    mac, mux, reg = hw.energy_scales()
    return (c.useful_macs * e.mac_pj * mac + c.mux_macs * e.mux_select_pj * mux + c.pe_vector_slots * e.register_pj * reg
            + sram_bytes * e.sram_pj_per_byte + dram_bytes * e.dram_pj_per_byte)


def _ratios(pes: int, cycles: int, useful: int, dense: int, nonzeros: int, nonzeros_before: int, cells: int,
            slots: int) -> dict:
    """The ratio metrics of docs/contract.md section 4, from summed counts (one matrix or a whole workload)."""
    return {
        "utilization": useful / (pes * cycles) if cycles else 0.0,
        "dense_equivalent_utilization": dense / (pes * cycles) if cycles else 0.0,
        "packing_efficiency": nonzeros / cells if cells else 0.0,
        "tile_efficiency": useful / slots if slots else 0.0,
        "pruned_fraction": 1 - nonzeros / nonzeros_before if nonzeros_before else 0.0,
    }


def _dense_macs(part: WorkPart) -> int:
    return part.rows * part.cols * part.batch * max(part.steps, 1)


def part_metrics(part: WorkPart, hw: HardwareConfig, weights_resident: bool) -> dict:
    """Contract metrics of one matrix (summed over its timesteps)."""
    c = part.counts
    pes = hw.array.rows * hw.array.cols
    cycles = c.cycles + part.vector_cycles
    weight_bytes = c.weight_cells * part.cell_bytes
    sram = weight_bytes + c.input_words * hw.act_bytes + c.output_words * hw.acc_bytes
    dram = (_cells(part) * part.cell_bytes) if weights_resident else weight_bytes
    steps = max(part.steps, 1)
    return {
        "name": part.name,
        "shape": [part.rows, part.cols],
        "groups": part.groups,
        "tiles": c.tiles // steps,
        "cycles": cycles,
        "array_cycles": c.cycles,
        "vector_cycles": part.vector_cycles,
        "stall_cycles": c.stall_cycles,
        **_ratios(pes, cycles, c.useful_macs, _dense_macs(part), part.nonzeros, part.nonzeros_before, _cells(part),
                  c.pe_vector_slots),
        "nonzeros": part.nonzeros,
        "nonzeros_before": part.nonzeros_before,
        "useful_macs": c.useful_macs,
        "sram_bytes": sram,
        "dram_bytes": dram,
        "energy_j": _energy_pj(hw, c, sram, dram) * 1e-12,
        "latency_s": cycles / hw.clock_hz,
        **combining_cost(hw, part.lanes, c.weight_cells),
        **part.extra,
    }


def combining_cost(hw: HardwareConfig, lanes: int, weight_cells: int) -> dict:
    """What groups of up to ``lanes`` columns cost the array in its dataflow (docs/dataflows.md): input words per
    column and per PE (input stationary's double-buffered lanes count twice), select bits per PE, and the select
    bytes moved with ``weight_cells`` weight cells."""
    select = hw.select_bits(lanes)
    flow = hw.array.dataflow
    return {
        "input_lanes_per_column": 0 if flow == "input_stationary" else lanes,
        "pe_input_registers": lanes * (2 if flow == "input_stationary" else 1),
        "select_bits_per_pe": select,
        "select_bytes": weight_cells * select / 8,
    }


def total_metrics(parts: list[WorkPart], per_part: list[dict], hw: HardwareConfig, steps: int) -> dict:
    """Metrics of the whole workload: counts summed, ratios recomputed from the sums."""
    pes = hw.array.rows * hw.array.cols
    cycles = sum(m["cycles"] for m in per_part)
    useful = sum(p.counts.useful_macs for p in parts)
    nz = sum(p.nonzeros for p in parts)
    nz0 = sum(p.nonzeros_before for p in parts)
    cells = sum(_cells(p) for p in parts)
    tiles = sum(m["tiles"] for m in per_part)
    slots = sum(p.counts.pe_vector_slots for p in parts)
    return {
        "tiles": tiles,
        "cycles": cycles,
        "array_cycles": sum(m["array_cycles"] for m in per_part),
        "vector_cycles": sum(m["vector_cycles"] for m in per_part),
        "stall_cycles": sum(m["stall_cycles"] for m in per_part),
        **_ratios(pes, cycles, useful, sum(_dense_macs(p) for p in parts), nz, nz0, cells, slots),
        "nonzeros": nz,
        "nonzeros_before": nz0,
        "useful_macs": useful,
        "sram_bytes": sum(m["sram_bytes"] for m in per_part),
        "dram_bytes": sum(m["dram_bytes"] for m in per_part),
        "energy_j": sum(m["energy_j"] for m in per_part),
        "latency_s": cycles / hw.clock_hz,
        "cycles_per_step": cycles / max(steps, 1),
        "latency_per_step_s": cycles / max(steps, 1) / hw.clock_hz,
        **{k: max(m[k] for m in per_part) for k in ("input_lanes_per_column", "pe_input_registers",
                                                    "select_bits_per_pe") if per_part},
        "select_bytes": sum(m["select_bytes"] for m in per_part),
        **_area_and_static_energy(parts, hw, cycles, steps, sum(m["energy_j"] for m in per_part)),
    }


def _area_and_static_energy(parts: list[WorkPart], hw: HardwareConfig, cycles: int, steps: int,
                            dynamic_j: float) -> dict:
    """Area of the array built for the workload's widest group, its leakage over the run, and the energy per
    token (dynamic plus static)."""
    if not parts:
        return {}
    cost = array_cost(hw, max(p.lanes for p in parts))
    static = cost["static_power_w"] * cycles / hw.clock_hz
    tokens = parts[0].batch * max(steps, 1)
    return {"area_mm2": cost["area_mm2"], "array_area_mm2": cost["array_area_mm2"],
            "sram_area_mm2": cost["sram_area_mm2"], "pe_area_um2": cost["pe_area_um2"],
            "static_power_w": cost["static_power_w"], "static_energy_j": static,
            "energy_per_token_j": (dynamic_j + static) / tokens}


def accuracy_name(scores: dict) -> str:
    """The accuracy metric a score record holds: ``bpc`` (character corpora) or ``ppl`` (word corpora)."""
    return "bpc" if "bpc" in scores else "ppl"
