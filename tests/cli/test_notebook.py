"""The conflict-budget notebook runs top to bottom (small sizes under test)."""

import os

import nbformat
import pytest
from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "conflict_budget_sweep.ipynb"
SHIPPED = REPO / "models" / "ptb-char-small.pt"


@pytest.mark.skipif(not SHIPPED.is_file() and "SASIM_NOTEBOOK_WEIGHTS" not in os.environ,
                    reason="needs the shipped model")
def test_notebook_executes():
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["SASIM_NOTEBOOK_SMALL"] = "1"
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "points; failures: none" in text
