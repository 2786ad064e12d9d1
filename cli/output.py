"""Everything a command prints: JSON on stdout, rich tables and lines for people."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

out_console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Indented JSON on stdout (numpy values and dates included), for scripts and `jq`."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(data, default=str, option=options).decode() + "\n")


def print_key_values(title: str, rows: Iterable[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    out_console.print(table)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    out_console.print(table)


def print_line(text: str) -> None:
    """A plain line (paths and commands: no wrapping, no highlighting)."""
    out_console.print(text, soft_wrap=True, highlight=False)


def print_error(text: str) -> None:
    err_console.print(f"[red]error:[/red] {text}", highlight=False, soft_wrap=True)


def print_note(text: str) -> None:
    err_console.print(f"note: {text}", highlight=False, soft_wrap=True)


def cell(value: object) -> str:
    """A metric for a table cell: 4 decimals for small floats, n/a for a rate a corpus's fields do not allow."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return "n/a" if value is None else str(value)
