"""One table style for every command: a rich table on the terminal, the same rows as Markdown in files.

A :class:`Table` is plain data (strings), so a report builds it once and shows it both ways:
``print_table`` for ``check``, ``profile`` and ``targets`` on stdout, ``markdown_lines`` for
profile.md and the pull-request summary of ``check``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from rich.console import Console

LOG_WIDTH = 150  # off a terminal (CI logs, pipes): wide enough that rows stay on one line


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = False  # right-aligned (numbers)
    styles: Mapping[str, str] = field(default_factory=dict)  # cell text -> rich style, e.g. {"FAIL": "bold red"}
    fold: bool = False  # long text folds onto more lines instead of widening the table


@dataclass(frozen=True)
class Table:
    columns: Sequence[Column]
    rows: Sequence[Sequence[str]]
    title: str | None = None
    caption: str | None = None


def print_table(table: Table, console: Console | None = None) -> None:
    """The table on stdout (or ``console``) in rich's style; never wrapped narrower than a CI log."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, LOG_WIDTH))
    rt = RichTable(title=table.title, caption=table.caption, title_justify="left", caption_justify="left")
    for c in table.columns:
        rt.add_column(c.name, justify="right" if c.right else "left", no_wrap=not c.fold,
                      overflow="fold" if c.fold else "ellipsis", min_width=40 if c.fold else None)
    for row in table.rows:
        rt.add_row(*(Text(v, style=c.styles.get(v, "")) for c, v in zip(table.columns, row)))
    console.print(rt)


def markdown_lines(table: Table) -> list[str]:
    """The table as Markdown (header, alignment row, one line per row; ``|`` and newlines escaped)."""
    def cell(v: str) -> str:
        return v.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c.name) for c in table.columns) + " |",
             "|" + "|".join("---:" if c.right else "---" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return lines
