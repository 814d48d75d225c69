"""How large each cell's reserve should be, from the rejection rate validation is expected to have.

A cell's ``rows_per_cell`` released rows and its ``R`` reserve rows are all annotated; validation
rejects some. If each candidate is rejected independently with probability ``rate``, the cell
stays full when at least ``rows_per_cell`` of its ``rows_per_cell + R`` candidates are accepted.
:func:`reserve_size` is the smallest ``R`` for which that holds with probability ``1 - alpha``
(binomial). Too small a reserve means a top-up round (``hexainst build topup``); too large a one
means annotating rows that will never be released.

The expected rates come from, in this order: ``--rejection-rates FILE`` (a rates file like
``data/expected_rejection.json``, or a pilot's ``validation.json``, whose measured rates per cell
are used), else the bundled ``data/expected_rejection.json`` (each rate with where it was measured).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_json, resource_json
from hexainst.kernel.validation_file import check as check_validation
from hexainst.kernel.vocab import CATEGORIES, ROWS_PER_CELL, SOURCES

#: Probability that a cell runs short despite its reserve, if the rates are right.
ALPHA = 0.025


def reserve_size(rate: float, rows: int = ROWS_PER_CELL, alpha: float = ALPHA) -> int:
    """Smallest reserve R with P(at least ``rows`` of ``rows + R`` candidates accepted) >= 1 - ``alpha``."""
    if not 0.0 <= rate < 1.0:
        raise UserError(f"an expected rejection rate must be in [0, 1), got {rate}")
    if rate == 0.0:
        return 0
    from scipy.stats import binom  # deferred: scipy.stats (~0.7 s); `hexainst --help` imports this module

    def enough(r: int) -> bool:
        return binom.sf(rows - 1, rows + r, 1 - rate) >= 1 - alpha

    lo = max(0, math.floor(rows * rate / (1 - rate)))  # the mean: never below it
    if enough(lo):
        return lo
    step = max(1, lo // 8)
    hi = lo + step
    while not enough(hi):  # grows geometrically, so a rate near 1 takes few steps, not ~1/(1-rate) of them
        lo, step = hi, step * 2
        hi = lo + step
    while hi - lo > 1:  # enough(hi) holds, enough(lo) does not
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def _cell(category: str, source: str) -> str:
    return f"{category}/{source}"


def bundled_rates() -> dict[str, Any]:
    """The bundled expected rates (``data/expected_rejection.json``): ``{"cells": {cell: rate}, "source": ...}``."""
    return resource_json("hexainst.builders.release", "data", "expected_rejection.json")


def _rates_from_validation(doc: Mapping[str, Any], pools_ids: Mapping[str, str], file: Path) -> dict[str, Any]:
    decided: Counter = Counter()
    rejected: Counter = Counter()
    for outcome in doc["outcomes"]:
        cell = pools_ids.get(outcome["id"])
        if cell is None or outcome["status"] == "pending":
            continue
        decided[cell] += 1
        rejected[cell] += outcome["status"] == "rejected"
    cells = {cell: rejected[cell] / decided[cell] for cell in decided}
    return {"cells": cells, "source": f"measured in {file} ({sum(decided.values())} decided rows)",
            "decided": dict(decided)}


def expected_rates(file: str | Path | None = None, cell_of_id: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Expected rejection rate per cell, with where each came from.

    ``file``: a rates file (``{"cells": {"math/synthetic": 0.3, ...}, "source": "..."}``) or a pilot's
    validation file (its rejected / decided per cell; ``cell_of_id`` maps ids to cells). Cells the
    file does not cover keep the bundled rate. Returns ``{"cells": {cell: {"rate", "source"}}}``.
    """
    bundled = bundled_rates()
    out = {_cell(c, s): {"rate": float(bundled["cells"][_cell(c, s)]), "source": bundled["source"]}
           for c in CATEGORIES for s in SOURCES}
    if file is None:
        return {"cells": out}
    file = Path(file)
    doc = read_json(file, what="rejection rates file")
    if isinstance(doc, dict) and doc.get("format") == "hexainst-validation":
        check_validation(doc, str(file))
        given = _rates_from_validation(doc, cell_of_id or {}, file)
    elif isinstance(doc, dict) and isinstance(doc.get("cells"), dict):
        given = {"cells": doc["cells"], "source": str(doc.get("source") or file)}
    else:
        raise UserError(f"{file}: neither a rates file ({{'cells': {{'math/synthetic': 0.3, ...}}}}) nor a validation file")
    for cell, rate in given["cells"].items():
        if cell not in out:
            raise UserError(f"{file}: unknown cell {cell!r}; cells are like 'math/synthetic'")
        if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise UserError(f"{file}: cell {cell}: the rate must be a number in [0, 1), got {rate!r}")
        out[cell] = {"rate": float(rate), "source": given["source"]}
    return {"cells": out}


def reserve_plan(rates: Mapping[str, Any], rows: int = ROWS_PER_CELL, cap: int | None = None) -> dict[str, dict[str, Any]]:
    """Per cell: the expected rate, where it came from, the reserve it asks for and the reserve kept (at most ``cap``)."""
    plan = {}
    for cell, entry in rates["cells"].items():
        wanted = reserve_size(entry["rate"], rows)
        kept = wanted if cap is None else min(wanted, cap)
        plan[cell] = {**entry, "reserve_wanted": wanted, "reserve": kept, "capped": kept < wanted}
    return plan


def rates_record(rates: Mapping[str, Any]) -> dict[str, Any]:
    """The rates file of :func:`expected_rates`' result (``{"source", "cells": {cell: rate}}``), as a release ships it.

    Read back by :func:`expected_rates` as a rates file, it gives the same rate for every cell.
    """
    cells = rates["cells"]
    sources = sorted({str(entry["source"]) for entry in cells.values()})
    return {"source": " | ".join(sources), "cells": {cell: float(entry["rate"]) for cell, entry in sorted(cells.items())}}
