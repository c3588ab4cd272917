"""Knowledge distillation from a dense teacher while retraining a pruned student (Hinton et al. 2015).

The student's loss mixes the usual cross-entropy on the next character with the KL divergence from the
teacher's predicted distribution (temperature 1):

    loss = (1 - w) * CE(student, targets) + w * KL(teacher || student)

The teacher runs in eval mode (no dropout), with its own hidden state carried across BPTT chunks exactly as the
student's is, so both see the same context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sasim.errors import SasimError
from sasim.lm.loading import load_language_model
from sasim.lm.model import detach_state


class Distiller:
    """A training loss for :func:`sasim.lm.fit.fit` that distills from ``teacher``.

    Parameters
    ----------
    teacher : LSTMLanguageModel
        The dense model to learn from (same vocabulary as the student; not trained).
    weight : float
        Share ``w`` of the KL term, in [0, 1]; 0 is plain cross-entropy.
    """

    def __init__(self, teacher, weight: float):
        if not 0.0 <= weight <= 1.0:
            raise SasimError(f"distill_weight must lie in [0, 1], got {weight}", param="distill_weight")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.weight = weight
        self.state = None

    def reset(self) -> None:
        """Forget the teacher's hidden state (call at the start of every epoch, as the student's is reset)."""
        self.state = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss to minimize, cross-entropy to report)`` for one BPTT chunk ``x -> y``."""
        vocab = logits.size(-1)
        flat = logits.view(-1, vocab)
        ce = F.cross_entropy(flat, y.reshape(-1))
        with torch.no_grad():
            teacher_logits, state = self.teacher(x, self.state)
            self.state = detach_state(state)
            target = F.log_softmax(teacher_logits.view(-1, vocab), dim=-1)
        kl = F.kl_div(F.log_softmax(flat, dim=-1), target, reduction="batchmean", log_target=True)
        return (1.0 - self.weight) * ce + self.weight * kl, ce


def load_teacher(path, student_raw: dict, device):
    """The dense teacher checkpoint at ``path``, checked against the student's vocabulary, on ``device``."""

    teacher, raw = load_language_model(path)
    if raw.get("packing") or raw.get("quantization"):
        raise SasimError(f"{path}: the teacher should be the dense float model the student was pruned from, "
                         "not a packed or quantized checkpoint")
    if raw.get("vocab") != student_raw.get("vocab"):
        raise SasimError(f"{path}: the teacher's vocabulary differs from the student's; distill from the dense "
                         "model the student was pruned from")
    return teacher.to(device)
