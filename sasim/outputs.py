"""Output files: checked before any work starts, written atomically.

Two rules hold for everything sasim writes:

* **Checked first.** :func:`check_output_file` and :func:`check_output_dir` refuse, with one
  :class:`~sasim.errors.SasimError` naming the path and the fix, an output that could not be written:
  a directory where a file is expected, a file where a directory is expected, a parent that is missing
  or not a directory, a location that is not writable. Commands call them before minutes of training
  or simulation, so no result is lost at the end.
* **Atomic.** :func:`atomic_write` writes to a temporary file in the same directory and renames it over
  the target, so a killed run (``kill -9``, a full disk) leaves either the old file or the complete new
  one, never a truncated one. The temporary file is removed when writing fails.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

from sasim.errors import SasimError


def _writable_dir(directory: Path, what: str) -> None:
    if not directory.exists():
        raise SasimError(f"{what}: directory {directory} does not exist; create it first or choose another path")
    if not directory.is_dir():
        raise SasimError(f"{what}: {directory} is not a directory; choose another path")
    try:  # a real probe: permission bits say nothing for root, a read-only mount or /sys
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".sasim-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SasimError(f"{what}: cannot write in {directory} ({exc.strerror}); choose another path") from None


def check_output_file(path, what: str = "output", make_parents: bool = False) -> Path:
    """Refuse an output file path that cannot be written; return it as a Path.

    Parameters
    ----------
    path : str or Path
        The file to be written.
    what : str
        How the error names it (``--out``, ``--json``).
    make_parents : bool
        Create missing parent directories (as ``mkdir -p``) instead of refusing them.
    """
    if path is None or str(path) == "":
        raise SasimError(f"{what}: an empty path; give a file name")
    path = Path(path)
    if path.is_dir():
        raise SasimError(f"{what}: {path} is a directory; give a file path inside it, e.g. {path / 'out'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise SasimError(f"{what}: {path} exists and is not writable; choose another path")
    if make_parents and not path.parent.exists():
        _make_dirs(path.parent, what)
    _writable_dir(path.parent, what)
    return path


def check_output_dir(path, what: str = "--out") -> Path:
    """Refuse an output directory that cannot be created or written; create it; return it as a Path."""
    if path is None or str(path) == "":
        raise SasimError(f"{what}: an empty path; give a directory")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SasimError(f"{what}: {path} is a file, not a directory; give a directory path")
    _make_dirs(path, what)
    _writable_dir(path, what)
    return path


def _make_dirs(path: Path, what: str) -> None:
    """``mkdir -p path``, refusing a file that stands where one of its directories is needed."""
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise SasimError(f"{what}: {above} is a file, so {path} cannot be created; choose another path")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SasimError(f"{what}: cannot create directory {path} ({exc.strerror}); choose another path") from None


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs):
    """Open a temporary file beside ``path`` and rename it onto ``path`` when the block ends without error.

    ``mode`` is ``"w"`` (text, UTF-8 unless given) or ``"wb"``. An ``OSError`` while writing (a full disk)
    becomes a :class:`SasimError` naming the path; the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise SasimError(f"cannot write {path} ({exc.strerror or exc}); free space or choose another path") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text)
    return Path(path)


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON: a NaN or infinity anywhere is an error naming its key path, never ``NaN``/``Infinity`` text."""
    bad = _non_finite(obj, "")
    if bad:
        raise SasimError(f"result {bad} is not a finite number, which JSON cannot hold; check the inputs that "
                         "produced it (a NaN weight or an infinite energy constant)")
    return json.dumps(obj, indent=indent, allow_nan=False)


def _non_finite(obj, where: str) -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(top level)"
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (see :func:`json_text`) to ``path`` atomically, with a final newline."""
    return write_text(path, json_text(obj, indent) + "\n")


def save_torch(path, obj) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch  # only callers that save checkpoints pay for importing torch

    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically (the format from the suffix of ``path``)."""
    path = Path(path)
    fmt = kwargs.pop("format", path.suffix.lstrip(".") or "png")
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)
    return path
