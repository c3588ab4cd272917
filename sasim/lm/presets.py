"""Named training presets.

``char-ptb`` and ``enwik8`` are the AWD-LSTM character-level settings of Merity et al. (2018),
"An Analysis of Neural Language Modeling at Multiple Scales". ``small`` trains on 2 CPU cores in
about an hour and is the model sasim ships.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from sasim.errors import SasimError


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data and the vocabulary size."""

    emb_size: int
    hidden_size: int
    num_layers: int
    bptt: int
    batch_size: int
    dropout_e: float
    dropout_h: float
    dropout_i: float
    dropout_o: float
    weight_drop: float
    lr: float
    epochs: int
    lr_milestones: list = field(default_factory=list)
    lr_gamma: float = 0.1
    weight_decay: float = 1.2e-6
    clip: float = 0.25
    proj_size: int = 0
    tie_weights: bool = False
    eval_batch_size: int = 10
    max_train_tokens: int = 0  # 0 = the whole training split each epoch
    seed: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "char-ptb": TrainConfig(
        emb_size=128, hidden_size=1000, num_layers=3, bptt=150, batch_size=128,
        dropout_e=0.0, dropout_h=0.25, dropout_i=0.1, dropout_o=0.1, weight_drop=0.5,
        lr=2e-3, epochs=500, lr_milestones=[300, 400],
    ),
    "enwik8": TrainConfig(
        emb_size=400, hidden_size=1840, num_layers=3, bptt=200, batch_size=128,
        dropout_e=0.0, dropout_h=0.01, dropout_i=0.01, dropout_o=0.4, weight_drop=0.2,
        lr=1e-3, epochs=50, lr_milestones=[25, 35],
    ),
    "small": TrainConfig(
        emb_size=64, hidden_size=512, num_layers=2, bptt=100, batch_size=64,
        dropout_e=0.0, dropout_h=0.05, dropout_i=0.05, dropout_o=0.1, weight_drop=0.1,
        lr=3e-3, epochs=8, lr_milestones=[6],
    ),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise SasimError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")

    return copy.deepcopy(PRESETS[name])


def train_config_of(raw: dict, seed: int | None = None, max_train_tokens: int | None = None) -> TrainConfig:
    """The training settings a checkpoint was trained with (the ``small`` preset if it does not say),
    with ``seed`` and ``max_train_tokens`` overridden when given: for retraining and fine-tuning."""
    cfg_dict = (raw.get("train") or {}).get("train_config")
    cfg = TrainConfig(**cfg_dict) if cfg_dict else get_preset("small")
    if seed is not None:
        cfg.seed = seed
    if max_train_tokens:
        cfg.max_train_tokens = max_train_tokens
    return cfg
