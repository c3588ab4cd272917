"""Area and static energy against a hand computation for a small config."""

import numpy as np
import pytest
from conftest import make_hw

from sasim.combine.packed import PackedMatrix
from sasim.errors import SasimError
from sasim.hw.area import array_cost, pe_area_um2
from sasim.hw.config import validate_hw_dict
from sasim.sim.engine import simulate_matmul
from sasim.sim.metrics import WorkPart, part_metrics, total_metrics

ROUND = dict(area__fp32_multiplier_um2=1000.0, area__fp32_adder_um2=500.0, area__int32_multiplier_um2=2048.0,
             area__int32_adder_um2=64.0, area__register_um2_per_bit=2.0, area__mux_um2_per_input_bit=0.5,
             area__sram_um2_per_bit=0.25, static_power__logic_uw_per_um2=0.01, static_power__sram_uw_per_kib=3.0,
             memory__weight_sram_bytes=4096, memory__input_sram_bytes=2048, memory__output_sram_bytes=2048)


def test_a_float32_weight_stationary_pe_and_array_by_hand():
    hw = make_hw(4, 2, mux_fanin=4, **ROUND)  # float32: 32-bit words
    # groups of 4 lanes: select 2 bits; registers 2 x (32 + 2) weight + 4 x 32 lanes + 32 psum = 228 bits
    pe = pe_area_um2(hw, 4)
    assert pe == {"mac": 1500.0, "registers": 456.0, "mux": 3 * 32 * 0.5, "pe": 1500.0 + 456.0 + 48.0}
    cost = array_cost(hw, 4)
    assert cost["array_area_mm2"] == pytest.approx(8 * 2004.0e-6)
    assert cost["sram_area_mm2"] == pytest.approx(8 * 1024 * 8 * 0.25e-6)  # 8 KiB of SRAM
    assert cost["static_power_w"] == pytest.approx((8 * 2004.0 * 0.01 + 8 * 3.0) * 1e-6)
    dense = pe_area_um2(hw, 1)  # no multiplexer, no select bits: 2 x 32 + 32 + 32 = 128 bits
    assert dense == {"mac": 1500.0, "registers": 256.0, "mux": 0.0, "pe": 1756.0}


@pytest.mark.parametrize("flow,bits", [("output_stationary", 10 + 3 * 16 + 2 * 32),
                                       ("input_stationary", 10 + 2 * 3 * 16 + 32)])
def test_fixed_point_pes_in_the_other_dataflows_by_hand(flow, bits):
    hw = make_hw(2, 2, mux_fanin=4, array__dataflow=flow, arithmetic__number_format="fixed_point",
                 arithmetic__weight_bits=8, arithmetic__act_bits=16, arithmetic__acc_bits=32, **ROUND)
    pe = pe_area_um2(hw, 3)  # 3 lanes: 2 select bits, a 10-bit weight cell
    assert pe["mac"] == pytest.approx(2048.0 * 8 * 16 / 1024 + 64.0 * 32 / 32)
    assert pe["registers"] == pytest.approx(bits * 2.0)
    assert pe["mux"] == pytest.approx(2 * 16 * 0.5)


def test_static_energy_and_energy_per_token_in_a_run_by_hand(rng):
    hw = make_hw(4, 4, mux_fanin=4, **ROUND)
    packed = PackedMatrix.from_dense(rng.standard_normal((8, 8)).astype(np.float32))
    res = simulate_matmul(packed, None, hw, 3, "sasim", "analytic")
    part = WorkPart(name="m", rows=8, cols=8, groups=8, nonzeros=64, nonzeros_before=64, counts=res.counts, steps=1,
                    batch=3, cell_bytes=hw.cell_bytes(1), lanes=1)
    per = part_metrics(part, hw, True)
    total = total_metrics([part], [per], hw, 1)
    power = (16 * pe_area_um2(hw, 1)["pe"] * 0.01 + 8 * 3.0) * 1e-6
    assert total["static_energy_j"] == pytest.approx(power * res.counts.cycles / hw.clock_hz)
    assert total["energy_per_token_j"] == pytest.approx((per["energy_j"] + total["static_energy_j"]) / 3)
    assert total["area_mm2"] == pytest.approx(16 * pe_area_um2(hw, 1)["pe"] * 1e-6 + 8 * 1024 * 8 * 0.25e-6)


def test_area_constants_are_validated_strictly():
    base = make_hw().to_dict()
    base["area"]["register_um2_per_bit"] = -1
    base["static_power"]["bogus"] = 1
    with pytest.raises(SasimError) as err:
        validate_hw_dict(base)
    text = str(err.value)
    assert "area.register_um2_per_bit" in text and "static_power.bogus" in text
