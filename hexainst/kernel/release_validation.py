"""Every check of a release folder, in one place: ``hexainst validate`` prints them, ``publish`` refuses on any;
and what the validation file a release ships says (:func:`shipped_validation`, what ``hexainst info`` prints)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.release import (
    PACKAGE_RELEASE_DIR,
    RESERVE_FILE,
    VALIDATION_FILE,
    config_files,
    data_file,
    read_release_rows,
    read_reserve,
)
from hexainst.kernel.release_checks import (
    balance_problems,
    card_problems,
    card_table_problems,
    card_text_problems,
    companion_problems,
    text_problems,
)
from hexainst.kernel.validation_file import check, rounds_info, upgrade


@dataclass(frozen=True)
class ReleaseCheck:
    """What :func:`check_release` found: the rows it read, the counts per cell, and the problems."""

    folder: Path
    rows: list[dict[str, Any]]
    reserve: list[dict[str, Any]]
    cells: Counter
    #: Card, companion files and texts: a release with any of these is not valid.
    problems: list[str]
    #: Cells that are not 100 rows: a problem unless the caller allows an unbalanced release.
    balance: list[str]


def check_release(folder: Path) -> ReleaseCheck:
    """Read the release in ``folder`` (schema, unique ids: a :class:`ReleaseError` when it cannot be read
    at all) and check the card's configs, counts and tables against the data, the companion files, the
    texts of every row and reserve row, and the balance."""
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
                + card_text_problems(folder, len(reserve))
                + text_problems(rows, places)
                + text_problems(reserve, [f"{RESERVE_FILE} row {i}" for i in range(len(reserve))]))
    return ReleaseCheck(folder=folder, rows=rows, reserve=reserve, cells=cells, problems=problems,
                        balance=balance_problems(cells))


def shipped_validation(folder: Path | None, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The rounds of the validation file the release in ``folder`` ships (``None``: the packaged release), or
    ``None`` when it ships none: the file, the candidates decided and rejected, the annotators, and per round
    :func:`~hexainst.kernel.validation_file.rounds_info`'s entry plus ``kappa_unsound`` and ``n_rows`` (the
    rows of ``rows``, the release's, that the round decided).
    """
    file = (folder or PACKAGE_RELEASE_DIR) / VALIDATION_FILE
    if not file.is_file():
        return None
    try:
        doc = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{file}: the release's validation file cannot be read as JSON ({exc})") from None
    check(doc, str(file))
    doc = upgrade(doc)
    info = rounds_info(doc)
    decided = {r["id"] for r in rows if r["validation"]["status"] != "pending"}
    for r, raw in zip(info["rounds"], doc["rounds"]):
        r["kappa_unsound"] = raw["agreement"]["error_type_agreement"]["unsound"]["kappa"]
        r["n_rows"] = sum(1 for i in r.pop("ids") if i in decided)  # rows of this release the round decided
    return {"file": str(file), "outcomes": info["n_outcomes"], "n_rejected": info["n_rejected"],
            "rounds": info["rounds"], "annotators": info["annotators"]}
