"""Tables that fit the terminal: columns chosen by width, never a name folded mid-word.

A command lists its columns with a priority: 0 always shows; the others are dropped, highest
number first, until the table's natural width fits the console (80 columns in CI logs and
pipes, where rich assumes 80 unless COLUMNS says otherwise). Names never wrap (`int8-dynami/c`
is unreadable); only columns marked `wrap` (free text such as notes or tags) fold, and they
count at `wrap_width` when the fit is decided.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


@dataclasses.dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"  # "left" or "right" (numbers)
    priority: int = 0  # 0: always shown; higher numbers are dropped first when the table is too wide
    wrap: bool = False  # free text that may fold onto more lines
    wrap_width: int = 14  # the width a wrapping column counts for when deciding the fit


def fitted_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Any]], *,
                 width: int | None = None, **table_options: Any) -> Table:
    """A table of `rows` with the columns that fit `width` (default: the console's width)."""
    width = width or console.width
    kept = list(range(len(columns)))
    while True:
        if _natural_width(console, [columns[i] for i in kept], [[row[i] for i in kept] for row in rows],
                          table_options) <= width:
            break
        optional = [i for i in kept if columns[i].priority > 0]
        if not optional:
            break
        kept.remove(max(optional, key=lambda i: (columns[i].priority, i)))
    return _table([columns[i] for i in kept], [[row[i] for i in kept] for row in rows], table_options)


def _table(columns: Sequence[Column], rows: Sequence[Sequence[Any]], options: dict[str, Any],
           measuring: bool = False) -> Table:
    settings = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True, **options}
    table = Table(**settings)
    for column in columns:
        table.add_column(column.header, justify=column.justify,  # type: ignore[arg-type]
                         no_wrap=not column.wrap, overflow="fold" if column.wrap else "ellipsis",
                         max_width=column.wrap_width if (measuring and column.wrap) else None)
    for row in rows:
        table.add_row(*row)
    return table


def _natural_width(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
                   options: dict[str, Any]) -> int:
    table = _table(columns, rows, options, measuring=True)
    wide = console.options.update(width=10_000, max_width=10_000)
    return Measurement.get(console, wide, table).maximum


__all__ = ["Column", "fitted_table"]
