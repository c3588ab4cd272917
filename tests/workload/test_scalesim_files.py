"""SCALE-Sim's .cfg and topology CSVs read strictly: lowering, depthwise layers, errors and warnings."""

import pytest
from conftest import REPO

from sasim.errors import SasimError
from sasim.workload.scalesim_files import conv_as_gemm, read_scalesim_config, read_topology

EXAMPLES = REPO / "examples" / "scalesim"


def test_example_config_and_topologies_read():
    cfg = read_scalesim_config(EXAMPLES / "scale.cfg")
    assert (cfg.array_height, cfg.array_width, cfg.dataflow) == (8, 4, "output_stationary")
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb, cfg.bandwidth_mode) == (64, 64, 64, "CALC")
    assert cfg.warnings == ()
    layers, warnings = read_topology(EXAMPLES / "conv_net.csv")
    assert [layer.name for layer in layers] == ["Conv1", "Conv2"] + [f"DPConv3Channel_{i}" for i in range(4)] + ["FC"]
    assert [(layer.m, layer.n, layer.k) for layer in layers][:2] == [(14 * 14, 8, 27), (7 * 7, 16, 72)]
    assert (layers[2].m, layers[2].n, layers[2].k) == (25, 1, 9)
    assert warnings == []
    gemms, _ = read_topology(EXAMPLES / "gemm.csv", gemm=True)
    assert (gemms[1].m, gemms[1].n, gemms[1].k) == (8, 256, 96)


def test_conv_lowering_follows_scalesim():
    # ofmap = ceil((H - R + s) / s), no padding: 14 wide, 3-wide filter, stride 2 gives 7; stride 4 gives 4 (and 3 from 10 wide)
    assert conv_as_gemm(14, 14, 3, 3, 8, 16, 2) == (49, 16, 72)
    assert conv_as_gemm(14, 10, 3, 3, 1, 1, 4) == (4 * 3, 1, 9)
    assert conv_as_gemm(5, 7, 5, 7, 2, 3, 1) == (1, 3, 70)


def _cfg(tmp_path, text):
    path = tmp_path / "c.cfg"
    path.write_text(text)
    return path


BASE = (EXAMPLES / "scale.cfg").read_text()


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.replace("ArrayHeight: 8\n", ""), "ArrayHeight is missing"),
    (lambda t: t.replace("ArrayWidth: 4", "ArrayWidth: four"), "ArrayWidth must be an integer"),
    (lambda t: t.replace("ArrayWidth: 4", "ArrayWidth: 0"), "ArrayWidth must be >= 1"),
    (lambda t: t.replace("Dataflow: os", "Dataflow: rs"), "Dataflow must be ws, os or is"),
    (lambda t: t.replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: FAST"), "CALC or USER"),
    (lambda t: "ArrayHeight 8\n" + t, "not a SCALE-Sim config"),
    (lambda t: t + "\n[architecture_presets]\nArrayHeight: 9\n", "not a SCALE-Sim config"),
])
def test_malformed_configs_get_one_clear_error(tmp_path, edit, match):
    with pytest.raises(SasimError, match=match):
        read_scalesim_config(_cfg(tmp_path, edit(BASE)))


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER"), "InterfaceBandwidth USER"),
    (lambda t: t.replace("UseRamulatorTrace: False", "UseRamulatorTrace: True"), "UseRamulatorTrace"),
    (lambda t: t.replace("IfmapCustomLayout: False", "IfmapCustomLayout: True"), "IfmapCustomLayout"),
    (lambda t: t.replace("SparsitySupport: false", "SparsitySupport: true"), "SparsitySupport"),
    (lambda t: t.replace("MemoryBanks: 1", "MemoryBanks: 4"), "MemoryBanks"),
    (lambda t: t.replace("Dataflow: os", "Dataflow: os\nClockGHz: 2"), "clockghz: unknown field"),
])
def test_unmodelled_fields_are_one_warning_line_each(tmp_path, edit, field):
    cfg = read_scalesim_config(_cfg(tmp_path, edit(BASE)))
    assert len(cfg.warnings) == 1 and field in cfg.warnings[0]


@pytest.mark.parametrize("rows,gemm,match", [
    ("c, 8, 8, 3, 3, 2, 4\n", False, "needs 8 fields"),
    ("g, 4, 5, 6,\n", False, "add --gemm"),
    ("c, 8, 8, 3, x, 2, 4, 1,\n", False, "must be integers"),
    ("c, 8, 8, 9, 3, 2, 4, 1,\n", False, "larger than"),
    ("c, 8, 8, 3, 3, 0, 4, 1,\n", False, ">= 1"),
    ("g, 4, 5,\n", True, "needs 4 fields"),
    (", 4, 5, 6,\n", True, "name is empty"),
    ("", True, "has no layers"),
])
def test_malformed_topologies_get_one_clear_error(tmp_path, rows, gemm, match):
    path = tmp_path / "t.csv"
    path.write_text("header,\n" + rows)
    with pytest.raises(SasimError, match=match):
        read_topology(path, gemm)


def test_rows_without_trailing_commas_and_sparsity_ratios(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Layer, M, N, K\ng0, 4, 5, 6\ng1, 1, 2, 3, 2:4,\n")
    layers, warnings = read_topology(path, gemm=True)
    assert [(layer.m, layer.n, layer.k) for layer in layers] == [(4, 5, 6), (1, 2, 3)]
    assert len(warnings) == 1 and "2:4" in warnings[0]
