"""Versions and settings written next to every result, so that a number can be traced to its run."""

from __future__ import annotations

import platform
import sys


def versions() -> dict:
    """Versions of sasim, Python, numpy, numba and torch."""
    # imported here, not at the top: `sasim --help` and the CLI's refusals must not pay for numba and torch
    import numba
    import numpy

    import sasim

    out = {"sasim": sasim.__version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "numba": numba.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        out["torch"] = None
    return out


def run_header(**settings) -> dict:
    """The provenance block of a JSON report: command line, versions, machine, and the given settings."""
    return {"command": " ".join(["sasim"] + sys.argv[1:]), "versions": versions(),
            "machine": {"platform": platform.platform(), "processor": platform.machine()}, **settings}
