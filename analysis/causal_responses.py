"""Responses of natural release rows, read back from the offline mirror by their provenance.

The release carries instructions only (no ``output`` field). A natural row's provenance names its
source and row, and the mirror holds that row's reference answer: FLAN ``targets``, HumanEval's
``canonical_solution``, TriviaQA's answer value, Alpaca's ``output``, MATH-500's ``solution``.
Synthetic rows have no response anywhere; the causal check scores them (if at all) on their own
instruction's last tokens and says so. The table below is data: a new source is one more entry.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError

#: source_name -> (mirror file, or None when the row id names the file as ``file:row``; how the row
#: id finds the row: "index" (line number) or a column; the column holding the response).
SOURCES: dict[str, dict[str, Any]] = {
    "flan_classification": {"folder": "flan", "file": None, "key": "index", "response": "targets"},
    "flan_summarization": {"folder": "flan", "file": None, "key": "index", "response": "targets"},
    "alpaca": {"folder": "alpaca", "file": "alpaca_first4000.jsonl", "key": "index", "response": "output"},
    "humaneval": {"folder": "humaneval", "file": "HumanEval.jsonl.gz", "key": "task_id",
                  "response": "canonical_solution"},
    "triviaqa": {"folder": "triviaqa", "file": "validation_subset.jsonl", "key": "question_id",
                 "response": "answer.value"},
    "math500": {"folder": "math500", "file": "test.jsonl", "key": "unique_id", "response": "solution"},
}


class ResponseError(UserError):
    """A mirror file the responses need is missing or does not hold the row a provenance names."""


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ResponseError(f"{path}: not found (the mirror file holding the responses)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _field(row: Mapping[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


_ROMAN = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"]


def option_marker(target: str, instruction: str) -> str:
    """A FLAN target that is an option marker ("(II)", "B).", "[b].", "2.") as the option's text.

    FLAN renders the options in randomised formats and its targets can name them by marker; the
    release shows the options as "Options:\n- text" lines in the same order, so the marker's index
    picks the text. A target that is not a marker (or names no listed option) is kept as it is.
    """
    options = []
    if "Options:" in instruction:
        tail = instruction.rsplit("Options:", 1)[1]
        options = [line[2:].strip() for line in tail.splitlines() if line.startswith("- ")]
    mark = target.strip().strip("()[].").strip(")").strip().lower()
    if not options or not mark:
        return target
    if mark.isdigit():
        k = int(mark) - 1
    elif mark in _ROMAN:
        k = _ROMAN.index(mark)
    elif len(mark) == 1 and "a" <= mark <= "z":
        k = ord(mark) - ord("a")
    else:
        return target
    return options[k] if 0 <= k < len(options) else target


def natural_responses(rows: Iterable[Mapping[str, Any]], sources: str | os.PathLike[str]) -> dict[str, str]:
    """id -> reference response for every natural row whose source the mirror holds (others are absent)."""
    folder = Path(sources)
    cache: dict[Path, list[dict[str, Any]]] = {}
    index: dict[tuple[Path, str], dict[str, dict[str, Any]]] = {}
    out: dict[str, str] = {}
    for row in rows:
        nat = (row.get("provenance") or {}).get("natural")
        if not nat or nat.get("source_name") not in SOURCES:
            continue
        spec = SOURCES[nat["source_name"]]
        rid = str(nat["row_id"])
        if spec["file"] is None:
            name, _, rid = rid.rpartition(":")
            path = folder / spec["folder"] / name
        else:
            path = folder / spec["folder"] / spec["file"]
        if path not in cache:
            cache[path] = _lines(path)
        lines = cache[path]
        if spec["key"] == "index":
            k = int(rid)
            if not 0 <= k < len(lines):
                raise ResponseError(f"{path}: no row {k} (row {row.get('id')} names it)")
            found = lines[k]
        else:
            key = (path, spec["key"])
            if key not in index:
                index[key] = {str(x.get(spec["key"])): x for x in lines}
            found = index[key].get(rid)
            if found is None:
                raise ResponseError(f"{path}: no row with {spec['key']} {rid!r} (row {row.get('id')} names it)")
        text = _field(found, spec["response"])
        if isinstance(text, str) and spec["folder"] == "flan":
            text = option_marker(text, str(row.get("instruction", "")))
        if isinstance(text, str) and text.strip():
            out[str(row["id"])] = text.strip()
    return out
