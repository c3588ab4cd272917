"""Job: run SCALE-Sim's own input files (a ``.cfg`` and a topology CSV) through sasim.

Per layer it gives the ``Total Cycles`` SCALE-Sim v3.0.0 reports (dense, no overlap, CALC bandwidth: sasim's
``scalesim`` timing, ``cycles - 1``) next to sasim's own metrics for the same product on the same array and
dataflow: double-buffered timing with the base config's bandwidths, energy, and, with a packing, what column
combining does to the layer's seeded random weights. A Python user::

    from sasim.api.scalesim import ScaleSimRun, run_scalesim

    result = run_scalesim(ScaleSimRun(config="scale.cfg", topology="resnet18.csv"))
    print([r["scalesim_total_cycles"] for r in result.records])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sasim.api.simulate import Packing, simulate_gemm
from sasim.checks import check_float, check_seed
from sasim.hw.config import HardwareConfig, load_hw_config, resolve_dataflow, validate_hw_dict
from sasim.sim.engine import check_mode
from sasim.workload.scalesim_files import ScaleSimConfig, read_scalesim_config, read_topology

#: Bandwidth (bytes per cycle) that makes every load take its minimum and every issue interval 1: SCALE-Sim's
#: CALC mode, which sizes the interface so that nothing stalls.
STALL_FREE_BW = 1e9


@dataclass(frozen=True)
class ScaleSimRun:
    """What ``sasim scalesim`` runs: SCALE-Sim's config and topology, on ``hw``'s clock, arithmetic, bandwidths
    and energies (the array shape, dataflow and SRAM sizes come from the config)."""

    config: str
    topology: str
    gemm: bool = False
    hw: str = "32x32"
    packing: Packing | None = None
    density: float = 1.0
    mode: str = "analytic"
    seed: int = 0
    dataflow: str | None = None  # None: the config's

    def __post_init__(self):
        check_float("density", self.density, 0.0, 1.0, low_open=True)
        check_mode(self.mode, "sasim")
        check_seed(self.seed)
        if self.dataflow is not None:
            resolve_dataflow(self.dataflow)


@dataclass
class ScaleSimResult:
    """One record per layer (``layer``, ``M``, ``N``, ``K``, ``scalesim_total_cycles`` and sasim's metrics), the
    array sasim built from the config, the warnings about fields it does not model, and the settings."""

    records: list
    hw: HardwareConfig
    config: ScaleSimConfig
    warnings: list
    settings: dict = field(default_factory=dict)


def hardware_from_scalesim(cfg: ScaleSimConfig, base: HardwareConfig, dataflow: str | None = None) -> HardwareConfig:
    """``base`` with SCALE-Sim's array and SRAM sizes: sasim's ``rows x cols`` is SCALE-Sim's ``ArrayWidth x
    ArrayHeight`` (docs/dataflows.md), the ifmap SRAM is sasim's input SRAM, the filter SRAM its weight SRAM."""
    data = base.to_dict()
    data["name"] = cfg.run_name or "scalesim"
    data["array"].update(rows=cfg.array_width, cols=cfg.array_height, dataflow=cfg.dataflow)
    if dataflow is not None:
        data["array"]["dataflow"] = resolve_dataflow(dataflow)
    data["memory"].update(input_sram_bytes=cfg.ifmap_sram_kb * 1024, weight_sram_bytes=cfg.filter_sram_kb * 1024,
                          output_sram_bytes=cfg.ofmap_sram_kb * 1024)
    return validate_hw_dict(data, f"{cfg.path} on {base.name}")


def _stall_free(hw: HardwareConfig) -> HardwareConfig:
    data = hw.to_dict()
    data["memory"].update(sram_weight_bw=STALL_FREE_BW, sram_input_bw=STALL_FREE_BW, dram_bw=STALL_FREE_BW)
    return validate_hw_dict(data, hw.name)


def run_scalesim(spec: ScaleSimRun, progress_factory=None) -> ScaleSimResult:
    """Read the files, then for every layer: SCALE-Sim's Total Cycles, and sasim's run of the same product.
    ``progress_factory(layers)`` may return a progress bar over the layers."""
    cfg = read_scalesim_config(spec.config)
    layers, topo_warnings = read_topology(spec.topology, spec.gemm)
    hw = hardware_from_scalesim(cfg, load_hw_config(spec.hw), spec.dataflow)
    calc = _stall_free(hw)
    grouping = spec.packing.grouping() if spec.packing else None
    progress = progress_factory(len(layers)) if progress_factory else None
    records = []
    for layer in layers:
        dense = simulate_gemm(calc, layer.m, layer.n, layer.k, timing="scalesim", mode="analytic")
        ours = simulate_gemm(hw, layer.m, layer.n, layer.k, spec.density, "sasim", spec.mode, spec.seed, grouping,
                             name=layer.name)
        t, part = ours.total, ours.parts[0]
        record = {"layer": layer.name, "M": layer.m, "N": layer.n, "K": layer.k,
                  "scalesim_total_cycles": dense.total["scalesim_total_cycles"],
                  "dense_tiles": dense.total["tiles"], "groups": part["groups"], "tiles": t["tiles"],
                  "cycles": t["cycles"], "stall_cycles": t["stall_cycles"], "utilization": t["utilization"],
                  "dense_equivalent_utilization": t["dense_equivalent_utilization"],
                  "pruned_fraction": t["pruned_fraction"], "sram_bytes": t["sram_bytes"],
                  "dram_bytes": t["dram_bytes"], "energy_j": t["energy_j"], "latency_s": t["latency_s"],
                  "select_bytes": t["select_bytes"]}
        if "max_abs_error_vs_numpy" in t:
            record["max_abs_error_vs_numpy"] = t["max_abs_error_vs_numpy"]
        records.append(record)
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    settings = dict(config=str(spec.config), topology=str(spec.topology), gemm=spec.gemm, base_hw=spec.hw,
                    dataflow=hw.array.dataflow, mode=spec.mode, seed=spec.seed, density=spec.density,
                    packing=grouping or {"dense": True},
                    scalesim_array=dict(ArrayHeight=cfg.array_height, ArrayWidth=cfg.array_width))
    return ScaleSimResult(records=records, hw=hw, config=cfg, warnings=list(cfg.warnings) + topo_warnings,
                          settings=settings)
