"""Corpora in the awd-lstm-lm layout: a directory with ``train.txt``, ``valid.txt``, ``test.txt``.

Tokenisation follows awd-lstm-lm's ``data.py``: every line yielded by ``for line in f`` becomes
``line.split() + ['<eos>']``, and the vocabulary is built over train, then valid, then test. The same
rule reads PTB-char (symbols already separated by spaces), PTB word level and WikiText-2, and the
enwik8 files written by :func:`prepare_enwik8` (one decimal byte value per token).

Where to get the standard files: PTB (word and char) ship in Mikolov's ``simple-examples.tgz``,
WikiText-2 in ``wikitext-2-v1.zip`` (Merity et al. 2016), enwik8 at mattmahoney.net/dc/enwik8.zip.
awd-lstm-lm's ``getdata.sh`` fetches all of them.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sasim.errors import SasimError

SPLITS = ("train", "valid", "test")
ENWIK8_SPLIT_BYTES = (90_000_000, 5_000_000, 5_000_000)  # train, valid, test (prep_enwik8.py)
EOS = "<eos>"
META_FILE = "sasim_corpus.json"


@dataclass
class Corpus:
    """A tokenised corpus.

    Attributes
    ----------
    vocab : list of str
        Symbols in id order (awd-lstm order: first appearance over train, valid, test).
    splits : dict
        ``{"train"|"valid"|"test": np.ndarray of int64 token ids}``.
    level : str
        ``"char"`` (scored in bits per character) or ``"word"`` (scored in perplexity).
    path : str
        The directory it was read from.
    """

    vocab: list
    splits: dict
    level: str
    path: str

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _tokenize_lines(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield from line.split()
            yield EOS


def load_corpus(data_dir, level: str | None = None) -> Corpus:
    """Read a corpus directory.

    Parameters
    ----------
    data_dir : str or Path
        Directory holding ``train.txt``, ``valid.txt`` and ``test.txt``.
    level : {"char", "word"}, optional
        How the corpus is scored. By default read from ``sasim_corpus.json`` if present, else
        ``"char"`` when every symbol other than ``<eos>`` is a single character, else ``"word"``.

    Returns
    -------
    Corpus
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SasimError(f"data directory {data_dir} does not exist; give a directory with train.txt, valid.txt, "
                         "test.txt")
    missing = [s for s in SPLITS if not (data_dir / f"{s}.txt").is_file()]
    if missing:
        raise SasimError(
            f"data directory {data_dir} lacks {', '.join(m + '.txt' for m in missing)}; "
            "a corpus directory must hold train.txt, valid.txt and test.txt (awd-lstm-lm layout)"
        )
    index: dict[str, int] = {}
    vocab: list[str] = []
    splits = {}
    for split in SPLITS:
        ids = []
        path = data_dir / f"{split}.txt"
        try:
            for tok in _tokenize_lines(path):
                i = index.get(tok)
                if i is None:
                    i = index[tok] = len(vocab)
                    vocab.append(tok)
                ids.append(i)
        except UnicodeDecodeError:
            _refuse_non_utf8(path)
        splits[split] = np.asarray(ids, dtype=np.int64)
    meta_path = data_dir / META_FILE
    if level is None and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SasimError(f"{meta_path} is not readable JSON ({exc}); fix or delete it") from None
        level = meta.get("level") if isinstance(meta, dict) else None
    if level is None:
        level = "char" if all(len(s) == 1 for s in vocab if s != EOS) else "word"
    if level not in ("char", "word"):
        raise SasimError(f"corpus level must be 'char' or 'word', got {level!r}")
    return Corpus(vocab=vocab, splits=splits, level=level, path=str(data_dir))


def _refuse_non_utf8(path: Path):
    """One error naming the file and the byte offset of the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        offset = None
    except UnicodeDecodeError as exc:
        offset = exc.start
    raise SasimError(f"corpus file {path} is not UTF-8 text (first bad byte at offset {offset}: "
                     f"{raw[offset:offset + 1]!r}); corpora are read as UTF-8 text, one symbol per whitespace-"
                     "separated token: convert the file, or write raw bytes as decimal tokens as prepare_enwik8 does")


def encode_with_vocab(corpus: Corpus, model_vocab: list) -> dict:
    """Re-map a corpus's token ids onto a model's vocabulary.

    Raises
    ------
    SasimError
        If the corpus holds symbols the model has never seen.
    """
    if list(corpus.vocab) == list(model_vocab):
        return corpus.splits
    lookup = {s: i for i, s in enumerate(model_vocab)}
    unknown = [s for s in corpus.vocab if s not in lookup]
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:8])
        raise SasimError(
            f"corpus {corpus.path} has {len(unknown)} symbols outside the model's vocabulary "
            f"({shown}{', ...' if len(unknown) > 8 else ''}); evaluate on the corpus the model was trained on"
        )
    remap = np.asarray([lookup[s] for s in corpus.vocab], dtype=np.int64)
    return {k: remap[v] for k, v in corpus.splits.items()}


def prepare_enwik8(source, out_dir) -> Path:
    """Write enwik8 in the awd-lstm-lm layout (``prep_enwik8.py`` convention).

    The first 90,000,000 bytes are train, the next 5,000,000 valid, the last 5,000,000 test. Each byte
    is written as its decimal value, separated by spaces; byte 10 becomes a real newline (so it is
    modelled as ``<eos>``).

    Parameters
    ----------
    source : str or Path
        ``enwik8`` (100,000,000 bytes) or ``enwik8.zip``.
    out_dir : str or Path
        Directory to write ``train.txt``, ``valid.txt``, ``test.txt`` and ``sasim_corpus.json``.
    """
    source = Path(source)
    if not source.is_file():
        raise SasimError(f"{source} not found; download http://mattmahoney.net/dc/enwik8.zip")
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as z:
            raw = z.read("enwik8")
    else:
        raw = source.read_bytes()
    n_train, n_valid, n_test = ENWIK8_SPLIT_BYTES
    if len(raw) != n_train + n_valid + n_test:
        raise SasimError(f"{source} holds {len(raw):,} bytes; enwik8 has exactly {n_train + n_valid + n_test:,}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {"train": raw[:n_train], "valid": raw[n_train:n_train + n_valid], "test": raw[n_train + n_valid:]}
    for name, data in parts.items():
        lines = data.split(b"\n")
        with open(out_dir / f"{name}.txt", "w", encoding="ascii") as f:
            f.write("\n".join(" ".join(str(b) for b in line) for line in lines))
    (out_dir / META_FILE).write_text(json.dumps({"level": "char", "source": "enwik8"}))
    return out_dir
