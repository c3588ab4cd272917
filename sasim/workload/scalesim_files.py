"""SCALE-Sim v3's own input files: its ``.cfg`` and its topology CSVs (convolution or GEMM), read strictly.

A convolution layer becomes the matrix product SCALE-Sim runs (im2col, no padding): ``M`` output pixels
``ceil((H - R + s) / s) * ceil((W - S + s) / s)``, ``K = R * S * C`` (the filter window over every channel) and
``N`` filters. A GEMM row ``M, N, K`` is the product as given. Layers whose name contains ``DP`` are depthwise:
SCALE-Sim runs one single-channel layer per channel, named ``<name>Channel_<i>``, and so does sasim.

Fields sasim does not model are listed in :attr:`ScaleSimConfig.warnings`, one line each.
"""

from __future__ import annotations

import configparser
import math
from dataclasses import dataclass, field
from pathlib import Path

from sasim.errors import SasimError
from sasim.hw.yaml_loader import read_text_file

#: SCALE-Sim's dataflow names and sasim's.
SCALESIM_DATAFLOWS = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}

_REQUIRED = {
    "architecture_presets": ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB",
                             "Dataflow"),
}
_KNOWN = {
    "general": {"run_name"},
    "architecture_presets": {"arrayheight", "arraywidth", "ifmapsramszkb", "filtersramszkb", "ofmapsramszkb",
                             "ifmapoffset", "filteroffset", "ofmapoffset", "dataflow", "bandwidth", "memorybanks",
                             "readrequestbuffer", "writerequestbuffer"},
    "layout": {"ifmapcustomlayout", "ifmapsrambankbandwidth", "ifmapsrambanknum", "ifmapsrambankport",
               "filtercustomlayout", "filtersrambankbandwidth", "filtersrambanknum", "filtersrambankport"},
    "sparsity": {"sparsitysupport", "sparserep", "optimizedmapping", "blocksize", "randomnumbergeneratorseed",
                 "nonzeroelems"},
    "run_presets": {"interfacebandwidth", "useramulatortrace"},
    "network_presets": {"topologycsvloc", "layoutcsvloc"},
}


@dataclass(frozen=True)
class ScaleSimConfig:
    """What sasim takes from a SCALE-Sim ``.cfg``: the array, its dataflow and the SRAM sizes."""

    path: str
    run_name: str
    array_height: int
    array_width: int
    dataflow: str  # sasim's name
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    bandwidth_mode: str
    warnings: tuple = field(default=())


@dataclass(frozen=True)
class TopologyLayer:
    """One layer of a topology as the matrix product SCALE-Sim runs: ``M`` vectors, ``N`` outputs, ``K`` inputs."""

    name: str
    m: int
    n: int
    k: int
    conv: dict | None = None  # the convolution's own dimensions, when it was one


def _flag(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on")


def read_scalesim_config(path) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg``; a malformed one is one :class:`SasimError`, unmodelled fields are warnings."""
    text = read_text_file(Path(path), "SCALE-Sim config")
    parser = configparser.ConfigParser(delimiters=(":", "="), interpolation=None, strict=True)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise SasimError(f"{path} is not a SCALE-Sim config (INI sections of 'Key: value' lines): {first}") from None
    problems, warnings = [], []
    for section, keys in _REQUIRED.items():
        for key in keys:
            if not parser.has_option(section, key):
                problems.append(f"[{section}] {key} is missing")
    for section in parser.sections():
        known = _KNOWN.get(section)
        if known is None:
            warnings.append(f"[{section}]: unknown section, ignored")
            continue
        for key in parser.options(section):
            if key not in known:
                warnings.append(f"[{section}] {key}: unknown field, ignored")

    def integer(section, key, low=1):
        if not parser.has_option(section, key):
            return None
        raw = parser.get(section, key).strip()
        try:
            value = int(raw)
        except ValueError:
            problems.append(f"[{section}] {key} must be an integer, got {raw!r}")
            return None
        if value < low:
            problems.append(f"[{section}] {key} must be >= {low}, got {value}")
        return value

    arch = "architecture_presets"
    height, width = integer(arch, "ArrayHeight"), integer(arch, "ArrayWidth")
    sizes = [integer(arch, key) for key in ("IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB")]
    flow = parser.get(arch, "Dataflow", fallback="").strip().lower()
    if parser.has_option(arch, "Dataflow") and flow not in SCALESIM_DATAFLOWS:
        problems.append(f"[{arch}] Dataflow must be ws, os or is, got {flow!r}")
    mode = parser.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip().upper()
    if mode not in ("CALC", "USER"):
        problems.append(f"[run_presets] InterfaceBandwidth must be CALC or USER, got {mode!r}")
    if problems:
        raise SasimError(f"{path}: " + "; ".join(problems))
    if mode == "USER":
        warnings.append("[run_presets] InterfaceBandwidth USER (and [architecture_presets] Bandwidth, request "
                        "buffers): SCALE-Sim's DRAM stall model is not reproduced; sasim's own cycles use --hw's "
                        "memory bandwidths, and scalesim_total_cycles is SCALE-Sim's CALC (stall-free) count")
    if _flag(parser.get("run_presets", "UseRamulatorTrace", fallback="false")):
        warnings.append("[run_presets] UseRamulatorTrace: Ramulator DRAM traces are not modelled")
    for side in ("Ifmap", "Filter"):
        if _flag(parser.get("layout", f"{side}CustomLayout", fallback="false")):
            warnings.append(f"[layout] {side}CustomLayout: custom SRAM layouts and banks are not modelled")
    if (integer(arch, "MemoryBanks") or 1) > 1:
        warnings.append("[architecture_presets] MemoryBanks: banked memories are not modelled")
    if _flag(parser.get("sparsity", "SparsitySupport", fallback="false")):
        warnings.append("[sparsity] SparsitySupport: SCALE-Sim's sparse representations (SparseRep, "
                        "OptimizedMapping, BlockSize) are not modelled; sasim's sparsity is column combining "
                        "(--alpha/--gamma)")
    return ScaleSimConfig(path=str(path), run_name=parser.get("general", "run_name", fallback=Path(path).stem).strip(),
                          array_height=height, array_width=width, dataflow=SCALESIM_DATAFLOWS[flow],
                          ifmap_sram_kb=sizes[0], filter_sram_kb=sizes[1], ofmap_sram_kb=sizes[2],
                          bandwidth_mode=mode, warnings=tuple(warnings))


def conv_as_gemm(ifmap_h: int, ifmap_w: int, filter_h: int, filter_w: int, channels: int, filters: int,
                 stride: int) -> tuple[int, int, int]:
    """``(M, N, K)`` of a convolution lowered as SCALE-Sim lowers it (im2col, no padding)."""
    out_h = math.ceil((ifmap_h - filter_h + stride) / stride)
    out_w = math.ceil((ifmap_w - filter_w + stride) / stride)
    return out_h * out_w, filters, filter_h * filter_w * channels


def read_topology(path, gemm: bool = False) -> tuple[list[TopologyLayer], list[str]]:
    """Read a SCALE-Sim topology CSV: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
    Channels, Num Filter, Strides[, N:M]`` rows, or with ``gemm`` ``Layer, M, N, K[, N:M]`` rows. The first line
    is a header; trailing commas are allowed (SCALE-Sim's own files end every row with one).

    Returns the layers and warnings (a sparsity ratio column other than 1:1 is not modelled).
    """
    text = read_text_file(Path(path), "SCALE-Sim topology")
    lines = text.splitlines()
    width = 4 if gemm else 8
    kind = "GEMM (Layer, M, N, K)" if gemm else ("convolution (Layer name, IFMAP Height, IFMAP Width, Filter "
                                                  "Height, Filter Width, Channels, Num Filter, Strides)")
    layers, warnings = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        while cells and cells[-1] == "":
            cells.pop()
        where = f"{path} line {number}"
        if len(cells) not in (width, width + 1):
            raise SasimError(f"{where}: a {kind} row needs {width} fields (and an optional N:M ratio), got "
                             f"{len(cells)}: {line.strip()!r}" + ("; is this a GEMM file? add --gemm" if len(cells) in
                                                                  (4, 5) and not gemm else ""))
        name = cells[0]
        if not name:
            raise SasimError(f"{where}: the layer name is empty")
        try:
            dims = [int(c) for c in cells[1:width]]
        except ValueError:
            raise SasimError(f"{where}: the dimensions must be integers, got {cells[1:width]}") from None
        if min(dims) < 1:
            raise SasimError(f"{where}: every dimension must be >= 1, got {dims}")
        if len(cells) == width + 1 and cells[width].replace(" ", "") not in ("1:1", ""):
            warnings.append(f"{where}: sparsity ratio {cells[width]} is not modelled (the layer runs dense; "
                            "use --alpha/--gamma for column combining)")
        if gemm:
            m, n, k = dims
            layers.append(TopologyLayer(name=name, m=m, n=n, k=k))
            continue
        ifmap_h, ifmap_w, filter_h, filter_w, channels, filters, stride = dims
        if filter_h > ifmap_h or filter_w > ifmap_w:
            raise SasimError(f"{where}: the {filter_h} x {filter_w} filter is larger than the {ifmap_h} x {ifmap_w} "
                             "input (no padding: pad the input dimensions)")
        conv = dict(ifmap_h=ifmap_h, ifmap_w=ifmap_w, filter_h=filter_h, filter_w=filter_w, channels=channels,
                    filters=filters, stride=stride)
        if "DP" in name:  # depthwise: one single-channel layer per channel, as SCALE-Sim runs it
            for c in range(channels):
                m, n, k = conv_as_gemm(ifmap_h, ifmap_w, filter_h, filter_w, 1, filters, stride)
                layers.append(TopologyLayer(name=f"{name}Channel_{c}", m=m, n=n, k=k, conv={**conv, "channels": 1}))
        else:
            m, n, k = conv_as_gemm(ifmap_h, ifmap_w, filter_h, filter_w, channels, filters, stride)
            layers.append(TopologyLayer(name=name, m=m, n=n, k=k, conv=conv))
    if not layers:
        raise SasimError(f"{path} has no layers (a header line, then one row per layer)")
    return layers, warnings
