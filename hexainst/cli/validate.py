"""``hexainst validate``: check a release folder (schema, card, companion files, balance)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from hexainst.kernel.release import (
    RESERVE_FILE,
    config_files,
    data_file,
    read_release_rows,
    read_reserve,
    resolve_release,
)
from hexainst.kernel.release_checks import (
    balance_problems,
    card_problems,
    card_table_problems,
    companion_problems,
    text_problems,
)
from hexainst.kernel.vocab import CATEGORIES


def release_path(value: str | None) -> Path | None:
    """The release folder a command's optional ``path`` argument names (``None``: the packaged release)."""
    return Path(value) if value else None


def register(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser(
        "validate",
        help="check a release: every row against the schema, the card against the data, the balance",
        description=(
            "Validate a HexaInst release folder: every row against the record schema (errors name the file and "
            "row), unique ids, instructions of at most 20,000 characters without control characters (line breaks "
            "and tabs aside), the card's configs and num_examples and its tables of counts against the data, the "
            "files a release carries (LICENSE.md, reserve/, croissant.json, and validation.json, topup.json, "
            "generations/ when present), and the balance of 100 natural + 100 synthetic rows per category. Exit "
            "status 0 if all is well, 1 if a check fails (each problem listed), 2 if the folder cannot be read as "
            "a release at all (one line naming the file)."
        ),
    )
    validate.add_argument("path", nargs="?", help="release folder (default: the release inside the hexainst package)")
    validate.add_argument("--allow-unbalanced", action="store_true", help="report but do not fail on balance")
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    folder = resolve_release(release_path(args.path))
    rows = read_release_rows(folder, check_card=False)
    reserve = read_reserve(folder)
    by_config = {"default": len(rows)}
    for name in config_files(folder):
        if name != "default":
            by_config[name] = sum(1 for r in rows if r["category"] == name)
    cells = Counter((r["category"], r["source"]) for r in rows)
    seen: Counter = Counter()
    places = []
    for r in rows:  # each category's rows come from its own file, in the file's order
        places.append(f"{data_file(r['category'])} row {seen[r['category']]}")
        seen[r["category"]] += 1
    problems = (card_problems(folder, by_config) + card_table_problems(folder, cells) + companion_problems(folder)
                + text_problems(rows, places)
                + text_problems(reserve, [f"{RESERVE_FILE} row {i}" for i in range(len(reserve))]))
    balance = balance_problems(cells)
    print(f"{folder}: {len(rows)} rows valid against the record schema, {len(reserve)} reserve rows")
    print_cells(cells)
    for p in problems:
        print(f"error: {p}")
    for p in balance:
        print(f"{'warning' if args.allow_unbalanced else 'error'}: unbalanced: {p}")
    failed = bool(problems) or (bool(balance) and not args.allow_unbalanced)
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


def print_cells(cells: Counter) -> None:
    """Rows per category and source, as a table (what ``validate`` and ``info`` print)."""
    print(f"{'category':<16}{'natural':>9}{'synthetic':>11}{'total':>7}")
    for c in CATEGORIES:
        n, s = cells[(c, "natural")], cells[(c, "synthetic")]
        print(f"{c:<16}{n:>9}{s:>11}{n + s:>7}")
