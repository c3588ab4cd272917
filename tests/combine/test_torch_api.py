"""The torch-style combining API: masks hold through training, never regrow, and squash is exact."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sasim.combine.torch_api import ColumnCombiner
from sasim.lm.model import LSTMLanguageModel, ModelConfig


def small_model(proj=0):
    torch.manual_seed(0)
    return LSTMLanguageModel(ModelConfig(vocab_size=11, emb_size=8, hidden_size=12, num_layers=2, proj_size=proj,
                                         weight_drop=0.3, dropout_i=0.1, dropout_h=0.1, dropout_o=0.1))


def train_steps(model, n=5):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    model.train()
    for _ in range(n):
        x = torch.randint(0, 11, (7, 3))
        logits, _ = model(x)
        loss = F.cross_entropy(logits.view(-1, 11), torch.randint(0, 11, (21,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_masks_hold_and_never_regrow():
    model = small_model(proj=5)
    # start sparse: magnitude-prune half of each matrix through the masks
    combiner = ColumnCombiner(model, alpha=4, gamma=0.5).prepare()
    for rnn in model.rnns:
        for kind, w in combiner._weights(rnn):
            getattr(rnn, f"mask_{kind}").copy_((w.abs() > w.abs().median()).float())
    combiner.step()
    before = {k: v.clone() for k, v in model.state_dict().items() if "mask" in k}
    train_steps(model)
    combiner.step()
    for k, v in model.state_dict().items():
        if "mask" in k:
            assert torch.all(v <= before[k]), f"{k} regrew"
    packed = combiner.squash()
    for rnn, layer in zip(model.rnns, packed):
        w = torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], 1).detach().numpy()
        np.testing.assert_array_equal(layer.gates.unpack(), w)
        np.testing.assert_array_equal(layer.projection.unpack(), rnn.weight_hr_l0.detach().numpy())
        assert torch.all((rnn.weight_hh_l0 != 0) <= (rnn.mask_hh != 0))


def test_masked_weights_do_not_act_in_forward():
    model = small_model()
    combiner = ColumnCombiner(model, alpha=2, gamma=1.0).prepare()
    combiner.step()
    model.eval()
    x = torch.randint(0, 11, (5, 2))
    out1, _ = model(x)
    with torch.no_grad():  # changing masked-out weights must not change the output
        for rnn in model.rnns:
            rnn.weight_hh_l0.add_((1 - rnn.mask_hh) * 5.0)
    out2, _ = model(x)
    torch.testing.assert_close(out1, out2)


def test_spill_with_gamma_zero_loses_nothing():
    model = small_model()
    combiner = ColumnCombiner(model, alpha=4, gamma=0.0, rule="spill").prepare()
    stats = combiner.step()
    assert all(s["pruned_fraction"] == 0 for s in stats.values())
    assert all(torch.all(rnn.mask_ih == 1) for rnn in model.rnns)


@pytest.mark.parametrize("pattern", ["nm:2:4", "block:4x4", "unstructured"])
def test_pattern_masks_never_regrow_and_keep_their_structure(pattern):
    from sasim.combine.patterns import Pattern
    from sasim.lm.prune import magnitude_prune_masks

    model = small_model(proj=0)
    combiner = ColumnCombiner(model, alpha=4, gamma=0.5, pattern=pattern).prepare()
    shape = Pattern.parse(pattern)
    previous = None
    for event, sparsity in enumerate((0.25, 0.5, 0.75)):
        if shape.kind == "unstructured":
            magnitude_prune_masks(model.rnns, [sparsity] * 2)
        combiner.step(sparsity if shape.kind == "block" else 0.0)
        masks = {k: v.clone() for k, v in model.state_dict().items() if "mask" in k}
        if previous is not None:
            assert all(torch.all(masks[k] <= previous[k]) for k in masks), "a mask regrew"
        previous = masks
        train_steps(model)
    packed = combiner.squash()
    for rnn, layer in zip(model.rnns, packed):
        w = torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], 1).detach().numpy()
        np.testing.assert_array_equal(layer.gates.unpack(), w)  # squash is exact in every pattern
        if shape.kind == "nm":
            for c0 in range(0, w.shape[1], 4):
                assert (np.count_nonzero(w[:, c0:c0 + 4], axis=1) <= 2).all()
        elif shape.kind == "block":
            for r0 in range(0, w.shape[0], 4):
                for c0 in range(0, w.shape[1], 4):
                    alive = np.count_nonzero(w[r0:r0 + 4, c0:c0 + 4])
                    assert alive in (0, 16)  # whole blocks, kept or pruned
            assert abs(1 - np.count_nonzero(w) / w.size - 0.75) < 0.05
        else:
            assert abs(1 - np.count_nonzero(w) / w.size - 0.75) < 0.01
