"""The hardware configuration schema (version 1) and its loading.

Three steps, as in ZigZag/Stream: parse the YAML (duplicate keys are errors), validate the raw dict
against a strict pydantic schema (unknown keys, wrong types and impossible values are all reported
at once, each with its field path), and hand only the typed :class:`HardwareConfig` to the rest of
sasim. Every field is documented in ``docs/hwconfig.md`` and in its ``description`` below.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sasim.errors import SasimError
from sasim.hw.yaml_loader import parse_yaml, read_text_file

SCHEMA_VERSION = 1
#: The smallest bandwidth accepted (bytes per cycle): one byte per thousand cycles. Below it the cycle
#: counts of ordinary workloads leave the range sasim counts in (int64); see docs/hwconfig.md.
MIN_BANDWIDTH = 1e-3


class _Strict(BaseModel):
    # allow_inf_nan=False: a .inf clock or energy would give latency 0 or Infinity in a JSON report
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


#: The dataflows sasim models (docs/dataflows.md): which operand stays in the PEs while the others move.
DATAFLOWS = ("weight_stationary", "output_stationary", "input_stationary")
#: SCALE-Sim's names for them, accepted wherever a dataflow is given.
DATAFLOW_ALIASES = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}


def resolve_dataflow(name: str) -> str:
    """The dataflow ``name`` names: one of :data:`DATAFLOWS`, or SCALE-Sim's ``ws``/``os``/``is``."""
    flow = DATAFLOW_ALIASES.get(name, name) if isinstance(name, str) else name
    if flow not in DATAFLOWS:
        raise SasimError(f"dataflow must be one of {', '.join(DATAFLOWS)} (or ws, os, is); got {name!r}",
                         param="dataflow")
    return flow


class ArrayConfig(_Strict):
    rows: int = Field(gt=0, le=65536, description=(
        "R: PE rows; a row computes one output row of the packed matrix (weight and output stationary) or "
        "serves one input vector (input stationary)"))
    cols: int = Field(gt=0, le=65536, description=(
        "C: PE columns; a column holds one group (weight and input stationary) or one input vector (output "
        "stationary)"))
    mux_fanin: int = Field(gt=0, le=256, description=(
        "input lanes per column (weight and output stationary) or input registers per PE (input stationary), "
        "and multiplexer inputs per PE; alpha must not exceed it"))
    dataflow: Literal["weight_stationary", "output_stationary", "input_stationary"] = Field(description=(
        "which operand stays in the PEs: the weights, the outputs, or the inputs (docs/dataflows.md)"))


class ArithmeticConfig(_Strict):
    mode: Literal["bit_parallel", "bit_serial"] = Field(
        description="bit_parallel: one MAC per PE per cycle; bit_serial: act_bits cycles per input word")
    number_format: Literal["float32", "fixed_point"] = Field(description="float32, or fixed point with the widths below")
    weight_bits: int = Field(ge=2, le=32, description="bits of a stored weight (32 for float32)")
    act_bits: int = Field(ge=2, le=32, description="bits of an input word (32 for float32)")
    acc_bits: int = Field(ge=2, le=64, description="bits of a partial sum / accumulator (32 for float32)")
    rounding: Literal["nearest_even", "truncate"] = Field(description="rounding of fixed-point values")
    saturation: bool = Field(description="clip to the representable range instead of wrapping")

    @model_validator(mode="after")
    def _consistent(self):
        if self.number_format == "float32" and (self.weight_bits, self.act_bits, self.acc_bits) != (32, 32, 32):
            raise ValueError("float32 arithmetic needs weight_bits, act_bits and acc_bits all 32; "
                             "use number_format: fixed_point for narrower words")
        if self.mode == "bit_serial" and self.number_format != "fixed_point":
            raise ValueError("bit_serial arithmetic needs number_format: fixed_point")
        if self.number_format == "fixed_point" and self.acc_bits < self.weight_bits + self.act_bits - 1:
            raise ValueError(f"acc_bits {self.acc_bits} is narrower than a single product "
                             f"({self.weight_bits} + {self.act_bits} - 1 bits)")
        return self


class MemoryConfig(_Strict):
    weight_sram_bytes: int = Field(gt=0, le=2**50, description="on-chip weight buffer; a workload whose packed weights fit is read from DRAM once")
    input_sram_bytes: int = Field(gt=0, le=2**50, description="on-chip input buffer")
    output_sram_bytes: int = Field(gt=0, le=2**50, description="on-chip output accumulator buffer")
    sram_weight_bw: float = Field(ge=MIN_BANDWIDTH, le=1e12, description="bytes per cycle from the weight SRAM into the array")
    sram_input_bw: float = Field(ge=MIN_BANDWIDTH, le=1e12, description="bytes per cycle from the input SRAM into the array")
    sram_output_bw: float = Field(ge=MIN_BANDWIDTH, le=1e12, description="bytes per cycle into the output accumulator (informational)")
    dram_bw: float = Field(ge=MIN_BANDWIDTH, le=1e12, description="bytes per cycle from DRAM; limits weight loads when weights are not resident")


class VectorUnitConfig(_Strict):
    lanes: int = Field(gt=0, le=2**20, description="elements processed in parallel by the element-wise unit")
    cycles_per_element: int = Field(gt=0, le=2**20, description="cycles per element of the LSTM cell update (gates, c, h)")


class EnergyConfig(_Strict):
    mac_pj: float = Field(ge=0, le=1e9, description="one useful multiply-accumulate")
    mux_select_pj: float = Field(ge=0, le=1e9, description="one multiplexer selection (PEs of groups with more than one column)")
    register_pj: float = Field(ge=0, le=1e9, description="one PE-cycle of register movement (input lanes and partial sum)")
    sram_pj_per_byte: float = Field(ge=0, le=1e9, description="one byte read from or written to SRAM")
    dram_pj_per_byte: float = Field(ge=0, le=1e9, description="one byte read from DRAM")
    reference_bits: int = Field(32, ge=2, le=64, description=(
        "word width at which mac_pj, mux_select_pj and register_pj are given (default 32). Fixed-point configs "
        "scale them: a MAC by weight_bits*act_bits/reference_bits^2 (the multiplier dominates), a multiplexer "
        "by act_bits/reference_bits, a PE-cycle of registers by (act_bits+acc_bits)/(2*reference_bits); "
        "SRAM and DRAM energies are per byte, so they follow the widths through the byte counts"))


class AreaConfig(_Strict):
    """Silicon area of the array's parts (docs/hwconfig.md names each default's source)."""

    technology_nm: float = Field(40.0, gt=0, le=1000, description=(
        "the node the area and static-power constants are given at (informational: sasim does not scale them)"))
    fp32_multiplier_um2: float = Field(8970.0, ge=0, le=1e9, description=(
        "one float32 multiplier (float32 configs)"))
    fp32_adder_um2: float = Field(4360.0, ge=0, le=1e9, description="one float32 adder (float32 configs)")
    int32_multiplier_um2: float = Field(6350.0, ge=0, le=1e9, description=(
        "one 32 x 32-bit integer multiplier; fixed-point configs scale it by weight_bits * act_bits / 32^2"))
    int32_adder_um2: float = Field(278.0, ge=0, le=1e9, description=(
        "one 32-bit integer adder; fixed-point configs scale it by acc_bits / 32"))
    register_um2_per_bit: float = Field(5.98, ge=0, le=1e9, description=(
        "one flip-flop: weight and select registers, input lanes (a systolic register chain per lane), partial sums"))
    mux_um2_per_input_bit: float = Field(1.575, ge=0, le=1e9, description=(
        "one 2:1 multiplexer bit; a PE choosing among L lanes of act_bits needs (L - 1) * act_bits of them"))
    sram_um2_per_bit: float = Field(0.96, ge=0, le=1e9, description="one SRAM bit, periphery included")


class StaticPowerConfig(_Strict):
    """Leakage: the power the array and its SRAM draw whether they compute or not."""

    logic_uw_per_um2: float = Field(0.0123, ge=0, le=1e6, description=(
        "leakage of the PEs' logic per square micrometre of their area"))
    sram_uw_per_kib: float = Field(1.806, ge=0, le=1e9, description="leakage of one KiB of SRAM")


class HardwareConfig(_Strict):
    """A validated hardware configuration (schema version 1)."""

    version: Literal[1] = Field(description="schema version; 1")
    name: str = Field(min_length=1, description="a short name used in reports")
    clock_hz: float = Field(gt=0, le=1e12, description="clock frequency in Hz (finite, at most 1 THz)")
    array: ArrayConfig
    arithmetic: ArithmeticConfig
    memory: MemoryConfig
    vector_unit: VectorUnitConfig
    energy: EnergyConfig
    area: AreaConfig = Field(default_factory=AreaConfig, description="silicon area per component (defaults: 40 nm)")
    static_power: StaticPowerConfig = Field(default_factory=StaticPowerConfig, description="leakage power")

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value):
        if isinstance(value, bool):  # True == 1 in Python; a boolean is not a schema version
            raise ValueError("version must be the integer 1")
        return value

    @property
    def cycles_per_beat(self) -> int:
        """Cycles per input word: 1 bit-parallel, ``act_bits`` bit-serial."""
        return self.arithmetic.act_bits if self.arithmetic.mode == "bit_serial" else 1

    @property
    def weight_bytes(self) -> float:
        return self.arithmetic.weight_bits / 8

    @property
    def act_bytes(self) -> float:
        return self.arithmetic.act_bits / 8

    @property
    def acc_bytes(self) -> float:
        return self.arithmetic.acc_bits / 8

    def energy_scales(self) -> tuple[float, float, float]:
        """Factors on ``(mac_pj, mux_select_pj, register_pj)`` for this config's widths: all 1 in float32,
        width-scaled in fixed point as ``energy.reference_bits`` describes."""
        a = self.arithmetic
        if a.number_format == "float32":
            return 1.0, 1.0, 1.0
        ref = self.energy.reference_bits
        return (a.weight_bits * a.act_bits / ref**2, a.act_bits / ref, (a.act_bits + a.acc_bits) / (2 * ref))

    def select_bits(self, alpha: int) -> int:
        """Bits of a PE's select index for groups of at most ``alpha`` columns (0 for dense)."""
        return 0 if alpha <= 1 else math.ceil(math.log2(alpha))

    def cell_bytes(self, group_size: int) -> float:
        """Bytes of one packed weight cell: its value plus the select index for groups of ``group_size``."""
        return (self.arithmetic.weight_bits + self.select_bits(group_size)) / 8

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelt? see docs/hwconfig.md for the fields)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if "input" in err and err["type"] not in ("missing", "extra_forbidden") and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
        problems.append(f"{path}: {msg}")
    return problems


def parse_hw_config(text: str, source: str = "<string>") -> HardwareConfig:
    """Validate YAML text as a hardware config; every problem is reported in one :class:`SasimError`."""
    data, problems = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise SasimError(f"{source} must hold a mapping of fields (version, name, array, ...), not {type(data).__name__}")
    return validate_hw_dict(data, source, problems)


def validate_hw_dict(data: dict, source: str = "hardware config", problems: list | None = None) -> HardwareConfig:
    """Validate a parsed config mapping; every problem (plus ``problems`` found earlier) in one SasimError."""
    problems = list(problems or [])
    try:
        config = HardwareConfig.model_validate(data)
    except ValidationError as exc:
        problems += _format_errors(exc)
        config = None
    if len(problems) == 1:
        raise SasimError(f"{source}: {problems[0]}")
    if problems:
        lines = "\n  ".join(problems)
        raise SasimError(f"{source} has {len(problems)} problem{'s' * (len(problems) > 1)}:\n  {lines}")
    return config


def shipped_config_dir() -> Path:
    """Where the shipped configs are: ``sasim/_data/hwconfigs`` in a wheel, ``hwconfigs/`` in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data" / "hwconfigs", here.parent / "hwconfigs"):
        if candidate.is_dir():
            return candidate
    raise SasimError("the shipped hardware configs are missing from this installation; reinstall sasim")


def shipped_configs() -> dict[str, Path]:
    """``{name: path}`` of the hardware configs installed with sasim."""
    return {p.stem: p for p in sorted(shipped_config_dir().glob("*.yaml"))}


def resolve_hw_path(name_or_path) -> Path:
    """A file path as given, or the shipped config of that name (``32x32``, ``hwconfigs/32x32.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if stem in shipped:
        return shipped[stem]
    raise SasimError(f"hardware config {name_or_path} not found; give a YAML path or one of: {', '.join(shipped)}")


def load_hw_config(name_or_path, dataflow: str | None = None) -> HardwareConfig:
    """Load and validate a hardware config from a path or a shipped name; ``dataflow`` (a name of
    :data:`DATAFLOWS` or ``ws``/``os``/``is``) replaces the config's ``array.dataflow``."""
    path = resolve_hw_path(name_or_path)
    hw = parse_hw_config(read_text_file(path, "hardware config"), str(path))
    return hw if dataflow is None else with_dataflow(hw, dataflow)


def with_dataflow(hw: HardwareConfig, dataflow: str) -> HardwareConfig:
    """``hw`` with ``array.dataflow`` replaced (validated again, like a config read from a file)."""
    data = hw.to_dict()
    data["array"]["dataflow"] = resolve_dataflow(dataflow)
    return validate_hw_dict(data, hw.name)


def field_reference() -> list[tuple[str, str, str]]:
    """``(path, type, description)`` of every field of the schema, for docs/hwconfig.md."""
    rows = []

    def type_text(info) -> str:
        ann = info.annotation
        if typing.get_origin(ann) is Literal:
            return " or ".join(repr(a) for a in typing.get_args(ann))
        text = getattr(ann, "__name__", str(ann))
        limits = []
        for meta in info.metadata:
            for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(meta, attr, None)
                if value is not None:
                    limits.append(f"{sign} {value}")
        return f"{text} ({', '.join(limits)})" if limits else text

    def walk(model, prefix):
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            else:
                rows.append((f"{prefix}{name}", type_text(info), info.description or ""))

    walk(HardwareConfig, "")
    return rows
