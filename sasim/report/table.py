"""Readable metric tables for the terminal (rich), each metric with its definition."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

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
