"""The training jobs' typed specs refuse bad values with errors that name the parameter (the CLI turns the name into
its flag), and build what the command line would run."""

import pytest

from sasim.api.prune import Prune
from sasim.api.train import Finetune, Quantize, Train
from sasim.errors import SasimError
from sasim.lm.presets import get_preset
from sasim.quant.fixed_point_lstm import QuantConfig


@pytest.mark.parametrize("make, param, message", [
    (lambda: Train(data="d", out="o", preset="huge"), "preset", "preset must be one of"),
    (lambda: Train(data="d", out="o", epochs=0), "epochs", "epochs must be"),
    (lambda: Train(data="d", out="o", precision="fp8"), "precision", "precision must be one of"),
    (lambda: Finetune(weights="w", data="d", out="o", epochs=2, average_from=3), "average_from",
     "average_from must be an epoch between 1 and epochs (2)"),
    (lambda: Finetune(weights="w", data="d", out="o", distill_weight=2), "distill_weight", "distill_weight must"),
    (lambda: Prune(weights="w", alphas=(16,), gammas=(0.5,), mux_fanin=8), None, "16"),
    (lambda: Prune(weights="w", alphas=(8,), gammas=(0.5,), target=1.0), "target_sparsity", "target_sparsity"),
    (lambda: Quantize(weights="w", data="d", quant=QuantConfig(weight_bits=8, act_bits=8), split="train"), "split",
     "split must be one of"),
])
def test_specs_refuse_bad_values_naming_the_parameter(make, param, message):
    with pytest.raises(SasimError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        make()
    if param:
        assert err.value.param == param


def test_train_spec_overrides_only_what_is_given():
    cfg = Train(data="d", out="o", preset="char-ptb", epochs=3, max_train_tokens=1000).config()
    paper = get_preset("char-ptb")
    assert cfg.epochs == 3 and cfg.max_train_tokens == 1000
    assert (cfg.hidden_size, cfg.batch_size, cfg.bptt, cfg.lr, cfg.seed) == (
        paper.hidden_size, paper.batch_size, paper.bptt, paper.lr, paper.seed)
    with pytest.raises(Exception):
        Train(data="d", out="o").epochs = 2  # frozen
