"""The application layer: each job that the command line (and the report scripts) run, written once.

Jobs here compose the layers below (checkpoint format, packing, simulation, language models, quantization):

* :func:`sasim.api.evaluate.evaluate` (spec :class:`~sasim.api.evaluate.Evaluate`): score a checkpoint (float or
  quantized).
* :func:`sasim.api.combine.combine` (spec :class:`~sasim.api.combine.Combine`): pack a checkpoint's matrices with one
  sparsity pattern.
* :func:`sasim.api.prune.prune` (spec :class:`~sasim.api.prune.Prune`): prune, combine and retrain (optionally
  quantization-aware); :func:`sasim.api.prune.rehearse`: the same pruning events without training.
* :func:`sasim.api.train.train_model`, :func:`~sasim.api.train.finetune`, :func:`~sasim.api.train.quantize`
  (specs :class:`~sasim.api.train.Train`, :class:`~sasim.api.train.Finetune`, :class:`~sasim.api.train.Quantize`).
* :func:`sasim.api.simulate.run_checkpoint`, :func:`~sasim.api.simulate.run_workload`,
  :func:`~sasim.api.simulate.run_gemm` (specs ``RunCheckpoint``, ``RunWorkload``, ``Gemm``).
* :func:`sasim.api.ship.ship` (spec :class:`~sasim.api.ship.Ship`): write a checkpoint to ship, scored with its
  stored weights.

Nothing below this package imports it (``lint-imports`` holds the layers; see ``pyproject.toml``).
"""
