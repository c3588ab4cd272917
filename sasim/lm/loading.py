"""Build a runnable language model from any supported checkpoint and score it."""

from __future__ import annotations

import torch

from sasim.checks import check_int, check_optional_int
from sasim.errors import SasimError
from sasim.lm.corpus import encode_with_vocab, load_corpus
from sasim.lm.evaluate import evaluate_loss, metrics_from_loss
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.lm.train import batchify
from sasim.workload.checkpoint import load_raw, to_sasim_state_dict


def load_language_model(path) -> tuple[LSTMLanguageModel, dict]:
    """Load a sasim checkpoint as an eval-mode :class:`LSTMLanguageModel` (float32) and its metadata."""
    raw = load_raw(path)
    state, layout = to_sasim_state_dict(raw)
    if layout != "sasim":
        raise SasimError(
            f"{path} is a {layout} state_dict without vocabulary; evaluation needs a sasim checkpoint "
            "(train with `sasim train`, or simulate it without --data)"
        )
    if not raw["model_config"]:
        raise SasimError(f"{path} holds weights only (no model_config or vocabulary); evaluation needs a language "
                         "model checkpoint written by sasim train / prune, or simulate it without --data")
    cfg = ModelConfig(**raw["model_config"])
    model = LSTMLanguageModel(cfg)
    # the packed form (``*.packed_values/select/groups``) is read by the simulator, not by torch
    state = {k: v.float() for k, v in state.items() if ".packed_" not in k}
    for layer, rnn in enumerate(model.rnns):
        for kind in ("ih", "hh", "hr"):
            key = f"rnns.{layer}.mask_{kind}"
            if key in state:
                rnn.register_buffer(f"mask_{kind}", torch.zeros_like(state[key]))
    expected = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (model_config says {tuple(expected[k].shape)})" for k, v in state.items()
             if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise SasimError(f"{path}: {len(wrong)} tensor(s) disagree with model_config: {'; '.join(wrong[:3])}"
                         f"{'; ...' if len(wrong) > 3 else ''}; the sizes in model_config must be those of the tensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (cfg.tie_weights and k == "decoder.weight")]
    if missing or unexpected:
        raise SasimError(f"{path} does not match its model_config (missing {missing[:4]}, unexpected {unexpected[:4]})")
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise SasimError(f"{path}: tensor {name} holds NaN or Inf values; retrain or repair the checkpoint")
    model.eval()
    return model, raw


def with_array_weights(model: LSTMLanguageModel, packings) -> LSTMLanguageModel:
    """Put the weights the array holds (the unpacked packed matrices) into ``model``'s LSTM layers.

    Masks are dropped: the weights themselves now carry the zeros.
    """
    with torch.no_grad():
        for rnn, packing in zip(model.rnns, packings):
            dense = torch.from_numpy(packing.gates.unpack())
            rnn.weight_ih_l0.copy_(dense[:, : rnn.input_size])
            rnn.weight_hh_l0.copy_(dense[:, rnn.input_size:])
            if packing.projection is not None:
                rnn.weight_hr_l0.copy_(torch.from_numpy(packing.projection.unpack()))
            for kind in ("ih", "hh", "hr"):
                if hasattr(rnn, f"mask_{kind}"):
                    delattr(rnn, f"mask_{kind}")
    return model


def evaluate_model(model, raw: dict, data_dir, split: str = "test", batch_size: int = 10, bptt: int = 100,
                   max_tokens: int | None = None, corpus=None) -> dict:
    """Score an already built model on a corpus split (vocabulary checked against the checkpoint's).

    ``max_tokens`` scores only the split's first tokens (a quick estimate; the result says so).
    ``corpus``: the already loaded corpus of ``data_dir``, to score several splits without rereading it.
    """

    check_optional_int("max_tokens", max_tokens, 2)
    check_int("batch_size", batch_size, 1)
    check_int("bptt", bptt, 1)
    if corpus is None:
        corpus = load_corpus(data_dir, level=raw.get("level"))
    ids = encode_with_vocab(corpus, raw["vocab"])[split]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    data = batchify(ids, batch_size)
    loss = evaluate_loss(model, data, bptt)
    result = metrics_from_loss(loss, raw.get("level", corpus.level))
    result.update(tokens=int((data.size(0) - 1) * data.size(1)), split=split + (f"[:{max_tokens}]" if max_tokens else ""))
    return result
