"""Workload specs: every layer type, cycle-level equal to analytic at small sizes, values against numpy."""

import subprocess
import sys

import pytest
from conftest import make_hw

from sasim.errors import SasimError
from sasim.sim.workload_sim import simulate_workload
from sasim.workload.spec import PRESETS, expand, load_workload, parse_workload

SMALL = dict(version=1, name="every layer type", batch=3, steps=4, weights=dict(density=0.4, seed=3), layers=[
    dict(type="char_cnn", char_dim=3, word_length=6, filters={1: 4, 2: 5, 3: 6}, highway=1, output=7),
    dict(type="lstm", input=7, hidden=6, proj=5),
    dict(type="qrnn", input=5, hidden=6, window=2),
    dict(type="linear", rows=9, cols=6),
    dict(type="softmax", vocab=11, input=9),
    dict(type="softmax", vocab=1000, input=9, sampled=6),
])


@pytest.mark.parametrize("packing", [None, dict(alpha=2, gamma=0.5, rule="prune"), dict(alpha=4, gamma=1.0, rule="spill")])
@pytest.mark.parametrize("timing", ["sasim", "scalesim"])
def test_every_layer_type_cycle_equals_analytic(packing, timing):
    spec = parse_workload(SMALL)
    hw = make_hw(4, 5, 4, memory__sram_input_bw=6.0)
    kinds = {layer.kind for layer in expand(spec, 3, 4)}
    assert kinds == {"char_cnn", "lstm", "qrnn", "linear", "softmax", "sampled_softmax"}
    cyc, res_c = simulate_workload(spec, hw, mode="cycle", timing=timing, packing=packing)
    ana, res_a = simulate_workload(spec, hw, mode="analytic", timing=timing, packing=packing)
    assert res_c == res_a
    for c, a in zip(cyc, ana):
        assert c.counts == a.counts, c.name
        assert c.vector_cycles == a.vector_cycles
        assert c.extra["max_abs_error"] < 1e-4, c.name


def test_shapes_follow_the_layer_definitions():
    ops = {m.name: m for layer in expand(parse_workload(SMALL), 3, 4) for m in layer.matrices}
    assert (ops["1.lstm.gates"].rows, ops["1.lstm.gates"].cols) == (24, 7 + 5)
    assert (ops["1.lstm.proj"].rows, ops["1.lstm.proj"].cols) == (5, 6)
    assert (ops["2.qrnn.gates"].rows, ops["2.qrnn.gates"].cols, ops["2.qrnn.gates"].vectors) == (18, 10, 12)
    assert (ops["0.char_cnn.conv2"].cols, ops["0.char_cnn.conv2"].vectors) == (6, 3 * 5)
    assert ops["5.softmax.logits"].rows == 6 + 3  # samples plus the step's targets
    assert ops["4.softmax.logits"].rows == 11


def test_presets_parse_and_enwik8_size():
    for name in PRESETS:
        load_workload(name)
    weights = sum(m.rows * m.cols for layer in expand(load_workload("awd-enwik8"), 1, 1) for m in layer.matrices)
    assert 47.0e6 < weights < 47.5e6


def test_huge_dense_model_needs_no_weights_in_analytic_mode():
    parts, resident = simulate_workload(load_workload("lstm-8192-1024"), make_hw(128, 128, 16), mode="analytic")
    assert not resident and sum(p.counts.tiles for p in parts) > 40_000


@pytest.mark.parametrize("data,match", [
    (dict(SMALL, layers=[dict(type="lstm", input=3)]), "hidden"),
    (dict(SMALL, layers=[dict(type="conv", rows=3)]), "layers.0"),
    (dict(SMALL, weights=dict(density=1.5)), "density"),
    (dict(SMALL, extra=1), "extra"),
])
def test_bad_specs(data, match):
    with pytest.raises(SasimError, match=match):
        parse_workload(data)


def test_cli_workload(tmp_path):
    import yaml

    f = tmp_path / "w.yaml"
    f.write_text(yaml.safe_dump(SMALL))
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "run", "--hw", "8x8", "--workload", str(f), "--mode",
                          "cycle", "--alpha", "2", "--gamma", "0.5"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "cycles per token" in res.stdout and "char_cnn" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "sasim.cli", "run", "--workload", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "neither a file nor a preset" in bad.stderr


def test_packing_from_the_spec():
    spec = parse_workload(dict(SMALL, packing=dict(alpha=2, gamma=0.5)))
    assert spec.packing.alpha == 2 and spec.packing.rule == "prune"
    with pytest.raises(SasimError, match="packing.rule"):
        parse_workload(dict(SMALL, packing=dict(alpha=2, gamma=0.5, rule="keep")))


def test_sasim_trained_projection_lstm_loads_and_simulates(tmp_path):
    import numpy as np
    import torch
    from helpers import write_corpus

    from sasim.lm.corpus import load_corpus
    from sasim.lm.loading import load_language_model
    from sasim.lm.presets import TrainConfig
    from sasim.lm.train import train
    from sasim.sim.lstm_array import simulate_lstm
    from sasim.workload.layer_packing import pack_workload
    from sasim.workload.lstm_weights import load_lstm_workload

    data = write_corpus(tmp_path / "d")
    cfg = TrainConfig(emb_size=6, hidden_size=10, num_layers=2, proj_size=4, bptt=10, batch_size=4, dropout_e=0,
                      dropout_h=0.1, dropout_i=0.1, dropout_o=0.1, weight_drop=0.1, lr=3e-3, epochs=1, seed=2)
    train(load_corpus(data), cfg, tmp_path / "p.pt", show_progress=False)
    wl = load_lstm_workload(tmp_path / "p.pt")
    assert [l.w_hr.shape for l in wl.layers] == [(4, 10), (4, 10)]
    packs = pack_workload(wl, make_hw(4, 4), alpha=2, gamma=1.0)
    model, _ = load_language_model(tmp_path / "p.pt")
    from sasim.lm.loading import with_array_weights

    model = with_array_weights(model, packs)
    tokens = torch.randint(0, model.config.vocab_size, (5, 2))
    x = model.encoder(tokens)
    with torch.no_grad():
        for rnn in model.rnns:
            x, _ = rnn(x, None)
    _, out, _ = simulate_lstm(wl, packs, make_hw(4, 4), batch=2, steps=5, inputs=wl.embedding[tokens.numpy()])
    np.testing.assert_allclose(out, x.numpy(), atol=2e-5)
