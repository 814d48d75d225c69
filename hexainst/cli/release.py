"""``hexainst validate``, ``hexainst info`` and ``hexainst publish``: check, describe and upload a release folder."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from hexainst.kernel.release_checks import (
    balance_problems,
    card_problems,
    card_table_problems,
    companion_problems,
    text_problems,
)
from hexainst.kernel.vocab import CATEGORIES, SOURCES, VALIDATION_STATUSES


def _release_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_publish(subparsers)
    validate = subparsers.add_parser(
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

    info = subparsers.add_parser(
        "info",
        help="counts per category x source, validation status and kappa of a release",
        description="Print the rows per category and source, per validation status (overall and per cell), and, "
                    "from the validation file the release ships (validation.json), the juniors' agreement (Cohen's "
                    "kappa) and who the annotators were (people or models).",
    )
    info.add_argument("path", nargs="?", help="release folder (default: the release inside the hexainst package)")
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(handler=_info)


def _validate(args: argparse.Namespace) -> int:
    from hexainst.kernel.release import RESERVE_FILE, _resolve, config_files, data_file, read_release_rows, read_reserve

    folder = _resolve(_release_path(args.path))
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


def _validation_block(path: Path | None, rows: list[dict]) -> dict | None:
    """The shipped validation file's rounds (annotators, decided, kappa each) (``None`` when the release ships none).

    ``rows``: the release rows, to count the rows each round decided.
    """
    from hexainst.kernel.release import PACKAGE_RELEASE_DIR, VALIDATION_FILE
    from hexainst.kernel.validation_file import check, upgrade

    file = (path or PACKAGE_RELEASE_DIR) / VALIDATION_FILE
    if not file.is_file():
        return None
    try:
        doc = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        from hexainst.kernel.errors import UserError

        raise UserError(f"{file}: the release's validation file cannot be read as JSON ({exc})") from None
    check(doc, str(file))
    from hexainst.builders.assembly.assemble import rounds_info

    doc = upgrade(doc)
    info = rounds_info(doc)
    decided = {r["id"] for r in rows if r["validation"]["status"] != "pending"}
    for r, raw in zip(info["rounds"], doc["rounds"]):
        r["kappa_unsound"] = raw["agreement"]["error_type_agreement"]["unsound"]["kappa"]
        r["n_rows"] = sum(1 for i in r.pop("ids") if i in decided)  # rows of this release the round decided
    return {"file": str(file), "outcomes": info["n_outcomes"], "n_rejected": info["n_rejected"],
            "rounds": info["rounds"], "annotators": info["annotators"]}


def _info(args: argparse.Namespace) -> int:
    from hexainst.kernel.identity import describe
    from hexainst.kernel.release import read_release_rows, read_reserve

    path = _release_path(args.path)
    rows = read_release_rows(path, check_card=False)
    cells = Counter((r["category"], r["source"]) for r in rows)
    statuses = Counter(r["validation"]["status"] for r in rows)
    by_cell = Counter((r["category"], r["source"], r["validation"]["status"]) for r in rows)
    reserve = read_reserve(path)
    block = _validation_block(path, rows)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": len(rows),
                    "cells": {c: {s: cells[(c, s)] for s in SOURCES} for c in CATEGORIES},
                    "validation": {s: statuses[s] for s in VALIDATION_STATUSES},
                    "validation_by_cell": {f"{c}/{s}": {st: by_cell[(c, s, st)] for st in VALIDATION_STATUSES}
                                           for c in CATEGORIES for s in SOURCES},
                    "validation_file": block,
                    "reserve": len(reserve),
                },
                indent=2,
            )
        )
        return 0
    print(f"{len(rows)} rows, {len(reserve)} in reserve")
    _print_cells(cells)
    print("validation: " + ", ".join(f"{s} {statuses[s]}" for s in VALIDATION_STATUSES))
    open_cells = [f"{c}/{s} {by_cell[(c, s, 'pending')]}" for c in CATEGORIES for s in SOURCES if by_cell[(c, s, "pending")]]
    if open_cells and len(open_cells) < len(CATEGORIES) * len(SOURCES):
        print("pending per cell: " + ", ".join(open_cells))
    if block is None:
        print("kappa: no validation file in this release (validation.json), so no agreement to report")
        return 0

    def k(value) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    print(f"validation file: {block['outcomes']} candidates decided ({block['n_rejected']} rejected) "
          f"in {len(block['rounds'])} round{'s' if len(block['rounds']) != 1 else ''}")
    for r in block["rounds"]:
        waiting = r["awaiting_senior"]
        waiting_text = ("not listed (an older validation file)" if waiting is None
                        else (", ".join(waiting) if waiting else "none"))
        print(f"round {r['round']}: {r['n_outcomes']} candidates decided ({r['n_rejected']} rejected, {r['n_rows']} rows "
              f"of this release); juniors' Cohen's kappa on "
              f"{r['n_double_annotated']} double-annotated tasks: decision {k(r['kappa_decision'])}, "
              f"category {k(r['kappa_category_correct'])}, unsound {k(r['kappa_unsound'])}; "
              f"{r['n_disagreements']} disagreements, {r['n_senior_decided']} decided by the senior; "
              f"awaiting the senior: {waiting_text}")  # fmt: skip
        for a in r["annotators"]:
            print(f"  {a['role']} {a['annotator']}: {describe(a['identity'])}")
    return 0


def _register_publish(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="upload a release folder to a Hugging Face Hub dataset repo",
        description=(
            "Validate a release and upload its files (card, LICENSE.md, data/, reserve/, croissant.json; never code) "
            "to a Hub dataset repository with huggingface_hub. Needs a token (HF_TOKEN or 'hf auth login'). "
            "--dry-run DIR writes exactly what would be uploaded into DIR instead, with no network."
        ),
    )
    parser.add_argument("--repo", required=True, metavar="ORG/NAME", help="dataset repository id on the Hub")
    parser.add_argument("--path", type=Path, default=None, help="release folder (default: the one in the hexainst package)")
    parser.add_argument("--dry-run", type=Path, metavar="DIR", help="write the upload into DIR instead of uploading")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    from hexainst.kernel.release import PACKAGE_RELEASE_DIR

    folder = args.path or PACKAGE_RELEASE_DIR
    from hexainst.kernel.publish import publish

    info = publish(folder, args.repo, dry_run=args.dry_run, private=args.private)
    where = f"into {args.dry_run} (dry run)" if args.dry_run else f"to https://huggingface.co/datasets/{args.repo}"
    print(f"{len(info['files'])} files, {sum(f['bytes'] for f in info['files'])} bytes {where}")
    return 0
