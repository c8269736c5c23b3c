"""Small text-output helpers shared by the CLI, the demo and the reports."""

from __future__ import annotations

import sys
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


def status(message: str) -> None:
    """One line on stderr saying what a long phase (over ~5 s) is about to do; stdout stays for
    results. Written through tqdm, so a progress bar on screen is not torn."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
