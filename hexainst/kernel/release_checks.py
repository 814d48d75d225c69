"""Checks of a release folder beyond the row schema: the balance of its cells, its card's counts, its other files.

``hexainst validate`` reports them; :func:`hexainst.load` and ``hexainst publish`` refuse a release that fails them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from hexainst.kernel.digests import file_sha256
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import iter_jsonl
from hexainst.kernel.release_layout import GENERATIONS_FILE, RESERVE_FILE, TOPUP_FILE, VALIDATION_FILE, card_yaml
from hexainst.kernel.validation_file import check as check_validation
from hexainst.kernel.vocab import CATEGORIES, ROWS_PER_CELL, SOURCES


def balance_problems(cells: Counter) -> list[str]:
    """Messages for every (category, source) cell that does not hold exactly ROWS_PER_CELL rows."""
    return [
        f"{c}/{s}: {cells[(c, s)]} rows, expected {ROWS_PER_CELL}"
        for c in CATEGORIES
        for s in SOURCES
        if cells[(c, s)] != ROWS_PER_CELL
    ]


def card_problems(folder: Path, rows_by_config: dict[str, int]) -> list[str]:
    """Differences between the card's dataset_info num_examples and the rows actually present."""
    data = card_yaml(folder)
    infos = data.get("dataset_info") or []
    infos = infos if isinstance(infos, list) else [infos]
    problems = []
    declared = {}
    for info in infos:
        name = info.get("config_name", "default")
        for split in info.get("splits", []):
            declared[name] = split.get("num_examples")
    for name, n in rows_by_config.items():
        if declared.get(name) != n:
            problems.append(f"README.md: config {name!r} declares num_examples={declared.get(name)}, data has {n}")
    return problems


#: The longest instruction ``validate`` accepts (characters). The release's longest is about 2,300; a text far
#: beyond this is a pasted document or a broken extraction, and ``record`` would ask for memory for all of it.
MAX_INSTRUCTION_CHARS = 20_000
#: Whitespace an instruction may hold (code keeps its indentation and line breaks); every other control
#: character (a NUL, an escape, a form feed, ...) is a broken extraction.
_ALLOWED_CONTROLS = frozenset("\n\t")


def text_problems(rows: list[dict], where: list[str]) -> list[str]:
    """Instructions that are too long or hold control characters; ``where[i]`` names row ``i`` (file and row)."""
    problems = []
    for row, place in zip(rows, where):
        for field in ("instruction",):
            text = row.get(field) or ""
            if len(text) > MAX_INSTRUCTION_CHARS:
                problems.append(f"{place} (id={row['id']}): field '{field}': {len(text):,} characters, more than "
                                f"the {MAX_INSTRUCTION_CHARS:,} an instruction may have")
            bad = sorted({c for c in text if c not in _ALLOWED_CONTROLS and unicodedata.category(c) in ("Cc", "Cs")})
            if bad:
                shown = ", ".join(repr(c)[1:-1] for c in bad[:5])
                problems.append(f"{place} (id={row['id']}): field '{field}': holds control characters ({shown})")
    return problems


def _card_tables(folder: Path) -> list[list[list[str]]]:
    """The Markdown tables of the card's body: each a list of rows (the header first), each a list of cells."""
    text = (folder / "README.md").read_text("utf-8")
    body = text.split("---", 2)[2] if text.startswith("---") and text.count("---") >= 2 else text
    tables, current = [], []
    for line in body.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):  # not the alignment row
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def card_table_problems(folder: Path, cells: Counter) -> list[str]:
    """Differences between the card's tables and the rows: the rows per category and source, the rows per
    natural source and per generator (their totals)."""
    problems = []
    natural = sum(n for (_, s), n in cells.items() if s == "natural")
    synthetic = sum(n for (_, s), n in cells.items() if s == "synthetic")
    found_counts = False
    for table in _card_tables(folder):
        header = [h.lower() for h in table[0]]
        if header[:4] == ["category", "natural", "synthetic", "total"]:
            found_counts = True
            listed = {row[0]: row[1:4] for row in table[1:] if len(row) >= 4}
            for c in CATEGORIES:
                want = [str(cells[(c, "natural")]), str(cells[(c, "synthetic")]),
                        str(cells[(c, "natural")] + cells[(c, "synthetic")])]
                if c not in listed and want[2] != "0":
                    problems.append(f"README.md: the table of counts has no row for {c}")
                elif c in listed and [v.replace(",", "") for v in listed[c]] != want:
                    problems.append(f"README.md: the table of counts says {c}: {' / '.join(listed[c])} "
                                    f"(natural / synthetic / total), the data has {' / '.join(want)}")
        elif header and header[-1] == "rows here" and header[0] in ("source", "model"):
            expected = natural if header[0] == "source" else synthetic
            try:
                total = sum(int(row[-1].replace(",", "")) for row in table[1:])
            except ValueError:
                problems.append(f"README.md: the table of rows per {header[0]} has a count that is not a number")
                continue
            if total != expected:
                kind = "natural" if header[0] == "source" else "synthetic"
                problems.append(f"README.md: the table of rows per {header[0]} adds up to {total}, "
                                f"the data has {expected} {kind} rows")
    if not found_counts:
        problems.append("README.md: the card has no table of counts (category | natural | synthetic | total)")
    return problems


def companion_problems(folder: Path) -> list[str]:
    """What is wrong with the files a release carries beside its data: the licence file and the reserve (always
    written, the reserve possibly empty), ``croissant.json`` (a JSON object), the shipped generations (JSON Lines),
    the validation file (its schema) and the top-up record."""
    problems = [f"{name}: missing (every release carries it)" for name in ("LICENSE.md", RESERVE_FILE, "croissant.json")
                if not (folder / name).is_file()]
    croissant = folder / "croissant.json"
    if croissant.is_file():
        try:
            doc = json.loads(croissant.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                problems.append("croissant.json: not a JSON object")
            else:
                problems += checksum_problems(folder, doc)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"croissant.json: cannot be read as JSON ({exc})")
    for name, check_doc in ((VALIDATION_FILE, lambda doc: check_validation(doc, VALIDATION_FILE)),
                            (TOPUP_FILE, _check_topup)):
        file = folder / name
        if not file.exists():
            continue
        try:
            check_doc(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{name}: cannot be read as JSON ({exc})")
        except UserError as exc:
            problems.append(str(exc))
    generations = folder / GENERATIONS_FILE
    if generations.exists():
        try:
            for _ in iter_jsonl(generations, what="generations file"):
                pass
        except UserError as exc:
            problems.append(str(exc))
    return problems


def checksum_problems(folder: Path, croissant: dict) -> list[str]:
    """Files ``croissant.json`` lists with a sha256 (its ``distribution``) that are missing or hold other bytes:
    what ``publish`` would ship with checksums that do not match."""
    problems = []
    entries = croissant.get("distribution")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            continue
        name = entry.get("contentUrl")
        if not isinstance(name, str) or not name:
            problems.append(f"croissant.json: a file with sha256 {entry['sha256']} has no contentUrl")
            continue
        file = (folder / name).resolve()
        if folder.resolve() not in file.parents:
            problems.append(f"croissant.json: lists {name!r}, which is not a file of the release folder")
        elif not file.is_file():
            problems.append(f"croissant.json: lists {name} (sha256 {entry['sha256']}), which is missing")
        else:
            found = file_sha256(file)
            if found != entry["sha256"].lower():
                problems.append(f"croissant.json says sha256 {entry['sha256']} for {name}, the file has {found}")
    return problems


#: What the card's text says of the reserve and the validation file (``cards/hexainst.md`` writes these sentences).
_CARD_RESERVE = re.compile(r"The reserve \(`" + re.escape(RESERVE_FILE) + r"`, ([\d,]+) rows\)")
_CARD_SHIPS_VALIDATION = f"The validation file the build applied ships as `{VALIDATION_FILE}`"


def card_text_problems(folder: Path, n_reserve: int) -> list[str]:
    """Differences between what the card's text says of the files beside the data and those files: the rows of
    the reserve, and the validation file it says the release ships."""
    text = (folder / "README.md").read_text("utf-8")
    problems = []
    said = _CARD_RESERVE.search(text)
    if said and (folder / RESERVE_FILE).is_file() and int(said.group(1).replace(",", "")) != n_reserve:
        problems.append(f"README.md: the card says the reserve holds {said.group(1)} rows, {RESERVE_FILE} has "
                        f"{n_reserve}")
    if _CARD_SHIPS_VALIDATION in text and not (folder / VALIDATION_FILE).is_file():
        problems.append(f"{VALIDATION_FILE}: missing (the card says the release ships the validation file "
                        "its rows' verdicts came from)")
    return problems


def _check_topup(doc) -> None:
    cells = {f"{c}/{s}" for c in CATEGORIES for s in SOURCES}
    extra = doc.get("extra") if isinstance(doc, dict) else None
    if not isinstance(extra, dict) or any(k not in cells or not isinstance(v, int) or v < 0 for k, v in extra.items()):
        raise UserError('topup.json: not a top-up record ({"extra": {"math/synthetic": 12, ...}} expected)')
