"""Output: aligned tables for people, JSON (`--json`) for scripts; progress and warnings on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

Cell = str | int | float | bool | None


def cell_text(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned.

    Newlines and tabs inside a cell become spaces, so every row stays one line.
    """
    texts = [[_one_line(cell_text(cell)) for cell in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        bool(rows)
        and any(_is_number(row[i]) for row in rows)
        and all(_is_number(row[i]) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(columns)), *(line(row) for row in texts)])


def to_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str)


def emit(
    payload: Any, *, as_json: bool, text: Callable[[], str], out: TextIO | None = None
) -> None:
    """Write the payload as JSON, or the text rendering of it."""
    stream = out or sys.stdout
    stream.write((to_json(payload) if as_json else text()) + "\n")
    stream.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"carelink: {message}\n")
    sys.stderr.flush()


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


class Progress:
    """One updating stderr line (`scanning 42 topics: 1234 records read`), only on a terminal."""

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()

    def update(self, detail: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[K{self.label}: {detail}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _is_number(value: Cell) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
