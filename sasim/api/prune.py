"""Job: prune, combine and retrain a dense checkpoint (optionally quantization-aware), save it scored."""

from __future__ import annotations

from pathlib import Path

from sasim.combine.torch_api import ColumnCombiner
from sasim.lm.distributed import current
from sasim.lm.loading import evaluate_model
from sasim.lm.prune import (density_report, load_dense_for_pruning, packing_meta, prune_combine_retrain,
                            save_scored_packed)
from sasim.quant.checkpoint import evaluate_quantized_checkpoint, quantization_meta
from sasim.quant.lstm import calibrate_lstm, calibration_batch, layer_scales
from sasim.quant.qat import quantization_aware_finetune
from sasim.lm.presets import train_config_of
from sasim.lm.train import retraining_data
from sasim.report.json_report import write_json
from sasim.report.provenance import run_header
from sasim.workload.checkpoint import carried_metadata


def prune_checkpoint(weights, data_dir, out, alphas, gammas, rule="prune", policy="paper", section=256, row_cap=None,
                     target=0.9, epochs=2, events=None, max_train_tokens=None, device="cpu", seed=1,
                     splits=("valid", "test"), show_progress=True, qat=None, qat_epochs=1, validate=True,
                     resume: bool = False) -> dict:
    """Prune, combine and retrain a dense sasim checkpoint; save the packed checkpoint and its JSON.

    With ``qat`` (a :class:`sasim.quant.lstm.QuantConfig`), the retrained model is then fine-tuned
    quantization-aware for ``qat_epochs`` with its masks and groups frozen, and saved as a quantized
    packed checkpoint (scored with its integer arithmetic).

    ``validate`` False skips the per-epoch validation (a sweep scores each point on its own split anyway).

    After every retraining epoch the run's state is saved to ``OUT.latest.pt`` (atomically); with ``resume``
    a killed run continues from there and ends with the same weights, groups and scores as an uninterrupted one.

    Returns the summary (events, curve, density, and the accuracy on ``splits`` with the saved weights).
    """
    model, raw, alphas, gammas = load_dense_for_pruning(weights, alphas, gammas)
    cfg = train_config_of(raw, seed, max_train_tokens)
    data = retraining_data(model, raw, data_dir, cfg, device, seed, validate)
    train_data, valid_data, ids, dev = data["train"], data["valid"], data["ids"], data["device"]
    log = print if show_progress else (lambda *_: None)
    progress = Path(out).with_name(Path(out).stem + ".latest.pt")
    packed, summary = prune_combine_retrain(model, train_data, valid_data, cfg, alphas, gammas, rule, policy, section,
                                            target, epochs, events, row_cap, show_progress, log=log,
                                            progress_path=progress, resume=resume)
    quant_meta = {}
    if qat is not None:
        scales = layer_scales(calibrate_lstm(model, calibration_batch(ids["train"], 20_000).to(dev), qat))
        qlayers, qat_summary = quantization_aware_finetune(model, train_data, valid_data, cfg, qat, scales, qat_epochs,
                                                           show_progress=show_progress, log=log)
        packed = ColumnCombiner.refill(model, packed)  # the packed values follow the fine-tuned weights
        quant_meta = {"quantization": quantization_meta(qat, qlayers, qat=qat_summary)}
        summary["qat"] = qat_summary
    model.cpu().eval()
    params = dict(alpha=alphas[0] if len(set(alphas)) == 1 else alphas,
                  gamma=gammas[0] if len(set(gammas)) == 1 else gammas, rule=rule, policy=policy, section=section,
                  row_cap=row_cap, target_sparsity=target, epochs=epochs)
    summary["density"] = density_report(model)
    meta = carried_metadata(raw)
    meta.update(packing=packing_meta(packed, params), prune=summary, **quant_meta)
    ranks = current()
    results = None
    if ranks.is_main:  # under torchrun every rank holds the same packed model; rank 0 scores and writes it
        results = save_scored_packed(out, model, packed, raw, meta, summary, data_dir, data["corpus"], splits,
                                     evaluate=evaluate_quantized_checkpoint if qat is not None else evaluate_model)
        write_json(Path(out).with_suffix(".json"), run_header(packing=params, prune=summary, source=str(weights),
                                                              data=str(data_dir)))
    ranks.barrier()
    return {**summary, "eval": results}
