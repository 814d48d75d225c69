"""``hexainst validate``: check a release folder (schema, card, companion files, balance)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from hexainst.kernel.release import resolve_release
from hexainst.kernel.release_validation import check_release
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
    found = check_release(resolve_release(release_path(args.path)))
    print(f"{found.folder}: {len(found.rows)} rows valid against the record schema, {len(found.reserve)} reserve rows")
    print_cells(found.cells)
    for p in found.problems:
        print(f"error: {p}")
    for p in found.balance:
        print(f"{'warning' if args.allow_unbalanced else 'error'}: unbalanced: {p}")
    failed = bool(found.problems) or (bool(found.balance) and not args.allow_unbalanced)
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


def print_cells(cells: Counter) -> None:
    """Rows per category and source, as a table (what ``validate`` and ``info`` print)."""
    print(f"{'category':<16}{'natural':>9}{'synthetic':>11}{'total':>7}")
    for c in CATEGORIES:
        n, s = cells[(c, "natural")], cells[(c, "synthetic")]
        print(f"{c:<16}{n:>9}{s:>11}{n + s:>7}")
