"""Small text-output helpers shared by the CLI, the demo and the reports."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with aligned columns; the first row is the header."""
    if not rows:
        raise ValueError("markdown_table needs at least a header row")
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
