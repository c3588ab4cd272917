"""An adversarial corpus run through the command line: malformed YAML, checkpoints with the wrong structure,
unwritable outputs, oversized shapes, out-of-range flags and bad corpora.

Every case must end with exit status 2, one error on stderr naming the problem (one line; a file with several
problems lists them all, indented, under one head line), and no traceback. The cases run
through ``sasim.cli.main`` in this process (the same entry point as the ``sasim`` command, minus the start-up
time), so an uncaught exception fails the test with its traceback.
"""

import json

import pytest
import torch
import yaml
from conftest import REPO, sparse_lstm_checkpoint
from hypothesis import given
from hypothesis import strategies as st

from sasim.cli import main

HW_TEXT = (REPO / "hwconfigs" / "8x8.yaml").read_text()


def run_cli(capsys, *args) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_error(capsys, *args, expect: str = "") -> str:
    code, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err
    assert lines[0].startswith("sasim") and ": error: " in lines[0], err
    # one error: a single line, or (for a file with several problems, reported at once) a head line and an
    # indented list of the problems with their key paths
    assert all(line.startswith("  ") for line in lines[1:]), err
    assert expect in err, (expect, err)
    return err


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    return sparse_lstm_checkpoint(tmp_path_factory.mktemp("adv") / "lstm.pt", input_size=6, hidden=8)


@pytest.fixture(scope="module")
def lm(dense, tmp_path_factory):
    """The small trained sasim checkpoint as a dict, to break in many ways."""
    return torch.load(dense[1], weights_only=True)


def save(tmp_path, obj, name="bad.pt"):
    torch.save(obj, tmp_path / name)
    return tmp_path / name


# --- checkpoints whose structure is wrong ---------------------------------------------------------------------

def _without(key):
    return lambda raw: {k: v for k, v in raw.items() if k != key}


def _set(path, value):
    def edit(raw):
        node = raw
        *parents, leaf = path
        for p in parents:
            node = node[p]
        node[leaf] = value
        return raw
    return edit


BROKEN_CHECKPOINTS = {
    "no state_dict": (_without("state_dict"), "state_dict: missing"),
    "no model_config": (_without("model_config"), "model_config: missing"),
    "no vocab": (_without("vocab"), "vocab: missing"),
    "unknown model_config key": (_set(["model_config", "hiden_size"], 3), "model_config.hiden_size: unknown key"),
    "negative size": (_set(["model_config", "hidden_size"], -4), "model_config.hidden_size"),
    "size disagrees with tensors": (_set(["model_config", "hidden_size"], 30), "disagree with model_config"),
    "state_dict is a tensor": (_set(["state_dict"], torch.zeros(3)), "state_dict: must be a mapping"),
    "state_dict holds strings": (_set(["state_dict", "encoder.weight"], "oops"), "state_dict.encoder.weight"),
    "integer keys": (_set(["state_dict", 7], torch.zeros(2)), "keys must be tensor names"),
    "mask of the wrong shape": (_set(["state_dict", "rnns.0.mask_hh"], torch.ones(3, 3)), "rnns.0.mask_hh: shape"),
    "quantization scales strings": (_set(["quantization"], {"config": {"weight_bits": 8}, "scales": "abc"}),
                                    "quantization.scales"),
    "quantization scales None": (_set(["quantization"], {"config": {}, "scales": [None, None]}), "scales[0]"),
    "vocab of numbers": (_set(["vocab"], [1, 2, 3]), "vocab: must be a list of strings"),
    "NaN weight": (lambda raw: (raw["state_dict"]["rnns.0.weight_hh_l0"].__setitem__((0, 0), float("nan")), raw)[1],
                   "NaN"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CHECKPOINTS))
def test_broken_sasim_checkpoint(case, lm, dense, tmp_path, capsys):
    import copy

    edit, expect = BROKEN_CHECKPOINTS[case]
    path = save(tmp_path, edit(copy.deepcopy(lm)))
    assert_one_error(capsys, "eval", "--weights", path, "--data", dense[0], expect=expect)


def test_three_dimensional_weight(tmp_path, capsys):
    path = save(tmp_path, {"weight_ih_l0": torch.zeros(16, 4, 2), "weight_hh_l0": torch.zeros(16, 4)})
    assert_one_error(capsys, "run", "--hw", "8x8", "--weights", path, expect="2-D")


@pytest.mark.parametrize("meta, expect", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_safetensors_metadata_that_is_not_a_json_object(meta, expect, tmp_path, capsys):
    from safetensors.torch import save_file

    save_file({"weight_ih_l0": torch.zeros(16, 4)}, str(tmp_path / "m.safetensors"), metadata={"sasim": meta})
    assert_one_error(capsys, "run", "--hw", "8x8", "--weights", tmp_path / "m.safetensors", expect=expect)


@pytest.mark.parametrize("content", [b"hello, this is text", b"", b"\x80\x02}q\x00."])
def test_files_that_are_not_checkpoints(content, tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(content)
    assert_one_error(capsys, "run", "--hw", "8x8", "--weights", tmp_path / "x.pt", expect="x.pt")


def test_checkpoint_holding_a_pickled_object(tmp_path, capsys):
    torch.save({"weight_ih_l0": torch.zeros(16, 4), "opt": torch.optim.SGD}, tmp_path / "obj.pt")
    assert_one_error(capsys, "run", "--hw", "8x8", "--weights", tmp_path / "obj.pt", expect="never unpickles")


def test_tensor_only_checkpoint_can_be_combined_by_name(tmp_path, capsys):
    """#14 item 8: --tensor packs any named 2-D tensor, also in a checkpoint without LSTM weights."""
    torch.manual_seed(0)
    w = torch.randn(24, 40) * (torch.rand(24, 40) < 0.2)
    torch.save({"fc.weight": w}, tmp_path / "fc.pt")
    code, err = run_cli(capsys, "combine", "--weights", tmp_path / "fc.pt", "--tensor", "fc.weight", "--alpha", 8,
                        "--gamma", 0.5, "--out", tmp_path / "p.pt")
    assert code == 0, err
    packed = torch.load(tmp_path / "p.pt", weights_only=True)["state_dict"]
    assert "fc.weight.packed_values" in packed and packed["fc.weight.packed_values"].shape[1] < 40
    assert_one_error(capsys, "combine", "--weights", tmp_path / "fc.pt", "--tensor", "missing.weight", "--alpha", 8,
                     "--gamma", 0.5, "--out", tmp_path / "q.pt", expect="missing.weight")


# --- outputs that cannot be written (refused before any work) -------------------------------------------------

def test_outputs_that_cannot_be_written(lstm, tmp_path, capsys, dense):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")
    run = ["run", "--hw", "8x8", "--weights", lstm, "--mode", "analytic"]
    assert_one_error(capsys, *run, "--json", tmp_path / "a_dir", expect="is a directory")
    assert_one_error(capsys, *run, "--json", "/sys/report.json", expect="cannot write")
    assert_one_error(capsys, *run, "--json", tmp_path / "a_file" / "r.json", expect="not a directory")
    assert_one_error(capsys, *run, "--plot", tmp_path / "a_dir", expect="is a directory")
    combine = ["combine", "--weights", lstm, "--alpha", 2, "--gamma", 0.5]
    assert_one_error(capsys, *combine, "--out", tmp_path / "a_dir", expect="is a directory")
    assert_one_error(capsys, *combine, "--out", "/sys/p.pt", expect="cannot write")
    assert_one_error(capsys, "plot", "--weights", lstm, "--hw", "8x8", "--alpha", 2, "--gamma", 0.5,
                     "--out", tmp_path / "a_file", expect="is a file, not a directory")
    assert_one_error(capsys, "sweep", "--weights", lstm, "--hw", "8x8", "--alphas", 2, "--gammas", 0,
                     "--out", tmp_path / "a_file", expect="is a file, not a directory")
    data, ckpt = dense
    assert_one_error(capsys, "train", "--data", data, "--out", tmp_path / "a_dir", expect="is a directory")
    assert_one_error(capsys, "prune", "--weights", ckpt, "--data", data, "--alpha", 2, "--gamma", 0.5,
                     "--out", "/sys/p.pt", expect="cannot write")
    assert_one_error(capsys, "quantize", "--weights", ckpt, "--data", data, "--out", tmp_path / "a_dir",
                     expect="is a directory")
    assert_one_error(capsys, "finetune", "--weights", ckpt, "--data", data, "--out", tmp_path / "a_dir",
                     expect="is a directory")
    assert list((tmp_path / "a_dir").iterdir()) == []  # nothing half-written anywhere
    assert not list(tmp_path.glob("*.tmp"))


def test_json_into_a_missing_directory_is_created(lstm, tmp_path, capsys):
    code, err = run_cli(capsys, "run", "--hw", "8x8", "--weights", lstm, "--mode", "analytic", "--json",
                        tmp_path / "new" / "deeper" / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "new" / "deeper" / "r.json").read_text())["total"]["cycles"] > 0


# --- sizes that cannot fit ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expect", [
    (["--m", 4, "--n", 100000, "--k", 100000], "would need about"),
    (["--m", 1000000000, "--n", 64, "--k", 64], "--mode analytic"),
    (["--m", 2**63, "--n", 4, "--k", 4], "--m must be <="),
])
def test_gemm_too_big_is_refused_before_allocating(args, expect, capsys):
    assert_one_error(capsys, "gemm", "--hw", "8x8", *args, expect=expect)


def test_workload_too_big_to_materialize(tmp_path, capsys):
    spec = {"version": 1, "name": "huge", "batch": 1, "steps": 1,
            "layers": [{"type": "linear", "rows": 500000, "cols": 250000}]}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(spec))
    assert_one_error(capsys, "run", "--hw", "8x8", "--workload", tmp_path / "w.yaml", "--mode", "cycle",
                     expect="would need about")


# --- numbers and flags ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expect", [
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 4, "--k", 4, "--alpha", 0, "--gamma", 0.5], "--alpha"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 4, "--k", 4, "--alpha", 2, "--gamma", 1e308], "--gamma"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 4, "--k", 4, "--seed", -1], "--seed"),
    (["gemm", "--hw", "8x8", "--m", 2, "--n", 4, "--k", 4, "--density", "nan"], "--density"),
    (["prune", "--weights", "W", "--alpha", 0, "--gamma", 0.5, "--dry-run"], "alpha"),
    (["prune", "--weights", "W", "--alpha", 4, "--gamma", 1e308, "--dry-run"], "gamma"),
    (["prune", "--weights", "W", "--data", "D", "--alpha", 4, "--gamma", 0.5, "--qat-bits", "1,1", "--out", "O"],
     "weight_bits"),
    (["prune", "--weights", "W", "--data", "D", "--alpha", 4, "--gamma", 0.5, "--acc-bits", 0, "--out", "O"],
     "--acc-bits"),
    (["train", "--data", "D", "--out", "O", "--epochs", 0], "--epochs"),
    (["train", "--data", "D", "--out", "O", "--epochs", -1], "--epochs"),
    (["train", "--data", "D", "--out", "O", "--threads", -1], "--threads"),
    (["train", "--data", "D", "--out", "O", "--proj-size", -1], "--proj-size"),
    (["train", "--data", "D", "--out", "O", "--device", "bogus"], "--device"),
    (["sweep", "--out", "O", "--workers", -1], "--workers"),
    (["eval", "--weights", "W", "--data", "D", "--batch", 0], "--batch"),
    (["quantize", "--weights", "W", "--data", "D", "--calib-tokens", -1], "--calib-tokens"),
    (["quantize", "--weights", "W", "--data", "D", "--qat-lr", "nan"], "--qat-lr"),
    (["finetune", "--weights", "W", "--data", "D", "--out", "O", "--epochs", 0], "--epochs"),
])
def test_out_of_range_flags(args, expect, capsys, dense, tmp_path):
    data, ckpt = dense
    args = [{"W": ckpt, "D": data, "O": tmp_path / "o.pt"}.get(a, a) if isinstance(a, str) else a for a in args]
    if args[0] == "sweep":
        args[args.index("O") if "O" in args else 2] = tmp_path / "sweep"
    assert_one_error(capsys, *args, expect=expect)


def test_dropout_scale_that_makes_a_probability_of_one(dense, tmp_path, capsys):
    data, ckpt = dense
    assert_one_error(capsys, "finetune", "--weights", ckpt, "--data", data, "--dropout-scale", 100, "--out",
                     tmp_path / "f.pt", expect="--dropout-scale")


# --- corpora ---------------------------------------------------------------------------------------------------------

def test_corpus_with_bytes_that_are_not_utf8(dense, tmp_path, capsys):
    data, ckpt = dense
    bad = tmp_path / "bad"
    bad.mkdir()
    for split in ("train", "valid", "test"):
        (bad / f"{split}.txt").write_bytes((data / f"{split}.txt").read_bytes())
    (bad / "valid.txt").write_bytes(b" a b \n c \xff\xfe d \n")
    line = assert_one_error(capsys, "eval", "--weights", ckpt, "--data", bad, expect="valid.txt")
    assert "offset 9" in line


def test_resume_with_another_corpus_or_model(tmp_path):
    from helpers import write_corpus

    from sasim.errors import SasimError
    from sasim.lm.corpus import load_corpus
    from sasim.lm.presets import TrainConfig
    from sasim.lm.train import train

    a = load_corpus(write_corpus(tmp_path / "a", alphabet="abc_"))
    b = load_corpus(write_corpus(tmp_path / "b", alphabet="wxyz_"))
    cfg = TrainConfig(emb_size=4, hidden_size=8, num_layers=1, bptt=10, batch_size=4, dropout_e=0, dropout_h=0,
                      dropout_i=0, dropout_o=0, weight_drop=0, lr=3e-3, epochs=1, seed=1)
    out = tmp_path / "m.pt"
    train(a, cfg, out, show_progress=False)
    cfg.epochs = 2
    with pytest.raises(SasimError, match="another vocabulary"):
        train(b, cfg, out, resume=True, show_progress=False)
    cfg.proj_size = 4
    with pytest.raises(SasimError, match="proj_size 4"):
        train(a, cfg, out, resume=True, show_progress=False)


# --- YAML ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expect", [
    ("[a, b]: 1\n" + HW_TEXT, "keys must be plain names"),
    ("{a: 1}: 1\n" + HW_TEXT, "keys must be plain names"),
    ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nesting deeper"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
     + "name: *i\n", "expands to more than"),
    (HW_TEXT.replace("version: 1", "version: true"), "version"),
    ("version: 1\nname: [unclosed\n", "not valid YAML"),
    (HW_TEXT + "clock_hz: 2.0e9\n", "appears twice"),
])
def test_malformed_yaml(text, expect, tmp_path, capsys):
    (tmp_path / "hw.yaml").write_text(text)
    code, err = run_cli(capsys, "validate", tmp_path / "hw.yaml")
    assert code == 2 and "Traceback" not in err and expect in err, err
    assert len(err) < 2000  # an alias bomb must not produce a huge message


def test_yaml_merge_keys_work(tmp_path, capsys):
    data = yaml.safe_load(HW_TEXT)
    mem = data.pop("memory")
    text = yaml.safe_dump({"defaults": None}).replace("defaults: null\n", "")
    body = yaml.safe_dump(data)
    text = ("x-memory: &mem\n" + "".join(f"  {k}: {v}\n" for k, v in mem.items()) + body
            + "memory:\n  <<: *mem\n  dram_bw: 16.0\n")
    (tmp_path / "hw.yaml").write_text(text)
    code, err = run_cli(capsys, "validate", tmp_path / "hw.yaml")
    assert code == 2 and "x-memory: unknown key" in err  # the merge itself parsed; only the anchor holder is extra
    assert "syntax" not in err


@given(st.text(alphabet=st.sampled_from(list("ab:[]{}-&*!|>'\"#\n 0123456789.,")), max_size=60))
def test_any_text_as_hardware_config_gives_one_error_or_a_config(text):
    from sasim.errors import SasimError
    from sasim.hw.config import parse_hw_config

    try:
        parse_hw_config(text, "fuzz.yaml")
    except SasimError as exc:
        assert str(exc)
