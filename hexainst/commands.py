"""``hexainst validate`` and ``hexainst info``: check and describe a release folder."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from hexainst.vocab import CATEGORIES, ROWS_PER_CELL, SOURCES, VALIDATION_STATUSES


def _release_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check a release: every row against the schema, the card against the data, the balance",
        description=(
            "Validate a HexaInst release folder: every row against the record schema (errors name the file and "
            "row), unique ids, the card's configs and num_examples against the data, and the balance of "
            "100 natural + 100 synthetic rows per category. Exit status 1 if anything is wrong."
        ),
    )
    validate.add_argument("path", nargs="?", help="release folder (default: the release inside the hexainst package)")
    validate.add_argument("--allow-unbalanced", action="store_true", help="report but do not fail on balance")
    validate.set_defaults(handler=_validate)

    info = subparsers.add_parser(
        "info",
        help="counts per category x source and validation status of a release",
        description="Print the rows per category and source and per validation status of a release folder.",
    )
    info.add_argument("path", nargs="?", help="release folder (default: the release inside the hexainst package)")
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(handler=_info)


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
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(folder / "README.md").data.to_dict()
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


def _validate(args: argparse.Namespace) -> int:
    from hexainst.release import _resolve, config_files, read_release_rows, read_reserve

    folder = _resolve(_release_path(args.path))
    rows = read_release_rows(folder)
    reserve = read_reserve(folder)
    by_config = {"default": len(rows)}
    for name in config_files(folder):
        if name != "default":
            by_config[name] = sum(1 for r in rows if r["category"] == name)
    problems = card_problems(folder, by_config)
    cells = Counter((r["category"], r["source"]) for r in rows)
    balance = balance_problems(cells)
    print(f"{folder}: {len(rows)} rows valid against the record schema, {len(reserve)} reserve rows")
    _print_cells(cells)
    for p in problems:
        print(f"error: {p}")
    for p in balance:
        print(f"{'warning' if args.allow_unbalanced else 'error'}: unbalanced: {p}")
    failed = bool(problems) or (bool(balance) and not args.allow_unbalanced)
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


def _print_cells(cells: Counter) -> None:
    print(f"{'category':<16}{'natural':>9}{'synthetic':>11}{'total':>7}")
    for c in CATEGORIES:
        n, s = cells[(c, "natural")], cells[(c, "synthetic")]
        print(f"{c:<16}{n:>9}{s:>11}{n + s:>7}")


def _info(args: argparse.Namespace) -> int:
    from hexainst.release import read_release_rows, read_reserve

    path = _release_path(args.path)
    rows = read_release_rows(path)
    cells = Counter((r["category"], r["source"]) for r in rows)
    statuses = Counter(r["validation"]["status"] for r in rows)
    reserve = read_reserve(path)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": len(rows),
                    "cells": {c: {s: cells[(c, s)] for s in SOURCES} for c in CATEGORIES},
                    "validation": {s: statuses[s] for s in VALIDATION_STATUSES},
                    "reserve": len(reserve),
                },
                indent=2,
            )
        )
        return 0
    print(f"{len(rows)} rows, {len(reserve)} in reserve")
    _print_cells(cells)
    print("validation: " + ", ".join(f"{s} {statuses[s]}" for s in VALIDATION_STATUSES))
    return 0
