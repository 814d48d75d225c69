"""Tables of a SPARCOM run, written as CSV and Markdown (atomically)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(str(h).replace("|", "\\|") for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v, digits).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def write_table(
    stem: str | os.PathLike[str], header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 3
) -> str:
    """Write ``stem.csv`` (full precision) and ``stem.md``; return the Markdown text."""
    stem = Path(stem)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else (repr(v) if isinstance(v, float) else v) for v in row])
    _atomic_text(stem.with_name(stem.name + ".csv"), buf.getvalue())
    md = to_markdown(header, rows, digits)
    _atomic_text(stem.with_name(stem.name + ".md"), md)
    return md


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    _atomic_text(Path(path), text)
