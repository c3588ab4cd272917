"""Hardware configs: shipped ones are valid; every kind of bad input is reported, all at once."""

import subprocess
import sys

import pytest
from conftest import REPO

from sasim.errors import SasimError
from sasim.hw.config import DATAFLOW_ALIASES, load_hw_config, parse_hw_config, shipped_configs

GOOD = (REPO / "hwconfigs" / "8x8.yaml").read_text()


def test_shipped_configs_are_valid():
    names = set(shipped_configs())
    assert {"8x8", "32x32", "128x128"} <= names
    for name in names:
        hw = load_hw_config(name)
        assert hw.array.rows == hw.array.cols == int(name.split("x")[0])
        base, _, flow = name.partition("-")
        if flow:  # a dataflow twin: the base config with only its name and dataflow changed
            twin = hw.to_dict()
            assert twin["array"].pop("dataflow") == DATAFLOW_ALIASES[flow]
            expected = load_hw_config(base).to_dict()
            expected["array"].pop("dataflow")
            assert {**twin, "name": base} == expected


def test_dataflow_override_accepts_scalesim_names_and_refuses_others():
    assert load_hw_config("8x8", "os").array.dataflow == "output_stationary"
    assert load_hw_config("8x8", "input_stationary").array.dataflow == "input_stationary"
    with pytest.raises(SasimError, match="dataflow must be one of"):
        load_hw_config("8x8", "row_stationary")


def test_all_problems_reported_at_once_with_paths():
    bad = GOOD.replace("rows: 8", "rows: -8\n  rowz: 3").replace("lanes: 8", "lanes: eight")
    bad = bad.replace("clock_hz: 1.0e+9", "clock_hz: 1.0e+9\nclock_hz: 2.0e+9")
    with pytest.raises(SasimError) as exc:
        parse_hw_config(bad, "bad.yaml")
    msg = str(exc.value)
    for needle in ("4 problems", "array.rows", "array.rowz: unknown key", "vector_unit.lanes", "'clock_hz' appears twice"):
        assert needle in msg


@pytest.mark.parametrize("text,match", [
    ("version: 1\narray: [1, 2", "not valid YAML"),
    ("- 1\n- 2\n", "mapping"),
    (GOOD.replace("number_format: float32", "number_format: fixed_point").replace("acc_bits: 32", "acc_bits: 40")
     .replace("weight_bits: 32", "weight_bits: 8").replace("act_bits: 32", "act_bits: 8"), None),
    (GOOD.replace("weight_bits: 32", "weight_bits: 8"), "float32 arithmetic needs"),
    (GOOD.replace("mode: bit_parallel", "mode: bit_serial"), "bit_serial arithmetic needs"),
    (GOOD.replace("version: 1", "version: 2"), "version"),
    (GOOD.replace("dataflow: weight_stationary", "dataflow: row_stationary"), "array.dataflow"),
    (GOOD.replace("dataflow: weight_stationary", "dataflow: os"), "array.dataflow"),
    (GOOD.replace("  mux_fanin: 8", ""), "array.mux_fanin: required"),
    (GOOD.replace("rows: 8", "rows: 8.5"), "array.rows"),
])
def test_specific_problems(text, match):
    if match is None:
        assert parse_hw_config(text).arithmetic.acc_bits == 40
    else:
        with pytest.raises(SasimError, match=match):
            parse_hw_config(text)


def test_cli_validate_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("cols: 8", "cols: 0"))
    ok = subprocess.run([sys.executable, "-m", "sasim.cli", "validate", "hwconfigs/32x32.yaml"], cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "valid" in ok.stdout
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "validate", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "array.cols" in res.stderr and "Traceback" not in res.stderr
    missing = subprocess.run([sys.executable, "-m", "sasim.cli", "validate", str(tmp_path / "nope.yaml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_docs_cover_every_field():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_hwconfig_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (REPO / "docs" / "hwconfig.md").read_text() == gen.render(), "run python scripts/gen_hwconfig_doc.py"
