"""Tables for a terminal of 100 columns that never cut a number.

Every table the CLI prints is a :class:`CompactTable`: no outer border, numbers
right-aligned, and no number ever cut: each column's minimum width is its longest
number (and header word), so when space runs out rich wraps text at
spaces instead of writing ``4,948…`` (names such as a long model stem fold). Headers are short or break over two lines.
Full detail (every split, every source) stays in --json, the CSV and the HTML report.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich import box
from rich.table import Table
from rich.text import Text


class CompactTable(Table):
    """A rich Table that keeps every number of every cell whole (see the module doc)."""

    def __init__(self, *args: Any, whole_words: Iterable[int] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.whole_words = frozenset(whole_words)  # columns whose every word stays whole (a status)

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*renderables, **kwargs)
        for i, (column, cell) in enumerate(zip(self.columns, renderables)):
            if isinstance(cell, str):
                self._widen(column, Text.from_markup(cell).plain, words=i in self.whole_words)

    @staticmethod
    def _widen(column: Any, plain: str, words: bool = False) -> None:
        """Make ``column`` at least as wide as the longest number in ``plain`` (a word with
        a digit and at most one letter: 4,948,400, 17.2+, x3.33) or, for headers, word."""
        whole = [w for w in plain.split() if words or (any(ch.isdigit() for ch in w)
                                                       and sum(ch.isalpha() for ch in w) <= 1)]
        longest = max((len(w) for w in whole), default=0)
        column.min_width = max(column.min_width or 0, longest)


def compact_table(title: str, columns: list[str]) -> CompactTable:
    """A table that fits 100 columns: a column name ending in ``#`` is a number column
    (right-aligned), one ending in ``!`` keeps its words whole (a status), the others
    fold when space runs out; a newline in a name breaks the header over two lines."""
    table = CompactTable(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=True, collapse_padding=True,
                         whole_words=(i for i, c in enumerate(columns) if c.endswith("!")))
    for c in columns:
        name = c[:-1] if c[-1] in "#!" else c
        table.add_column(name, justify="right" if c.endswith("#") else "left", overflow="fold")
        CompactTable._widen(table.columns[-1], name, words=True)
    return table
