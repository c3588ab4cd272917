"""Accuracy with the weights the array holds: the torch path equals the simulator on the same tokens."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_hw
from helpers import write_corpus

from sasim.api.combine import Combine, combine
from sasim.api.simulate import Packing
from sasim.lm.corpus import load_corpus
from sasim.lm.loading import evaluate_model, load_language_model, with_array_weights
from sasim.lm.presets import TrainConfig
from sasim.lm.train import train
from sasim.sim.lstm_array import simulate_lstm
from sasim.workload.layer_packing import pack_workload, stored_packings
from sasim.workload.lstm_weights import load_lstm_workload


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("acc")
    data = write_corpus(root / "data", alphabet="abcdef_")
    cfg = TrainConfig(emb_size=8, hidden_size=16, num_layers=2, bptt=20, batch_size=8, dropout_e=0, dropout_h=0.1,
                      dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=2, seed=5)
    train(load_corpus(data), cfg, root / "m.pt", show_progress=False)
    return data, root / "m.pt"


def test_torch_path_equals_array_on_same_tokens(trained):
    data, ckpt = trained
    workload = load_lstm_workload(ckpt)
    packings = pack_workload(workload, make_hw(8, 8), alpha=4, gamma=1.0)
    model, _ = load_language_model(ckpt)
    model = with_array_weights(model, packings)
    tokens = torch.from_numpy(load_corpus(data).splits["test"][:24].reshape(6, 4))
    x = model.encoder(tokens)
    with torch.no_grad():
        for rnn in model.rnns:
            x, _ = rnn(x, None)
    inputs = workload.embedding[tokens.numpy()]
    _, out, _ = simulate_lstm(workload, packings, make_hw(8, 8), batch=4, steps=6, inputs=inputs)
    np.testing.assert_allclose(out, x.numpy(), atol=2e-5)


def test_run_with_data_on_packed_checkpoint(trained, tmp_path):
    data, ckpt = trained
    packed = tmp_path / "packed.pt"
    combine(Combine(weights=ckpt, out=packed, packing=Packing(alpha=4, gamma=1.0)))
    stored = stored_packings(load_lstm_workload(packed))
    fresh = pack_workload(load_lstm_workload(ckpt), None, alpha=4, gamma=1.0)
    assert [s.gates.groups() for s in stored] == [f.gates.groups() for f in fresh]
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "run", "--hw", "8x8", "--weights", str(packed),
                          "--data", str(data), "--split", "valid", "--json", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads(out.read_text())
    model, raw = load_language_model(ckpt)
    expected = evaluate_model(with_array_weights(model, fresh), raw, data, "valid")
    assert rep["total"]["bpc"] == pytest.approx(expected["bpc"], rel=1e-6)
    assert rep["packing"]["stored"] and rep["packing"]["alpha"] == 4
    bad = subprocess.run([sys.executable, "-m", "sasim.cli", "run", "--hw", "8x8", "--weights", str(packed),
                          "--alpha", "4", "--gamma", "0.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "gamma 0.5 (checkpoint: 1.0)" in bad.stderr


def test_data_with_foreign_vocabulary_is_refused(trained, tmp_path):
    _, ckpt = trained
    other = write_corpus(tmp_path / "other", alphabet="xyz_")
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "run", "--hw", "8x8", "--weights", str(ckpt),
                          "--data", str(other)], capture_output=True, text=True)
    assert res.returncode == 2 and "outside the model's vocabulary" in res.stderr
