"""Corpora, training, evaluation and checkpoints of the language-model side."""

import math
import subprocess
import sys

import pytest
import shipped_eval
import torch
from conftest import REPO, SHARED_DATA
from helpers import write_corpus

from sasim.api.evaluate import Evaluate, evaluate
from sasim.errors import SasimError
from sasim.lm.corpus import encode_with_vocab, load_corpus
from sasim.lm.loading import load_language_model


def test_awd_tokenisation_and_vocab_order(tmp_path):
    (tmp_path / "train.txt").write_text(" a b \n b c \n")
    (tmp_path / "valid.txt").write_text(" d \n")
    (tmp_path / "test.txt").write_text(" a \n e \n")
    c = load_corpus(tmp_path)
    assert c.vocab == ["a", "b", "<eos>", "c", "d", "e"]
    assert c.splits["train"].tolist() == [0, 1, 2, 1, 3, 2]
    assert c.level == "char"
    (tmp_path / "test.txt").write_text(" apple \n")
    assert load_corpus(tmp_path).level == "word"


def test_missing_split_is_reported(tmp_path):
    (tmp_path / "train.txt").write_text("a\n")
    with pytest.raises(SasimError, match="valid.txt, test.txt"):
        load_corpus(tmp_path)
    with pytest.raises(SasimError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_symbols_outside_vocabulary_are_reported(tmp_path):
    c = load_corpus(write_corpus(tmp_path / "c", alphabet="xyz_"))
    with pytest.raises(SasimError, match="outside the model's vocabulary"):
        encode_with_vocab(c, ["a", "b", "<eos>"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    data = write_corpus(root / "data")
    out = root / "m.pt"
    cmd = [sys.executable, "-m", "sasim.cli", "train", "--data", str(data), "--preset", "small", "--epochs", "2",
           "--out", str(out), "--seed", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, "TQDM_DISABLE": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    return data, out


def test_train_writes_safe_checkpoint_and_eval_matches(tiny_model):
    data, out = tiny_model
    raw = torch.load(out, weights_only=True)  # plain tensors and metadata only
    assert raw["format"] == "sasim-lm" and len(raw["train"]["curve"]) == 2
    valid = evaluate(Evaluate(weights=out, data=data, split="valid"))
    assert math.isclose(valid["loss_nats"], raw["train"]["best_valid_loss"], rel_tol=1e-5)
    assert valid["bpc"] < math.log2(5)  # learnt something: better than uniform over 5 symbols
    res = subprocess.run([sys.executable, "-m", "sasim.cli", "eval", "--weights", str(out), "--data", str(data)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "bpc" in res.stdout


def test_resume_continues_from_latest(tiny_model, tmp_path):
    data, out = tiny_model
    from sasim.lm.presets import get_preset
    from sasim.lm.train import train

    cfg = get_preset("small")
    cfg.epochs, cfg.seed = 1, 3
    first = tmp_path / "r.pt"
    train(load_corpus(data), cfg, first, show_progress=False)
    cfg.epochs = 2
    summary = train(load_corpus(data), cfg, first, resume=True, show_progress=False)
    assert [c["epoch"] for c in summary["curve"]] == [1, 2]


def test_training_is_reproducible(tiny_model, tmp_path):
    data, _ = tiny_model
    from sasim.lm.presets import get_preset
    from sasim.lm.train import train

    cfg = get_preset("small")
    cfg.epochs, cfg.seed = 1, 11
    a = train(load_corpus(data), cfg, tmp_path / "a.pt", show_progress=False)
    b = train(load_corpus(data), cfg, tmp_path / "b.pt", show_progress=False)
    assert a["curve"][0]["valid_loss"] == b["curve"][0]["valid_loss"]


def test_eval_refuses_other_architecture(tmp_path):
    torch.save(torch.nn.LSTM(3, 4).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(SasimError, match="without vocabulary"):
        load_language_model(tmp_path / "plain.pt")


SHIPPED = REPO / "models" / "ptb-char-small.pt"


@pytest.mark.skipif(not (SHARED_DATA / "ptb-char").is_dir() or not SHIPPED.is_file(),
                    reason="needs ../shared/data/ptb-char and the shipped model")
def test_shipped_model_reproduces_its_recorded_bpc():
    raw = torch.load(SHIPPED, weights_only=True)
    recorded = raw["eval"]["test_bpc"]
    got = shipped_eval.test_bpc(SHIPPED, SHARED_DATA / "ptb-char")  # computed beside the suite (conftest.py)
    assert got == pytest.approx(recorded, abs=2e-4)
    assert recorded <= 1.45


SHIPPED_PACKED = sorted((REPO / "models").glob("ptb-char-packed*.pt"))


@pytest.mark.skipif(not (SHARED_DATA / "ptb-char").is_dir(), reason="needs ../shared/data/ptb-char")
@pytest.mark.parametrize("shipped", SHIPPED_PACKED, ids=lambda p: p.name)
def test_shipped_packed_model_reproduces_its_recorded_bpc_and_is_small(shipped):
    from sasim.workload.layer_packing import stored_packings
    from sasim.workload.lstm_weights import load_lstm_workload

    raw = torch.load(shipped, weights_only=True)
    assert shipped.stat().st_size < 4 * 2**20 and "rnns.0.weight_ih_l0" not in raw["state_dict"]
    assert stored_packings(load_lstm_workload(shipped)) is not None
    got = shipped_eval.test_bpc(shipped, SHARED_DATA / "ptb-char")
    assert got == pytest.approx(raw["eval"]["test_bpc"], abs=2e-4)


def test_a_packed_model_is_shipped():
    assert REPO / "models" / "ptb-char-packed.pt" in SHIPPED_PACKED


def test_prepare_enwik8_split_and_tokens(tmp_path, monkeypatch):
    import zipfile

    from sasim.lm import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "ENWIK8_SPLIT_BYTES", (12, 4, 4))
    raw = b"ab\ncd\xc3\xa9fghij" + b"jk\nl" + b"mnop"
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as z:
        z.writestr("enwik8", raw)
    out = corpus_mod.prepare_enwik8(tmp_path / "enwik8.zip", tmp_path / "e8")
    c = load_corpus(out)
    assert c.level == "char"
    train = [c.vocab[i] for i in c.splits["train"]]
    assert train[:4] == ["97", "98", "<eos>", "99"]  # bytes as decimal tokens, newline byte -> <eos>
    assert "195" in train and "169" in train  # a UTF-8 character is two byte tokens
    assert [c.vocab[i] for i in c.splits["valid"]] == ["106", "107", "<eos>", "108", "<eos>"]
    (tmp_path / "short").write_bytes(b"x" * 5)
    with pytest.raises(SasimError, match="exactly 20"):
        corpus_mod.prepare_enwik8(tmp_path / "short", tmp_path / "e9")
