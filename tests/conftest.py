import copy
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, settings  # noqa: E402

from sasim.hw.config import HardwareConfig, load_hw_config  # noqa: E402

# CI runs the default profile; `SASIM_HYPOTHESIS=thorough python -m pytest` searches 20x longer.
settings.register_profile("default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(__import__("os").environ.get("SASIM_HYPOTHESIS", "default"))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def make_hw(rows=8, cols=8, mux_fanin=8, **overrides) -> HardwareConfig:
    """A validated config from the shipped 8x8 one with some fields replaced (dotted keys)."""
    base = copy.deepcopy(load_hw_config("8x8").to_dict())
    base["array"].update(rows=rows, cols=cols, mux_fanin=mux_fanin)
    for key, value in overrides.items():
        node = base
        parts = key.split("__")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return HardwareConfig.model_validate(base)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def sparse_matrix(rng, n, k, density, integer=False):
    if integer:
        w = rng.integers(-4, 5, size=(n, k)).astype(np.float32)
    else:
        w = rng.standard_normal((n, k)).astype(np.float32)
    return w * (rng.random((n, k)) < density)


def sparse_lstm_checkpoint(path, input_size=12, hidden=16, layers=2, density=0.25, seed=0):
    """A saved nn.LSTM state_dict whose weight matrices keep about ``density`` of their entries."""
    import torch

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(input_size, hidden, num_layers=layers)
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if "weight" in name:
                p.mul_((torch.rand_like(p) < density).float())
    torch.save(lstm.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def dense(tmp_path_factory):
    """A small trained character model and its corpus: ``(data_dir, checkpoint)``."""
    from helpers import write_corpus

    from sasim.lm.corpus import load_corpus
    from sasim.lm.presets import TrainConfig
    from sasim.lm.train import train

    root = tmp_path_factory.mktemp("prune")
    data = write_corpus(root / "data", alphabet="abcdefg_", lines=(400, 40, 40))
    cfg = TrainConfig(emb_size=8, hidden_size=24, num_layers=2, bptt=20, batch_size=8, dropout_e=0, dropout_h=0.1,
                      dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=2, seed=5)
    train(load_corpus(data), cfg, root / "dense.pt", show_progress=False)
    return data, root / "dense.pt"


SHIPPED_EVAL_TESTS = ("test_shipped_model_reproduces_its_recorded_bpc",
                      "test_shipped_packed_model_reproduces_its_recorded_bpc_and_is_small")


def pytest_collection_modifyitems(session, config, items):
    """Start the shipped models' test-split evaluations (minutes each) in the background as soon as a test that
    needs them is selected, so that they run beside the rest of the suite (tests/shipped_eval.py)."""
    import shipped_eval

    wanted = [item for item in items if item.originalname in SHIPPED_EVAL_TESTS]
    if not wanted or not (SHARED_DATA / "ptb-char").is_dir():
        return
    models = [REPO / "models" / "ptb-char-small.pt"] + sorted((REPO / "models").glob("ptb-char-packed*.pt"))
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="sasim-shipped-eval-"))
    shipped_eval.start([m for m in models if m.is_file()], SHARED_DATA / "ptb-char", out)


def pytest_sessionfinish(session, exitstatus):
    import shipped_eval

    shipped_eval.stop()
