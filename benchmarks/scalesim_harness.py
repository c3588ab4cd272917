"""Run SCALE-Sim v3 (PyPI ``scalesim==3.0.0``) on GEMMs, in a virtualenv of its own.

SCALE-Sim 3.0.0 fails under numpy 2 (``int()`` of a one-element array in its memory model), so the
harness installs it with ``numpy<2`` into ``$SASIM_SCALESIM_VENV`` (default
``~/.cache/sasim/scalesim-venv``) the first time it is asked to, and runs it there. Any of the three
dataflows (``ws``, ``os``, ``is``), CALC bandwidth mode (no stalls), no sparsity.

Orientation: in every dataflow sasim's array is SCALE-Sim's transposed (docs/dataflows.md): sasim's
``R x C`` array is SCALE-Sim's ``ArrayHeight = C``, ``ArrayWidth = R``.

    python benchmarks/scalesim_harness.py ROWS COLS [--dataflow ws|os|is] M,N,K ...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

VENV = Path(os.environ.get("SASIM_SCALESIM_VENV", Path.home() / ".cache" / "sasim" / "scalesim-venv"))

_CONFIG = """[general]
run_name = sasim_compare

[architecture_presets]
ArrayHeight: {height}
ArrayWidth: {width}
IfmapSramSzkB: 65536
FilterSramSzkB: 65536
OfmapSramSzkB: 65536
IfmapOffset: 0
FilterOffset: 100000000
OfmapOffset: 200000000
Bandwidth: 10
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

_RUNNER = r"""
import glob, json, sys, time
from scalesim.scale_sim import scalesim
cfg, topo, layout, out, gemm = sys.argv[1:6]
t = time.time()
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout, input_type_gemm=gemm == "1")
s.run_scale(top_path=out)
seconds = time.time() - t
rows = []
for path in glob.glob(out + '/**/COMPUTE_REPORT.csv', recursive=True):
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    for line in lines[1:]:
        rows.append([x.strip() for x in line.split(',') if x.strip()])
print(json.dumps({"rows": rows, "seconds": seconds}))
"""


def ensure_scalesim() -> Path:
    """Create the SCALE-Sim virtualenv if needed; return its python."""
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy<2", "scalesim==3.0.0"], check=True)
    return python


def scalesim_total_cycles(gemms, rows: int, cols: int, dataflow: str = "ws") -> tuple[list[int], float]:
    """SCALE-Sim's ``Total Cycles`` for each ``(M, N, K)`` on sasim's ``rows x cols`` array, in ``dataflow``.

    Returns
    -------
    cycles : list of int
        One per GEMM, in order.
    seconds : float
        SCALE-Sim's own wall time for all of them.
    """
    python = ensure_scalesim()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cfg.cfg").write_text(_CONFIG.format(height=cols, width=rows, dataflow=dataflow))
        topo = ["Layer, M, N, K,"] + [f"g{i}, {m}, {n}, {k}," for i, (m, n, k) in enumerate(gemms)]
        (tmp / "topo.csv").write_text("\n".join(topo) + "\n")
        layout = ["header"] + [f"g{i}, 1,1,1,1,1,1, 0,1,2, 0,1,2, 0,1,2,3, 0,1,2,3," for i in range(len(gemms))]
        (tmp / "layout.csv").write_text("\n".join(layout) + "\n")
        return _run(python, tmp, tmp / "cfg.cfg", tmp / "topo.csv", tmp / "layout.csv", gemm=True)


def _run(python, tmp: Path, cfg: Path, topo: Path, layout: Path, gemm: bool) -> tuple[list[int], float]:
    (tmp / "run.py").write_text(_RUNNER)
    proc = subprocess.run([str(python), str(tmp / "run.py"), str(cfg), str(topo), str(layout), str(tmp / "out"),
                           "1" if gemm else "0"], capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        raise RuntimeError(f"SCALE-Sim failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cycles = [int(row[2]) for row in sorted(result["rows"], key=lambda r: int(r[0]))]
    return cycles, result["seconds"]


def scalesim_files_total_cycles(config, topology, gemm: bool = False) -> tuple[list[int], float]:
    """SCALE-Sim's ``Total Cycles`` per layer for its own ``.cfg`` and topology CSV (what ``sasim scalesim``
    reads), and its wall time."""
    python = ensure_scalesim()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [line for line in Path(topology).read_text().splitlines()[1:] if line.strip()]
        count = sum(int(r.split(",")[5]) if "DP" in r.split(",")[0] and not gemm else 1 for r in rows)
        layout = ["header"] + [f"l{i}, 1,1,1,1,1,1, 0,1,2, 0,1,2, 0,1,2,3, 0,1,2,3," for i in range(count)]
        (tmp / "layout.csv").write_text("\n".join(layout) + "\n")
        return _run(python, tmp, Path(config).resolve(), Path(topology).resolve(), tmp / "layout.csv", gemm)


if __name__ == "__main__":
    args = sys.argv[1:]
    flow = "ws"
    if "--dataflow" in args:
        i = args.index("--dataflow")
        flow = args[i + 1]
        del args[i:i + 2]
    cases = [tuple(int(v) for v in arg.split(",")) for arg in args[2:]]
    print(scalesim_total_cycles(cases, int(args[0]), int(args[1]), flow))
