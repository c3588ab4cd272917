"""Checkpoints load safely in every supported layout; the array computes the LSTM torch computes."""

import numpy as np
import pytest
import torch
from conftest import make_hw

from sasim.combine.packed import LayerPacking, PackedMatrix
from sasim.errors import SasimError
from sasim.sim.lstm_array import simulate_lstm
from sasim.workload.layer_packing import pack_workload
from sasim.workload.lstm_weights import load_lstm_workload


def dense_packings(wl):
    return [LayerPacking(PackedMatrix.from_dense(l.combined), None if l.w_hr is None else PackedMatrix.from_dense(l.w_hr))
            for l in wl.layers]


@pytest.mark.parametrize("proj", [0, 5])
def test_array_lstm_equals_torch(tmp_path, proj):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 9, num_layers=2, proj_size=proj)
    torch.save(lstm.state_dict(), tmp_path / "l.pt")
    wl = load_lstm_workload(tmp_path / "l.pt")
    x = np.random.default_rng(1).standard_normal((4, 3, 6)).astype(np.float32)
    hw = make_hw(4, 4)
    parts, out, _ = simulate_lstm(wl, dense_packings(wl), hw, batch=3, steps=4, inputs=x)
    ref, _ = lstm(torch.from_numpy(x))
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-5)
    ana, _, _ = simulate_lstm(wl, dense_packings(wl), hw, batch=3, steps=4, mode="analytic")
    assert [p.counts for p in parts] == [p.counts for p in ana]
    assert len(parts) == (4 if proj else 2)


def test_awd_layout_prefers_raw_and_tolerates_alias(tmp_path):
    w_raw = torch.randn(16, 4)
    sd = {"encoder.weight": torch.randn(10, 3),
          "rnns.0.module.weight_ih_l0": torch.randn(16, 3), "rnns.0.module.weight_hh_l0_raw": w_raw,
          "rnns.0.module.weight_hh_l0": torch.zeros(16, 4), "rnns.0.module.bias_ih_l0": torch.zeros(16),
          "rnns.0.module.bias_hh_l0": torch.zeros(16), "decoder.weight": torch.randn(10, 4)}
    torch.save(sd, tmp_path / "awd.pt")
    wl = load_lstm_workload(tmp_path / "awd.pt")
    assert wl.layout == "awd"
    np.testing.assert_array_equal(wl.layers[0].w_hh, w_raw.numpy())
    del sd["rnns.0.module.weight_hh_l0_raw"]
    torch.save(sd, tmp_path / "awd2.pt")
    assert load_lstm_workload(tmp_path / "awd2.pt").layers[0].w_hh.shape == (16, 4)


class Whole(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 4)


@pytest.mark.parametrize("make,match", [
    (lambda p: torch.save([Whole()], p), "never unpickles|state_dict"),
    (lambda p: torch.save({"fc.weight": torch.randn(3, 3)}, p), "no LSTM weights"),
    (lambda p: p.write_bytes(b"not a checkpoint"), "not a readable"),
    (lambda p: torch.save({"rnn.weight_ih_l0": torch.full((8, 2), float("nan")),
                           "rnn.weight_hh_l0": torch.randn(8, 2)}, p), "NaN"),
    (lambda p: torch.save({"rnn.weight_ih_l0": torch.randn(7, 2), "rnn.weight_hh_l0": torch.randn(7, 2)}, p),
     "multiple of 4"),
    (lambda p: torch.save({"rnn.weight_ih_l0": torch.randn(8, 2), "rnn.weight_hh_l0": torch.randn(8, 3)}, p),
     "expected"),
])
def test_bad_checkpoints(tmp_path, make, match):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(SasimError, match=match):
        load_lstm_workload(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(SasimError, match="not found"):
        load_lstm_workload(tmp_path / "missing.pt")


def test_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 6)
    save_file({k: v.contiguous() for k, v in lstm.state_dict().items()}, str(tmp_path / "l.safetensors"))
    wl = load_lstm_workload(tmp_path / "l.safetensors")
    np.testing.assert_array_equal(wl.layers[0].w_hh, lstm.weight_hh_l0.detach().numpy())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(SasimError, match="safetensors"):
        load_lstm_workload(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("per_gate,mix", [(False, True), (True, True), (False, False), (True, False)])
def test_packed_lstm_on_array_equals_torch_with_pruned_weights(tmp_path, per_gate, mix):
    """Across gates or per gate, mixing W_ih/W_hh or not: the array computes torch's LSTM with the pruned weights."""
    torch.manual_seed(4)
    lstm = torch.nn.LSTM(8, 12)
    with torch.no_grad():
        for p in (lstm.weight_ih_l0, lstm.weight_hh_l0):
            p.mul_((torch.rand_like(p) < 0.3).float())
    torch.save(lstm.state_dict(), tmp_path / "l.pt")
    wl = load_lstm_workload(tmp_path / "l.pt")
    hw = make_hw(8, 8)
    packs = pack_workload(wl, hw, alpha=4, gamma=1.0, per_gate=per_gate, mix_ih_hh=mix)
    pruned = packs[0].gates.unpack()
    if per_gate:
        assert len(packs[0].gates.blocks) == 4
    if not mix:
        blocks = packs[0].gates.blocks if per_gate else [packs[0].gates]
        for g in (g for b in blocks for g in b.groups()):
            assert all(c < 8 for c in g) or all(c >= 8 for c in g)
    x = np.random.default_rng(2).standard_normal((2, 3, 8)).astype(np.float32)
    parts, out, _ = simulate_lstm(wl, packs, hw, batch=3, steps=2, inputs=x)
    ana, _, _ = simulate_lstm(wl, packs, hw, batch=3, steps=2, mode="analytic")
    assert [p.counts for p in parts] == [p.counts for p in ana]
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(pruned[:, :8]))
        lstm.weight_hh_l0.copy_(torch.from_numpy(pruned[:, 8:]))
    ref, _ = lstm(torch.from_numpy(x))
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-5)
