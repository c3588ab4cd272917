"""The raw event counts of one simulated matrix product, shared by the cycle-level and analytic modes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sasim.checks import check_events


@dataclass
class MatmulCounts:
    """Events of one matrix product on the array. Both simulation modes must produce equal counts.

    Attributes
    ----------
    cycles : int
        Total cycles, stalls included.
    stall_cycles : int
        ``cycles`` minus the cycles of the same schedule with unlimited memory bandwidth.
    tiles : int
        Array tiles of the packed matrix.
    useful_macs : int
        MACs with a nonzero weight and a real input vector.
    mux_macs : int
        Useful MACs in PEs whose group has more than one column (the multiplexer switches).
    pe_vector_slots : int
        ``tiles * R * C * S``: PE-beats of streamed items (``S``: vectors in weight stationary, groups in output
        stationary, weight rows in input stationary), useful or not (register movement).
    input_words, output_words, weight_cells, tile_loads : int
        Lane words read from the input SRAM, results written to the accumulator, weight cells loaded or
        streamed, and loads of the stationary operand (weight tiles, input tiles; none in output stationary).
    """

    cycles: int
    stall_cycles: int
    tiles: int
    useful_macs: int
    mux_macs: int
    pe_vector_slots: int
    input_words: int
    output_words: int
    weight_cells: int
    tile_loads: int

    def __post_init__(self):
        # every count is a plain non-negative int below 2**62: a wrapped int64 never reaches a report
        for name in self.__dataclass_fields__:
            setattr(self, name, check_events(name, getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)

    def __add__(self, other: "MatmulCounts") -> "MatmulCounts":
        """The counts of two products run one after the other."""
        return MatmulCounts(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    def scaled(self, times: int) -> "MatmulCounts":
        """The counts of the same product run ``times`` times (work that does not depend on the values)."""
        return MatmulCounts(**{k: getattr(self, k) * times for k in self.__dataclass_fields__})
