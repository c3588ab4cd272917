"""Readable metric tables for the terminal (rich), each metric with its definition."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sasim.outputs import atomic_write
from sasim.sim.metrics import DEFINITIONS

COLUMNS = [
    ("name", "matrix", "{}"),
    ("shape", "N x K", "{0[0]} x {0[1]}"),
    ("groups", "G", "{:,}"),
    ("tiles", "tiles", "{:,}"),
    ("cycles", "cycles", "{:,}"),
    ("stall_cycles", "stalls", "{:,}"),
    ("utilization", "util", "{:.3f}"),
    ("dense_equivalent_utilization", "dense-eq util", "{:.3f}"),
    ("packing_efficiency", "packing eff", "{:.3f}"),
    ("tile_efficiency", "tile eff", "{:.3f}"),
    ("pruned_fraction", "pruned", "{:.3f}"),
]


def _fmt(fmt, value):
    if value is None:
        return ""
    try:
        return fmt.format(value)
    except (TypeError, ValueError, IndexError, KeyError):
        return str(value)


def print_records(title: str, records: list[dict], columns: list[tuple[str, str, str]], extra_lines=(),
                  console=None) -> None:
    """Print ``records`` as a table of ``(key, header, format)`` columns, then ``extra_lines``."""
    console = console or Console(width=160)
    table = Table(title=title, title_justify="left")
    for i, (_, header, _) in enumerate(columns):
        table.add_column(header, justify="left" if i == 0 else "right")
    for record in records:
        table.add_row(*(_fmt(fmt, record.get(key)) for key, _, fmt in columns))
    console.print(table)
    for line in extra_lines:
        console.print(line, highlight=False)


def write_records_csv(records: list[dict], path) -> Path:
    """A tidy CSV of ``records``: one row each, the union of their keys as columns in first-seen order, no
    trailing commas (written atomically)."""
    fields = list(dict.fromkeys(k for r in records for k in r))
    with atomic_write(Path(path), newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    return Path(path)


def print_report(title: str, parts: list[dict], total: dict, extra_lines: list[str] = (), console=None) -> None:
    """Print one row per matrix, a total row, and the definitions of the metrics shown."""
    console = console or Console(width=160)
    table = Table(title=title, title_justify="left")
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="right" if header != "matrix" else "left")
    for part in parts:
        table.add_row(*(_fmt(fmt, part.get(key, "")) for key, _, fmt in COLUMNS))
    if len(parts) > 1:
        row = {**total, "name": "total", "shape": None, "groups": sum(p["groups"] for p in parts)}
        table.add_row(*(_fmt(fmt, row.get(key, "")) for key, _, fmt in COLUMNS), style="bold")
    console.print(table)
    for line in extra_lines:
        console.print(line, highlight=False)
    shown = [key for key, _, _ in COLUMNS if key in DEFINITIONS] + ["latency_s", "energy_j"]
    console.print("definitions:", style="dim")
    for key in shown:
        console.print(f"  {key}: {DEFINITIONS[key]}", style="dim", highlight=False)
