"""``sasim quantize``: calibrate (and optionally fine-tune quantization-aware) a dense or packed model, score
it with the array's integer arithmetic, and save it as a quantized checkpoint."""

from __future__ import annotations

import time

import torch

from sasim.checks import check_float, check_int, check_optional_int
from sasim.combine.torch_api import ColumnCombiner
from sasim.errors import SasimError
from sasim.lm.corpus import encode_with_vocab, load_corpus
from sasim.lm.distributed import current, local_device
from sasim.lm.loading import evaluate_model, load_language_model
from sasim.lm.presets import train_config_of
from sasim.lm.prune import packed_state
from sasim.lm.train import batchify, resolve_device
from sasim.quant.checkpoint import quantization_meta
from sasim.quant.fixed_point_lstm import QuantConfig, calibrate_lstm, calibration_batch, layer_scales, score_quantized
from sasim.quant.qat import quantization_aware_finetune
from sasim.workload.checkpoint import carried_metadata, save_checkpoint
from sasim.workload.layer_packing import stored_packings
from sasim.workload.lstm_weights import load_lstm_workload


def quantize_checkpoint(weights, data_dir, cfg: QuantConfig, split: str = "valid", calib_tokens: int = 20_000,
                        eval_tokens: int | None = None, qat_epochs: int = 0, qat_lr: float | None = None,
                        max_train_tokens: int | None = None, device: str = "cpu", seed: int = 1, out=None,
                        show_progress: bool = True) -> dict:
    """Quantize the LSTM layers of ``weights`` and score them on ``split``.

    Parameters
    ----------
    cfg : QuantConfig
        Widths, calibration and vector-unit precision.
    qat_epochs : int
        0: post-training quantization. Otherwise fine-tune quantization-aware (straight-through estimator)
        for this many epochs of ``max_train_tokens`` each (:func:`sasim.quant.qat.quantization_aware_finetune`).
    out : path, optional
        Write the quantized checkpoint here (packed checkpoints keep their groups, with refreshed values).

    Returns
    -------
    dict
        ``float32`` and ``quantized`` metrics on the same tokens (``float32``: the input model, before any
        fine-tuning), ``layers``, ``tokens``, ``split``, ``qat`` (summary or None), ``seconds``.
    """

    check_int("qat_epochs", qat_epochs, 0)
    check_int("calib_tokens", calib_tokens, 8)
    check_optional_int("eval_tokens", eval_tokens, 2)
    if qat_lr is not None:
        check_float("qat_lr", qat_lr, 0.0, low_open=True)
    t0 = time.time()
    torch.manual_seed(seed)
    model, raw = load_language_model(weights)
    if raw.get("quantization"):
        raise SasimError(f"{weights} is already quantized; quantize its float checkpoint instead")
    corpus = load_corpus(data_dir, level=raw.get("level"))
    train_ids = encode_with_vocab(corpus, raw["vocab"])["train"]
    # calibrate first: an accumulator that can overflow or NaN in the calibration data is refused before any
    # evaluation or training is spent; QAT trains with these scales
    qlayers = calibrate_lstm(model, calibration_batch(train_ids, calib_tokens), cfg)
    base = evaluate_model(model, raw, data_dir, split, max_tokens=eval_tokens, corpus=corpus)
    qat = None
    if qat_epochs:

        train_cfg = train_config_of(raw, seed, max_train_tokens)
        dev = local_device(resolve_device(device), current())
        model.to(dev)
        qlayers, qat = quantization_aware_finetune(
            model, batchify(train_ids, train_cfg.batch_size, dev), None, train_cfg, cfg, layer_scales(qlayers), qat_epochs,
            qat_lr, show_progress=show_progress, log=print if show_progress else (lambda *_: None))
        model.cpu().eval()
    scored = score_quantized(model, raw, cfg, data_dir, split, calib_tokens, eval_tokens, qlayers=qlayers, corpus=corpus)
    scored.update(float32=base, qat=qat, seconds=time.time() - t0)
    if out is not None and current().is_main:  # under torchrun rank 0 alone writes
        _save(out, model, raw, weights, cfg, scored["layers"], qat)
    return scored


def _save(out, model, raw, weights, cfg, qlayers, qat) -> None:
    state = model.state_dict()
    if raw.get("packing"):

        state = packed_state(model, ColumnCombiner.refill(model, stored_packings(load_lstm_workload(weights))))
    meta = carried_metadata(raw)
    meta["quantization"] = quantization_meta(cfg, qlayers, qat=qat, source=str(weights))
    save_checkpoint(out, state, raw["model_config"], raw["vocab"], **meta)
