"""``sasim scalesim`` reproduces SCALE-Sim v3.0.0's per-layer Total Cycles from SCALE-Sim's own files.

The pinned numbers were produced by SCALE-Sim 3.0.0 (PyPI) on examples/scalesim/scale.cfg with its Dataflow set
to each value, on examples/scalesim/conv_net.csv and (input_type_gemm) examples/scalesim/gemm.csv, with
``benchmarks/scalesim_harness.py:scalesim_files_total_cycles``. Set ``SASIM_TEST_SCALESIM=1`` to rerun SCALE-Sim.
"""

import csv
import json
import os

import pytest
from conftest import REPO

from sasim.cli import main

EXAMPLES = REPO / "examples" / "scalesim"
PINS = {
    "ws": {"conv": [1711, 2411, 85, 85, 85, 85, 455], "gemm": [38911, 19967, 68223, 1271]},
    "os": {"conv": [1849, 2295, 75, 75, 75, 75, 221], "gemm": [17663, 6783, 54287, 1443]},
    "is": {"conv": [5095, 3977, 265, 265, 265, 265, 223], "gemm": [8479, 6575, 69631, 3749]},
}


def config_with(tmp_path, flow):
    path = tmp_path / f"scale_{flow}.cfg"
    path.write_text((EXAMPLES / "scale.cfg").read_text().replace("Dataflow: os", f"Dataflow: {flow}"))
    return path


def run(tmp_path, flow, kind, *extra):
    out = tmp_path / f"{flow}_{kind}"
    args = ["scalesim", "--config", str(config_with(tmp_path, flow)), "--topology",
            str(EXAMPLES / ("conv_net.csv" if kind == "conv" else "gemm.csv")), "--csv", f"{out}.csv",
            "--json", f"{out}.json", *extra] + (["--gemm"] if kind == "gemm" else [])
    assert main(args) == 0
    return out


@pytest.mark.parametrize("kind", ["conv", "gemm"])
@pytest.mark.parametrize("flow", sorted(PINS))
def test_total_cycles_equal_scalesim_per_layer(tmp_path, flow, kind, capsys):
    out = run(tmp_path, flow, kind)
    report = json.loads(out.with_suffix(".json").read_text())
    assert [r["scalesim_total_cycles"] for r in report["layers"]] == PINS[flow][kind]
    assert all(isinstance(r["layer"], str) for r in report["layers"])
    text = out.with_suffix(".csv").read_text()
    assert not any(line.endswith(",") for line in text.splitlines())  # tidy: no trailing commas
    rows = list(csv.DictReader(text.splitlines()))
    assert [int(r["scalesim_total_cycles"]) for r in rows] == PINS[flow][kind]
    assert "SCALE-Sim Total Cycles" in capsys.readouterr().out


def test_combining_and_values_on_scalesim_layers(tmp_path):
    """--alpha/--gamma pack the layers' seeded sparse weights; cycle mode checks the values against numpy."""
    out = run(tmp_path, "ws", "gemm", "--density", "0.2", "--alpha", "8", "--gamma", "0.5", "--mode", "cycle")
    layers = json.loads(out.with_suffix(".json").read_text())["layers"]
    assert all(r["max_abs_error_vs_numpy"] < 1e-3 for r in layers)
    assert sum(r["tiles"] for r in layers) < sum(r["dense_tiles"] for r in layers)
    assert [r["scalesim_total_cycles"] for r in layers] == PINS["ws"]["gemm"]  # SCALE-Sim's number stays dense


def test_unmodelled_fields_warn_on_stderr(tmp_path, capsys):
    cfg = tmp_path / "user.cfg"
    cfg.write_text((EXAMPLES / "scale.cfg").read_text().replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER"))
    assert main(["scalesim", "--config", str(cfg), "--topology", str(EXAMPLES / "gemm.csv"), "--gemm",
                 "--csv", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "InterfaceBandwidth USER" in err


def test_malformed_topology_is_one_line(tmp_path, capsys):
    topo = tmp_path / "t.csv"
    topo.write_text("Layer, M, N, K,\ng, 4, 5,\n")
    assert main(["scalesim", "--config", str(EXAMPLES / "scale.cfg"), "--topology", str(topo), "--gemm",
                 "--csv", str(tmp_path / "o.csv")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs 4 fields" in err and "Traceback" not in err


@pytest.mark.scalesim
@pytest.mark.skipif(os.environ.get("SASIM_TEST_SCALESIM") != "1", reason="set SASIM_TEST_SCALESIM=1 to run SCALE-Sim")
@pytest.mark.parametrize("flow", sorted(PINS))
def test_against_live_scalesim(tmp_path, flow):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from scalesim_harness import scalesim_files_total_cycles

    for kind, topo in (("conv", "conv_net.csv"), ("gemm", "gemm.csv")):
        theirs, _ = scalesim_files_total_cycles(config_with(tmp_path, flow), EXAMPLES / topo, kind == "gemm")
        ours = json.loads(run(tmp_path, flow, kind).with_suffix(".json").read_text())["layers"]
        assert [r["scalesim_total_cycles"] for r in ours] == theirs, (flow, kind)
