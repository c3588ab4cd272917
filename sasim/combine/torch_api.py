"""Column combining for torch LSTM models, shaped like ``torch.nn.utils.prune`` / ``torch.ao.pruning``.

>>> combiner = ColumnCombiner(model, alpha=8, gamma=0.5, rule="prune")
>>> combiner.prepare()        # registers mask buffers (all ones) on every LSTM layer
>>> combiner.step()           # regroup from scratch and combine-prune: masks follow the new groups
>>> ...                       # train; LSTMLayer applies its masks on every forward
>>> packed = combiner.squash()  # bake masks into the weights; return the packed form per layer

With ``pattern=`` (``nm:2:4``, ``block:32x32``, ``unstructured``; :class:`sasim.combine.patterns.Pattern`) the
same object keeps the masks and packed form of another sparsity pattern instead: ``step(sparsity)`` repacks
each masked matrix with it (block pruning drops blocks up to ``sparsity``).

Works on :class:`sasim.lm.model.LSTMLanguageModel` (its layers read ``mask_ih``/``mask_hh``/``mask_hr``
on every forward, so masked weights stay zero through weight drop, weight decay and optimizer steps).
"""

from __future__ import annotations

import numpy as np
import torch

from sasim.combine.column_combine import pack_matrix
from sasim.combine.packed import LayerPacking, PackedMatrix, RowBlocks
from sasim.combine.patterns import Pattern
from sasim.errors import SasimError


class ColumnCombiner:
    """Keeps masks and groups of a model's LSTM matrices in the model's state.

    Parameters
    ----------
    model : LSTMLanguageModel
    alpha, gamma, rule, policy, section, row_cap
        Packing parameters (see :func:`sasim.combine.column_combine.pack_matrix`); ``alpha`` and ``gamma`` may
        be per-layer lists.
    pattern : Pattern or str, optional
        The sparsity pattern (default ``combine``: column combining with the parameters above).
    """

    def __init__(self, model, alpha, gamma, rule="prune", policy="paper", section=256, row_cap=None, pattern=None):
        self.model = model
        n = len(model.rnns)
        self.alpha = list(alpha) if isinstance(alpha, (list, tuple)) else [alpha] * n
        self.gamma = list(gamma) if isinstance(gamma, (list, tuple)) else [gamma] * n
        if len(self.alpha) != n or len(self.gamma) != n:
            raise SasimError(f"per-layer alpha/gamma need {n} entries")
        self.kw = dict(rule=rule, policy=policy, section=section, row_cap=row_cap)
        self.pattern = Pattern.parse(pattern) if isinstance(pattern, str) else (pattern or Pattern("combine"))
        self.packed: list[LayerPacking | None] = [None] * n  # set by step()

    def prepare(self) -> "ColumnCombiner":
        """Register all-ones masks on every LSTM layer (kept ones if already there)."""
        for rnn in self.model.rnns:
            for kind, weight in self._weights(rnn):
                if not hasattr(rnn, f"mask_{kind}"):
                    rnn.register_buffer(f"mask_{kind}", torch.ones_like(weight))
        return self

    @staticmethod
    def _weights(rnn):
        out = [("ih", rnn.weight_ih_l0), ("hh", rnn.weight_hh_l0)]
        if rnn.proj_size:
            out.append(("hr", rnn.weight_hr_l0))
        return out

    def _pack(self, layer: int, matrix: np.ndarray, sparsity: float):
        if self.pattern.kind == "combine":
            return pack_matrix(matrix, self.alpha[layer], self.gamma[layer], **self.kw)
        return self.pattern.pack(matrix, sparsity)

    @torch.no_grad()
    def step(self, sparsity: float = 0.0) -> dict:
        """Regroup each layer's masked matrices from scratch and combine-prune (or repack them with the pattern,
        block pruning to ``sparsity`` of the blocks); update the masks.

        Masks only shrink: a weight outside the current mask stays pruned. Returns per-layer stats.
        """
        stats = {}
        for li, rnn in enumerate(self.model.rnns):
            if not hasattr(rnn, "mask_ih"):
                raise SasimError("call prepare() before step()")
            w_ih = (rnn.weight_ih_l0 * rnn.mask_ih).cpu().numpy()
            w_hh = (rnn.weight_hh_l0 * rnn.mask_hh).cpu().numpy()
            gates = self._pack(li, np.concatenate([w_ih, w_hh], 1), sparsity)
            keep = gates.unpack() != 0
            rnn.mask_ih.copy_(torch.from_numpy(keep[:, : w_ih.shape[1]]).to(rnn.mask_ih))
            rnn.mask_hh.copy_(torch.from_numpy(keep[:, w_ih.shape[1]:]).to(rnn.mask_hh))
            stats[f"layer{li}.gates"] = gates.stats
            proj = None
            if rnn.proj_size:
                w_hr = (rnn.weight_hr_l0 * rnn.mask_hr).cpu().numpy()
                proj = self._pack(li, w_hr, sparsity)
                rnn.mask_hr.copy_(torch.from_numpy(proj.unpack() != 0).to(rnn.mask_hr))
                stats[f"layer{li}.proj"] = proj.stats
            self.packed[li] = LayerPacking(gates, proj)
        return stats

    @torch.no_grad()
    def squash(self) -> list[LayerPacking]:
        """Make the masks permanent (weights times masks) and return the packed form of each layer.

        The packed values are re-read from the current (trained) weights with the frozen groups and
        select indices, so that ``unpack()`` equals the model's weights exactly.
        """
        self.bake_masks(self.model)
        return self.refill(self.model, self.packed)

    @staticmethod
    @torch.no_grad()
    def bake_masks(model) -> None:
        """Multiply each LSTM weight by its mask, in place (weights without a mask are left alone)."""
        for rnn in model.rnns:
            for kind, weight in ColumnCombiner._weights(rnn):
                if hasattr(rnn, f"mask_{kind}"):
                    weight.mul_(getattr(rnn, f"mask_{kind}"))

    @staticmethod
    @torch.no_grad()
    def refill(model, packed_layers: list[LayerPacking]) -> list[LayerPacking]:
        """The packed layers with their values re-read from ``model``'s current weights (groups, select
        indices and zeros kept): after further training with frozen masks."""
        out = []
        for rnn, layer in zip(model.rnns, packed_layers):
            w = torch.cat([rnn.weight_ih_l0, rnn.weight_hh_l0], 1).cpu().numpy()
            proj = layer.projection
            out.append(LayerPacking(_refill(layer.gates, w),
                                    None if proj is None else _refill(proj, rnn.weight_hr_l0.detach().cpu().numpy())))
        return out


def _refill(packed: PackedMatrix | RowBlocks, weight: np.ndarray) -> PackedMatrix | RowBlocks:
    """The same groups and select indices, with values taken from ``weight`` (masked cells stay zero)."""
    if isinstance(packed, RowBlocks):
        return RowBlocks([_refill(b, weight[r0:r0 + b.shape[0]]) for b, r0 in zip(packed.blocks, packed.row_starts)],
                         nonzeros_before=packed.nonzeros_before, pattern_stats=dict(packed.pattern_stats))
    cols = packed.selected_columns()
    rows = np.arange(weight.shape[0])[:, None]
    values = np.where(packed.values != 0, weight[rows, cols], 0).astype(np.float32)
    return PackedMatrix(values=values, select=packed.select.copy(), group_cols=packed.group_cols.copy(),
                        shape=packed.shape, stats=dict(packed.stats))
