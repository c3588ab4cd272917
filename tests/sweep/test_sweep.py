"""Sweeps: tidy CSV, resume without redoing points, failing points isolated, local pool and Dask."""

import csv
import json

import pytest
from conftest import sparse_lstm_checkpoint
from helpers import key_of

from sasim.sweep import grid, run_sweep


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(sparse_lstm_checkpoint(tmp_path_factory.mktemp("sw") / "l.pt", input_size=10, hidden=12, density=0.3))


def rows(out):
    with open(out / "sweep.csv") as f:
        return list(csv.DictReader(f))


def test_sweep_csv_resume_and_failures(ckpt, tmp_path):
    points = grid(["8x8", "32x32"], [4, 16], [0.0, 1.0], ["prune", "spill"])
    summary = run_sweep(points, ckpt, tmp_path, workers=2, show_progress=False)
    assert summary["done"] == 12 and len(summary["failures"]) == 4  # alpha 16 > mux_fanin 8 on 8x8 only
    assert all("mux_fanin" in f["error"] for f in summary["failures"].values())
    table = rows(tmp_path)
    assert len(table) == 12 * 3  # two layers and a total row per point
    assert {(r["hw"], r["layer"]) for r in table} >= {("8x8", "layer0.gates"), ("32x32", "total")}
    for name in ("utilization_heatmap.png", "metrics_vs_gamma.png"):
        assert (tmp_path / name).stat().st_size > 1000
    # resume: finished points are read back, not recomputed
    marker = tmp_path / "points" / f"{key_of(tmp_path, points[0])}.json"
    data = json.loads(marker.read_text())
    data["total"]["cycles"] = -1
    marker.write_text(json.dumps(data))
    run_sweep(points, ckpt, tmp_path, workers=1, show_progress=False)
    assert any(r["layer"] == "total" and r["cycles"] == "-1" for r in rows(tmp_path))


def test_cycle_and_analytic_sweeps_agree(ckpt, tmp_path):
    points = grid(["8x8"], [2], [0.5], ["prune", "spill"])
    a = run_sweep(points, ckpt, tmp_path / "a", mode="analytic", workers=1, show_progress=False)
    c = run_sweep(points, ckpt, tmp_path / "c", mode="cycle", workers=1, show_progress=False)
    assert a["done"] == c["done"] == 2
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "a")) == strip(rows(tmp_path / "c"))


def test_dask_engine_on_local_cluster(ckpt, tmp_path):
    pytest.importorskip("dask.distributed")
    points = grid(["8x8"], [2, 4], [0.0, 1.0], ["prune"])
    local = run_sweep(points, ckpt, tmp_path / "local", workers=1, show_progress=False)
    dist = run_sweep(points, ckpt, tmp_path / "dask", workers=2, engine="dask", show_progress=False)
    assert local["done"] == dist["done"] == 4
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows(tmp_path / "local")) == strip(rows(tmp_path / "dask"))


def test_prune_to_magnitude_prunes_before_combining(ckpt, tmp_path):
    import numpy as np

    from sasim.combine.magnitude import magnitude_prune

    w = np.arange(1, 11, dtype=np.float32).reshape(2, 5) * np.array([1, -1, 1, -1, 1], np.float32)
    assert np.count_nonzero(magnitude_prune(w, 0.3)) == 3 and magnitude_prune(w, 0.3)[1, 4] == 10
    summary = run_sweep(grid(["8x8"], [4], [0.5], ["prune"], prune_to=0.1), ckpt, tmp_path, workers=1,
                        show_progress=False)
    assert summary["done"] == 1
    total = [r for r in rows(tmp_path) if r["layer"] == "total"][0]
    assert float(total["prune_to"]) == 0.1


def test_gamma_zero_runs_once_for_all_rules(ckpt, tmp_path):
    points = grid(["8x8"], [4], [0.0, 0.5], ["prune", "spill"])
    summary = run_sweep(points, ckpt, tmp_path, workers=1, show_progress=False)
    assert summary["done"] == 4
    prune0, spill0 = (json.loads((tmp_path / "points" / f"{key_of(tmp_path, p)}.json").read_text()) for p in points[:2])
    assert spill0["same_as"] == "prune" and spill0["point"]["rule"] == "spill"
    assert spill0["total"] == prune0["total"]
    totals = [r for r in rows(tmp_path) if r["layer"] == "total"]
    assert [r["rule"] for r in totals] == ["prune", "spill", "prune", "spill"]
    assert "same_as" not in json.loads((tmp_path / "points" / f"{key_of(tmp_path, points[3])}.json").read_text())
    alone = run_sweep(grid(["8x8"], [4], [0.0], ["spill"]), ckpt, tmp_path / "alone", workers=1, show_progress=False)
    assert alone["done"] == 1  # run on its own, the spill point really computes the same numbers
    ran = json.loads(next((tmp_path / "alone" / "points").glob("*.json")).read_text())
    assert ran["total"] == prune0["total"]


def test_sweep_over_patterns_one_point_each_and_combine_fingerprints_unchanged(ckpt, tmp_path):
    import hashlib
    from dataclasses import asdict

    from sasim import __version__
    from sasim.sweep import SweepSettings, input_digests, point_fingerprint

    points = grid(["8x8"], [4], [0.5], ["prune"], prune_to=0.15, patterns=["combine", "block:4x4", "unstructured",
                                                                         "dense"])
    assert [p.pattern for p in points] == ["combine", "block:4x4", "unstructured", "dense"]
    with pytest.raises(Exception, match="N:M pattern sets its own density"):
        grid(["8x8"], [4], [0.5], ["prune"], prune_to=0.5, patterns=["nm:2:4"])
    points += grid(["8x8"], [4], [0.5], ["prune"], patterns=["nm:2:4"])
    summary = run_sweep(points, ckpt, tmp_path, workers=1, show_progress=False)
    assert summary["done"] == 5 and not summary["failures"]
    totals = {r["pattern"]: r for r in rows(tmp_path) if r["layer"] == "total"}
    assert set(totals) == {"combine", "nm:2:4", "block:4x4", "unstructured", "dense"}
    assert float(totals["dense"]["pruned_fraction"]) == 0.0
    assert abs(float(totals["unstructured"]["packing_efficiency"]) - 0.15) < 0.01  # density 0.3 -> 0.15, kept dense
    assert int(totals["block:4x4"]["tiles"]) < int(totals["unstructured"]["tiles"]) == int(totals["dense"]["tiles"])
    assert int(totals["nm:2:4"]["tiles"]) < int(totals["dense"]["tiles"])
    # a column-combining point keeps the fingerprint it had before patterns existed
    settings = SweepSettings(weights=ckpt)
    digests = input_digests(settings, ["8x8"])
    old = {"point": {k: v for k, v in asdict(points[0]).items() if k != "pattern"}, "settings": asdict(settings),
           "weights_sha256": digests["weights"], "hw_sha256": digests["hw"]["8x8"], "data_sha256": None,
           "sasim": __version__}
    assert point_fingerprint(points[0], settings, digests) == hashlib.sha256(
        json.dumps(old, sort_keys=True, default=str).encode()).hexdigest()
