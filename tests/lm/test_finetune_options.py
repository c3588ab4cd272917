"""Fine-tuning options: distillation from a dense teacher, dropout scaling, and weight averaging."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from sasim.errors import SasimError
from sasim.lm.distill import Distiller, load_teacher
from sasim.lm.loading import load_language_model


@pytest.fixture(scope="module")
def packed(dense, tmp_path_factory):
    data, ckpt = dense
    out = tmp_path_factory.mktemp("ft") / "packed.pt"
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "prune", "--weights", str(ckpt), "--data", str(data),
                          "--alpha", "4", "--gamma", "1", "--target-sparsity", "0.8", "--epochs", "1", "--out", str(out)],
                         capture_output=True, text=True, env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def kl_by_hand(teacher_logits, student_logits):
    """Mean over positions of sum_v p_t(v) (log p_t(v) - log p_s(v)), written out."""
    p_t = torch.softmax(teacher_logits, -1)
    return (p_t * (torch.log(p_t) - torch.log(torch.softmax(student_logits, -1)))).sum(-1).mean()


def test_distiller_mixes_cross_entropy_and_kl_to_the_teacher(dense):
    _, ckpt = dense
    teacher, _ = load_language_model(ckpt)
    torch.manual_seed(0)
    x, y = torch.randint(0, teacher.config.vocab_size, (2, 7, 3))
    student_logits = torch.randn(7, 3, teacher.config.vocab_size)
    with torch.no_grad():
        teacher_logits, _ = teacher.eval()(x)
    ce = F.cross_entropy(student_logits.view(-1, student_logits.size(-1)), y.reshape(-1))
    kl = kl_by_hand(teacher_logits, student_logits)
    loss, reported = Distiller(teacher, 0.3)(x, y, student_logits)
    assert reported == ce and torch.isclose(loss, 0.7 * ce + 0.3 * kl, rtol=1e-5)
    # the teacher's state is carried to the next chunk, as the student's is, and reset starts it afresh
    d = Distiller(teacher, 1.0)
    d(x, y, student_logits)
    carried, _ = d(x, y, teacher_logits)
    assert carried > 1e-4  # the second chunk's teacher saw the first: its logits differ from a fresh pass
    d.reset()
    fresh, _ = d(x, y, teacher_logits)
    assert fresh.abs() < 1e-5  # a student that predicts what the teacher does has KL 0
    with pytest.raises(SasimError, match="distill_weight"):
        Distiller(teacher, 1.5)


def test_teacher_must_be_the_dense_model_with_the_students_vocabulary(dense, packed):
    _, ckpt = dense
    raw = torch.load(packed, weights_only=True)
    load_teacher(ckpt, raw, "cpu")
    with pytest.raises(SasimError, match="packed or quantized"):
        load_teacher(packed, raw, "cpu")
    with pytest.raises(SasimError, match="vocabulary differs"):
        load_teacher(ckpt, {**raw, "vocab": list(reversed(raw["vocab"]))}, "cpu")


def test_averaging_saves_the_mean_of_the_steps_and_dropout_scaling_is_not_saved(dense, packed, tmp_path, monkeypatch):
    import sasim.lm.finetune as finetune
    import sasim.lm.fit as fit

    data, ckpt = dense
    snapshots, rates = [], []
    real_train_epoch = fit.train_epoch

    def spying_train_epoch(model, *args, step_hook=None, **kwargs):
        rates.append((model.config.dropout_o, model.rnns[0].weight_drop))

        def hook(m):
            if step_hook is not None:
                step_hook(m)
            snapshots.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        snapshots.append("epoch")
        return real_train_epoch(model, *args, step_hook=hook, **kwargs)

    monkeypatch.setattr(fit, "train_epoch", spying_train_epoch)  # the one training loop runs every epoch through it
    out = tmp_path / "avg.pt"
    res = finetune.finetune_packed(packed, data, out, epochs=2, lr=3e-3, average_from=2, dropout_scale=0.5,
                                   teacher=ckpt, show_progress=False)
    last_epoch = snapshots[snapshots.index("epoch", 1) + 1:]
    assert len(last_epoch) > 1
    source, _ = load_language_model(packed)
    assert rates == [(source.config.dropout_o * 0.5, source.rnns[0].weight_drop * 0.5)] * 2
    saved, raw = load_language_model(out)
    assert saved.config.dropout_o == source.config.dropout_o and saved.rnns[0].weight_drop == source.rnns[0].weight_drop
    for name in ("decoder.weight", "rnns.0.weight_hh_l0", "rnns.1.weight_ih_l0"):
        mean = torch.stack([s[name] for s in last_epoch]).mean(0)
        mask = raw["state_dict"].get(name.replace("weight_", "mask_").replace("_l0", ""))
        expected = mean if mask is None else mean * mask
        got = saved.state_dict()[name] * (1 if mask is None else mask)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    tuned = raw["finetune"][-1]
    assert tuned["average_from"] == 2 and tuned["dropout_scale"] == 0.5 and tuned["distill_weight"] == 0.5
    assert "valid_loss_averaged" in tuned["curve"][1] and "valid_loss_averaged" not in tuned["curve"][0]
    assert res["eval"]["test"]["bpc"] == tuned["eval"]["test"]


@pytest.mark.parametrize("flags, message", [
    (["--average-from", "3"], "--average-from must be an epoch between 1 and epochs (2)"),
    (["--dropout-scale", "-1"], "--dropout-scale must be >= 0"),
    (["--distill-weight", "2"], "--distill-weight must lie in [0, 1]"),
])
def test_bad_finetune_options_get_one_clear_error(dense, packed, tmp_path, flags, message):
    data, ckpt = dense
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "finetune", "--weights", str(packed), "--data", str(data),
                          "--epochs", "2", "--distill", str(ckpt), *flags, "--out", str(tmp_path / "x.pt")],
                         capture_output=True, text=True, env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
