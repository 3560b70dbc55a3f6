"""Tables that stay readable at any width: cells wrap between words, never inside a number or a name.

Rich's default shrinks a too-wide table by cutting cells with an ellipsis ("NDCG…", "seque…"), which
silently hides data. `fit` instead gives every column a minimum width of its longest word (a number, an
id, a metric name), lets long text wrap at spaces, and, when the words alone need more room than the
console has, renders wider than the console rather than cut anything. Off a terminal the box is ASCII.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def longest_word(cells: Sequence[object]) -> int:
    """Characters of the longest whitespace-free run among `cells` (0 for no cells)."""
    return max((len(word) for cell in cells for word in _plain(cell).split()), default=0)


def fit(table: Table, width: int, plain: bool) -> int:
    """Prepare `table` (in place) for a console `width` columns wide; returns the width to render at.

    Every column wraps at spaces (overflow "fold" only ever applies to a word longer than the column,
    which the minimum width rules out). `plain` (not a terminal): ASCII box, no styles.
    """
    words = []
    for column in table.columns:
        cells = [column.header, *column._cells]
        column.min_width = max(longest_word(cells), column.min_width or 0, 1)
        column.overflow = "fold"
        column.no_wrap = False
        words.append(column.min_width)
    if plain:
        table.box = box.ASCII
        table.style = table.header_style = table.border_style = table.title_style = table.caption_style = ""
    left, right = table.padding[3], table.padding[1]
    needed = sum(words) + len(words) * (left + right) + (len(words) + 1 if table.box else 0)
    if needed > width and (left or right):  # tighten padding before going wider than the console
        table.padding = (table.padding[0], 0, table.padding[2], 1)
        table.pad_edge = False
        needed = sum(words) + len(words) + (len(words) + 1 if table.box else 0)
    return max(width, needed)
