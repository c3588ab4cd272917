"""Range checks for parameters, shared by the library (which names the parameter) and the CLI (which names the flag).

Every public function that takes a size, a count, a probability or a rate checks it here, so that a
Python caller gets a :class:`~sasim.errors.SasimError` naming the parameter instead of a traceback deep
inside numpy or torch, or a silently wrong number. The CLI builds its ``argparse`` types from the same
functions (:func:`arg_type`), so a bad flag is refused where it is parsed, before any work starts.

Counts are bounded so that every event count of a run fits in a signed 64-bit integer (see
``docs/model.md``, "Counting"): :data:`MAX_COUNT` is the largest batch, step count or matrix side sasim accepts.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import re

from sasim.errors import SasimError

#: The largest batch, number of steps or matrix side: 2**31 - 1, so that products of a few of them stay in int64.
MAX_COUNT = 2**31 - 1
#: Bounds of the grouping parameters: alpha at most 2**16 columns a group; gamma, an average number of
#: conflicts per row, at most 1e6 (beyond any matrix's columns; a larger value only risks overflow).
MAX_ALPHA = 2**16
MAX_GAMMA = 1e6
#: The largest seed: numpy and torch take 32-bit seeds.
MAX_SEED = 2**32 - 1
#: The largest event count a run may reach (cycles, MACs, bytes); larger is refused rather than wrapped.
MAX_EVENTS = 2**62


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = MAX_COUNT) -> int:
    """``value`` as an int within ``[minimum, maximum]``, or a :class:`SasimError` naming ``name``.

    Booleans are refused (``True`` is not a size); integral floats such as ``4.0`` are not accepted either.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SasimError(f"{name} must be an integer, got {value!r}", param=name)
    value = int(value)
    if minimum == 1 and value < 1:
        raise SasimError(f"{name} must be positive, got {value}", param=name)
    if minimum is not None and value < minimum:
        raise SasimError(f"{name} must be >= {minimum}, got {value}", param=name)
    if maximum is not None and value > maximum:
        raise SasimError(f"{name} must be <= {maximum:,}, got {value:,}", param=name)
    return value


def check_float(name: str, value, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float within the given bounds (open or closed), or a :class:`SasimError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SasimError(f"{name} must be a number, got {value!r}", param=name)
    value = float(value)
    if not math.isfinite(value):
        raise SasimError(f"{name} must be a finite number, got {value}", param=name)
    outside_low = low is not None and (value <= low if low_open else value < low)
    outside_high = high is not None and (value >= high if high_open else value > high)
    if low is not None and high is not None and (outside_low or outside_high):
        raise SasimError(f"{name} must lie in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}, "
                         f"got {value:g}", param=name)
    if outside_low:
        raise SasimError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}", param=name)
    if outside_high:
        raise SasimError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {value:g}", param=name)
    return value


def check_seed(value) -> int:
    """A seed for numpy and torch: an integer in 0..MAX_SEED."""
    return check_int("seed", value, 0, MAX_SEED)


def check_optional_int(name: str, value, minimum: int | None = None, maximum: int | None = MAX_COUNT):
    """None, or :func:`check_int`."""
    return None if value is None else check_int(name, value, minimum, maximum)


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of ``choices``, else a :class:`SasimError` listing them."""
    if value not in choices:
        raise SasimError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}", param=name)
    return value


def check_events(name: str, value) -> int:
    """An event count (cycles, MACs, bytes) as a Python int that is non-negative and below :data:`MAX_EVENTS`.

    Used where counts are formed, so that an overflow is an error naming what to shrink, not a negative or
    wrapped number in a report.
    """
    value = int(value)
    if value < 0 or value >= MAX_EVENTS:
        raise SasimError(f"{name} would be {value:,}, outside the range sasim counts in (0 .. 2**62); the run is too "
                         "large for this configuration: reduce the batch or steps, or raise the bandwidths")
    return value


def arg_type(check, *args, **kwargs):
    """An ``argparse`` type: parse the text as int (or float), then apply ``check`` with its bounds.

    The flag's name is added by argparse (``argument --batch: must be >= 1, got 0``).
    """

    def parse(text: str):
        kind = int if check in (check_int, check_optional_int) else float
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return check("value", value, *args, **kwargs)
        except SasimError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("value ", "", 1)) from None

    parse.__name__ = "integer" if check in (check_int, check_optional_int) else "number"
    return parse


def available_memory_bytes() -> int:
    """Memory this process may still allocate: ``MemAvailable`` of ``/proc/meminfo``, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**63


def check_memory(need_bytes: float, what: str, way_out: str = "") -> None:
    """Refuse, before allocating, work that needs more memory than is available (with both figures)."""
    limit = available_memory_bytes()
    if need_bytes > limit:
        raise SasimError(f"{what} would need about {_size(need_bytes)} of memory, but {_size(limit)} is available"
                         + (f"; {way_out}" if way_out else ""))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} EiB"


def check_device(name: str, value) -> str:
    """A torch device name sasim accepts: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (whether a GPU is there is
    checked where the device is used)."""

    if not isinstance(value, str) or not re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
        raise SasimError(f"{name} must be cpu, cuda, cuda:N or auto, got {value!r}", param=name)
    return value
